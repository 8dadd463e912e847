"""rtl.desire_unit.DesireUnit in the Amaranth simulator against golden.desire_unit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np
import pytest
from amaranth.sim import Simulator, SimulatorContext

from desire.config import load_config
from golden.desire_unit import hidden_desire, local_error, output_desire, ternary
from golden.fixed import constants, signed_range
from rtl.desire_unit import DesireUnit

CFG = load_config().replace(network={"layers": (12, 20, 10)}, hardware={"lanes": 4})
C = constants(CFG)


def _run(dut: DesireUnit, testbench: Callable[[SimulatorContext], Awaitable[None]]) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def _blocks(x: np.ndarray, p: int) -> np.ndarray:
    pad = np.zeros(-(-len(x) // p) * p, dtype=np.int64)
    pad[: len(x)] = x
    return pad.reshape(-1, p)


def _train(count: int, rng: np.random.Generator) -> int:
    """A T-bit spike train with ``count`` spikes at random steps."""
    return sum(1 << int(t) for t in rng.choice(C.tsteps, int(count), replace=False))


def _output(
    dut: DesireUnit, counts: np.ndarray, q: np.ndarray, label: int, rng: np.random.Generator
) -> tuple[list[int], list[int], list[int]]:
    """Output desire of ``counts`` (trains with spikes at random steps) and E*q for the
    desire ``q``, one block per cycle; (active, sign, eq) per neuron."""
    p, n = dut.lanes, len(counts)
    got_a, got_s, got_eq = [], [], []
    nb = len(_blocks(counts, p))

    async def testbench(ctx: SimulatorContext) -> None:
        for cycle in range(nb + dut.out_latency):
            b = cycle
            if b < nb:
                blk, qb = _blocks(counts, p)[b], _blocks(q, p)[b]
                for j in range(p):
                    ctx.set(dut.trains[j], _train(blk[j], rng))
                    ctx.set(dut.q[j], int(qb[j]))
                hit = label - b * p
                ctx.set(dut.label_lane, 1 << hit if 0 <= hit < p else 0)
            ctx.set(dut.out_req, b < nb)
            if ctx.get(dut.out_valid):
                a, s = ctx.get(dut.out_active), ctx.get(dut.out_sign)
                got_a.extend((a >> j) & 1 for j in range(p))
                got_s.extend(1 if (s >> j) & 1 else -1 for j in range(p))
                got_eq.extend(ctx.get(dut.eq[j]) for j in range(p))
            await ctx.tick()

    _run(dut, testbench)
    assert len(got_a) == nb * p, "one out_valid per block, out_latency cycles later"
    return got_a[:n], got_s[:n], got_eq[:n]


@pytest.mark.parametrize("seed", range(3))
def test_sim_output_desire_and_error(seed: int) -> None:
    """Output desire per block and E*q, every count 0..T included; one block per cycle."""
    rng = np.random.default_rng(seed)
    dut = DesireUnit.for_config(CFG)
    n = C.layers[-1]
    counts = np.concatenate([np.arange(C.tsteps + 1), rng.integers(0, C.tsteps + 1, 5)])[:n]
    counts = rng.permutation(np.resize(counts, n))
    label = int(rng.integers(n))
    active, sign = output_desire(counts, label, C)
    q = ternary(active, sign, None)
    got_a, got_s, got_eq = _output(dut, counts, q, label, rng)
    np.testing.assert_array_equal(got_a, active)
    np.testing.assert_array_equal(got_s, sign)
    np.testing.assert_array_equal(got_eq, local_error(counts, sign, C) * q)


@pytest.mark.parametrize("label_count", [C.out_label_below - 1, C.out_label_below])
def test_sim_output_desire_at_its_thresholds(label_count: int) -> None:
    """Counts exactly at the output thresholds: the label neuron at ``out_label_below``
    (and one below), the others at ``out_other_above`` and one above; E*q for each
    sign of q, with counts at and around the target R. A random label's count hits its
    threshold once in T + 1 draws, so the random cases may miss it."""
    rng = np.random.default_rng(label_count)
    dut = DesireUnit.for_config(CFG)
    n, r = C.layers[-1], C.target_count
    counts = np.array([C.out_other_above, C.out_other_above + 1, r, r - 1, r + 1, 0, C.tsteps])
    counts = np.resize(counts, n)
    label = 3
    counts[label] = label_count
    active, sign = output_desire(counts, label, C)
    assert active[label] == (label_count < C.out_label_below)
    q = np.resize(np.array([1, -1, 1, 0, -1, 1], dtype=np.int8), n)
    got_a, got_s, got_eq = _output(dut, counts, q, label, rng)
    np.testing.assert_array_equal(got_a, active)
    np.testing.assert_array_equal(got_s, sign)
    np.testing.assert_array_equal(got_eq, local_error(counts, np.where(q > 0, 1, -1), C) * q)


def _hidden(
    dut: DesireUnit, w: np.ndarray, counts: np.ndarray, q: np.ndarray
) -> list[tuple[int, int, int]]:
    """MAC passes back to back, one per g over the blocks of h; (active, sign, S) per g."""
    p = dut.lanes
    n_g = w.shape[1]
    cb, qb = _blocks(counts, p), _blocks(q, p)
    rng = np.random.default_rng(11)
    got: list[tuple[int, int, int]] = []

    async def testbench(ctx: SimulatorContext) -> None:
        nb = cb.shape[0]
        strobes = [(g, b) for g in range(n_g) for b in range(nb)]
        for cycle in range(len(strobes) + dut.hid_latency + 1):
            if cycle < len(strobes):
                g, b = strobes[cycle]
                col = _blocks(w[:, g], p)
                for j in range(p):
                    ctx.set(dut.weights[j], int(col[b, j]))
                    ctx.set(dut.trains[j], _train(cb[b, j], rng))
                    ctx.set(dut.q[j], int(qb[b, j]))
                ctx.set(dut.mac_first, b == 0)
                ctx.set(dut.mac_last, b == nb - 1)
            ctx.set(dut.mac_valid, cycle < len(strobes))
            if ctx.get(dut.hid_valid):
                got.append((ctx.get(dut.hid_active), ctx.get(dut.hid_sign), ctx.get(dut.hid_sum)))
            await ctx.tick()

    _run(dut, testbench)
    assert len(got) == n_g, "one hid_valid per g"
    return got


def test_latencies() -> None:
    """Default T = 20, P = 8: popcount in 2 cycles; products (5 terms) in 2, the 16-term
    dot-product tree in 2."""
    dut = DesireUnit.for_config(load_config())
    assert (dut.out_latency, dut.hid_latency) == (2 + 1, 3 + 2 + 2 + 1 + 1)


@pytest.mark.parametrize("case", ["random", "zero-desire", "full-desire", "extreme"])
def test_sim_hidden_desire(case: str) -> None:
    rng = np.random.default_rng(7)
    dut = DesireUnit.for_config(CFG)
    n_h, n_g = C.layers[2], 6
    lo, hi = signed_range(C.weight_bits)
    w = rng.integers(-3000, 3000, (n_h, n_g))
    counts = rng.integers(0, C.tsteps + 1, n_h)
    active = rng.random(n_h) < 0.6
    sign = np.where(rng.random(n_h) < 0.5, 1, -1).astype(np.int8)
    keep = rng.random(n_h) < 0.8
    if case == "zero-desire":
        active[:] = False
    elif case == "full-desire":
        active[:], keep[:] = True, True
    elif case == "extreme":  # largest |S|: extreme weights, counts 0 or T, aligned signs
        active[:], keep[:] = True, True
        counts = np.where(sign > 0, 0, C.tsteps)
        w[:, : n_g // 2] = np.where(sign > 0, hi, lo)[:, None]
        w[:, n_g // 2 :] = np.where(sign > 0, lo, hi)[:, None]
        w[:, -1] = 1  # a small sum near the threshold
    err = local_error(counts, sign, C)
    q = ternary(active, sign, keep)
    want_a, want_s, want_sum = hidden_desire(w, err, q, C)
    got = _hidden(dut, w, counts, q)
    np.testing.assert_array_equal([g[2] for g in got], want_sum)
    np.testing.assert_array_equal([g[0] for g in got], want_a)
    np.testing.assert_array_equal([1 if g[1] else -1 for g in got], want_s)
    if case == "zero-desire":
        assert not any(want_a)


def test_threshold_boundary() -> None:
    """|S| = hid_thr is active, hid_thr - 1 is not, on both signs; S = 0 has sign -1."""
    dut = DesireUnit.for_config(CFG)
    n_h = C.layers[2]
    counts = np.zeros(n_h, dtype=np.int64)
    counts[0] = 1  # eq_0 = -1 with q = -1
    q = np.zeros(n_h, dtype=np.int8)
    q[0] = -1
    w = np.zeros((n_h, 5), dtype=np.int64)
    w[0] = [-C.hid_thr, -(C.hid_thr - 1), 0, C.hid_thr, C.hid_thr - 1]
    got = _hidden(dut, w, counts, q)
    assert [g[:2] for g in got] == [(1, 1), (0, 1), (0, 0), (1, 0), (0, 0)]


def test_wrong_arguments() -> None:
    kw = {"out_label_below": 1, "out_other_above": 1, "hid_thr": 1, "weight_bits": 8}
    with pytest.raises(ValueError, match="target_count must be"):
        DesireUnit(4, tsteps=5, target_count=6, acc_bits=20, **kw)
    with pytest.raises(TypeError, match="lanes must be an integer"):
        DesireUnit(2.0, tsteps=5, target_count=4, acc_bits=20, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="acc_bits must be"):
        DesireUnit(4, tsteps=5, target_count=4, acc_bits=8, **kw)
