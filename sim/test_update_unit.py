"""cocotb testbench of rtl.update_unit.UpdateUnit; golden.update_unit is the scoreboard.

A layer of random weights is updated row by row, block by block, as the
accelerator drives the unit; cases: random, no desire (nothing may change),
full desire, maximum traces (every input and output spikes every step),
saturation (a huge learning rate drives weights into both rails) and rows of
one block (each row loaded one cycle before the previous row's only word).
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.handle import HierarchyObject
from cocotb.triggers import ReadOnly, RisingEdge

from golden.fixed import constants, signed_range
from golden.neuron_core import trace_step
from golden.prng import XorShift32
from golden.update_unit import update_from_trains
from rtl.update_unit import UpdateUnit
from sim import coverage
from sim.drivers import env_config, reset, stimulus_rng, to_signed
from sim.test_desire_unit import pack


def bits_of(train: np.ndarray) -> int:
    return sum(int(s) << t for t, s in enumerate(train))


async def run_rows(dut, c, p, w, pre, post, gate, lr_int, words) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Drive the rows on the accelerator's tightest schedule (a load, ``load_cycles``
    later the words back to back, the next row's load one cycle before this row's
    last word) and collect ``w_new`` at every ``out_valid``, in order."""
    unit = UpdateUnit.for_config(env_config())
    n_out, n_in = w.shape
    blocks = -(-n_out // p)
    out = w.copy()
    issued: list[tuple[int, int]] = []
    results: list[int] = []
    row_at, words_at = unit.tightest_schedule(n_in, blocks)

    dut.lr_int.value = lr_int
    for cycle in range(max(words_at) + unit.latency + 2):
        row = row_at.get(cycle)
        if row is not None:
            dut.row_train.value = bits_of(pre[:, row])
            dut.row_rand.value = int(words[row])
        dut.row_load.value = int(row is not None)
        word = words_at.get(cycle)
        if word is not None:
            i, b = word
            lanes = range(b * p, b * p + p)
            dut.post.value = sum(
                bits_of(post[:, o]) << (j * c.tsteps) for j, o in enumerate(lanes) if o < n_out
            )
            dut.gate.value = pack(np.array([gate[o] if o < n_out else 0 for o in lanes]), 2)
            dut.w_old.value = pack(
                np.array([w[o, i] if o < n_out else 0 for o in lanes]), c.weight_bits
            )
            dut.word_first.value = int(b == 0)
            issued.append(word)
        dut.word_valid.value = int(word is not None)
        await ReadOnly()
        if dut.out_valid.value == 1:
            results.append(int(dut.w_new.value))
        await RisingEdge(dut.clk)
    assert len(results) == len(issued), f"{len(results)} results for {len(issued)} words"
    wb = c.weight_bits
    for (i, b), flat in zip(issued, results, strict=True):
        for j, o in enumerate(range(b * p, b * p + p)):
            if o < n_out:
                out[o, i] = to_signed((flat >> (j * wb)) & ((1 << wb) - 1), wb)
    return out


def _sample(c, w, pre, gate, want, lanes) -> None:  # type: ignore[no-untyped-def]
    """Cover points of one case: gates, rows, lane blocks, the traces (reach their clamp
    only in a :func:`sim.runner.trace_clamp` build) and the updated weights' rails."""
    cover = coverage.points("update_unit")
    lo, hi = signed_range(c.weight_bits)
    for g in set(gate.tolist()):
        cover["gate"](g)
    for n in {0 if n == 0 else 1 for n in pre.sum(axis=0).tolist()}:
        cover["row"](n)
    cover["blocks"](-(-w.shape[0] // lanes))
    r = np.zeros(pre.shape[1], dtype=np.int64)
    for spikes in pre:  # the traces the unit rebuilds from the rows' input trains
        r = trace_step(r, spikes, c)
        cover["trace"](int(r.max()), c.trace_max)
    for value in {int(want.min()), int(want.max())}:
        cover["weight"](value, lo, hi)


@cocotb.test()
async def test_update(dut: HierarchyObject) -> None:
    cfg = env_config()
    c, p = constants(cfg), cfg.hardware.lanes
    for name in ("row_load", "word_valid", "word_first", "row_train"):
        getattr(dut, name).value = 0
    for name in ("post", "gate", "w_old"):
        getattr(dut, name).value = 0
    await reset(dut)
    rng = stimulus_rng("update_unit")
    stream = XorShift32(c.rounding_seed)
    lo, hi = signed_range(c.weight_bits)
    n_in = 6
    for case in ("random", "zero-desire", "full-desire", "max-traces", "saturation", "one-block"):
        n_out = p if case == "one-block" else 2 * p + 1  # one block: row loads overlap words
        w = rng.integers(-5000, 5000, (n_out, n_in))
        pre = rng.random((c.tsteps, n_in)) < 0.4
        pre[:, 0] = False  # a silent row
        post = rng.random((c.tsteps, n_out)) < 0.4
        gate = rng.integers(-1, 2, n_out)
        lr_int = c.lr_int(0) * 32
        if case == "zero-desire":
            gate[:] = 0
        elif case == "full-desire":
            gate = np.where(rng.random(n_out) < 0.5, 1, -1)
        elif case in ("max-traces", "saturation"):
            pre[:, 1:], post[:] = True, True
        if case == "saturation":
            w[::2], w[1::2], lr_int = hi - 3, lo + 3, 2**32 - 1
            gate = np.where(np.arange(n_out) % 2 == 0, 1, -1)
        words = stream.draw(n_in)
        want = update_from_trains(c, w, pre, post, gate, lr_int, words)
        _sample(c, w, pre, gate, want, p)
        got = await run_rows(dut, c, p, w, pre, post, gate, lr_int, words)
        assert (got == want).all(), f"{case}: {np.argwhere(got != want)[:5].tolist()}"
        assert (got == w).all() if case == "zero-desire" else (got != w).any(), case


@cocotb.test()
async def test_coverage(dut: HierarchyObject) -> None:
    """Last: write this run's cover points for the regression to merge and check."""
    coverage.save()
