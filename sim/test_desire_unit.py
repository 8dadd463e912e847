"""cocotb testbench of rtl.desire_unit.DesireUnit; golden.desire_unit is the scoreboard.

Random and directed blocks (no desire at all, every neuron desired, extreme
weights and counts, the threshold boundary): the output-layer desire and
``E * q`` of every lane, and ``S_g`` with its desire after each MAC pass.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.handle import HierarchyObject
from cocotb.triggers import ReadOnly, RisingEdge

from golden.desire_unit import hidden_desire, local_error, output_desire, ternary
from golden.fixed import constants, signed_range
from rtl.desire_unit import DesireUnit
from sim import coverage
from sim.drivers import env_config, reset, stimulus_rng, to_signed


def pack(values: np.ndarray, bits: int) -> int:
    """Lane j of a flat Verilog vector is bits [j * bits, (j + 1) * bits)."""
    return sum((int(v) & ((1 << bits) - 1)) << (j * bits) for j, v in enumerate(values))


class DesireEnv:
    """Drives the unit's strobes every cycle and collects its results ``*_latency`` later."""

    def __init__(self, dut: HierarchyObject) -> None:
        self.dut = dut
        self.cfg = env_config()
        self.c = constants(self.cfg)
        self.unit = DesireUnit.for_config(self.cfg)
        self.p = self.cfg.hardware.lanes
        self.cb = self.c.tsteps.bit_length()
        self.rng = stimulus_rng("desire_unit.trains")
        for name in ("out_req", "mac_valid", "mac_first", "mac_last", "label_lane", "trains"):
            getattr(dut, name).value = 0
        for name in ("q", "weights"):
            getattr(dut, name).value = 0
        self.cover = coverage.points("desire_unit")

    def sample_output(self, counts: np.ndarray, label: int, q: np.ndarray) -> None:
        c = self.c
        for k, count in enumerate(counts.tolist()):
            if k == label:
                self.cover["output_count"]("label", count, c.out_label_below)
            else:
                self.cover["output_count"]("other", count, c.out_other_above)
        for d in set(q.tolist()):
            self.cover["desire"]("output", d)

    def sample_hidden(self, sums: np.ndarray, active: np.ndarray, sign: np.ndarray) -> None:
        for value in sums.tolist():
            self.cover["hidden_sum"](value, self.c.hid_thr)
        for d in set(np.where(active, sign, 0).tolist()):
            self.cover["desire"]("hidden", d)

    def blocks(self, x: np.ndarray) -> np.ndarray:
        pad = np.zeros(-(-len(x) // self.p) * self.p, dtype=np.int64)
        pad[: len(x)] = x
        return pad.reshape(-1, self.p)

    def trains(self, counts: np.ndarray) -> int:
        """Flat ``trains`` of a block: lane j has ``counts[j]`` spikes at random steps."""
        t = self.c.tsteps
        return sum(
            sum(1 << int(s) for s in self.rng.choice(t, int(n), replace=False)) << (j * t)
            for j, n in enumerate(counts)
        )

    async def output(self, counts: np.ndarray, label: int, q: np.ndarray) -> tuple[list, ...]:
        """(active, sign, eq) of every lane; one block per cycle, results out_latency later."""
        dut, p = self.dut, self.p
        act, sign, eq = [], [], []
        blocks = list(zip(self.blocks(counts), self.blocks(q), strict=True))
        for cycle in range(len(blocks) + self.unit.out_latency):
            if cycle < len(blocks):
                cb, qb = blocks[cycle]
                dut.trains.value = self.trains(cb)
                dut.q.value = pack(qb, 2)
                hit = label - cycle * p
                dut.label_lane.value = 1 << hit if 0 <= hit < p else 0
            dut.out_req.value = int(cycle < len(blocks))
            await ReadOnly()
            if dut.out_valid.value == 1:
                a, s, e = int(dut.out_active.value), int(dut.out_sign.value), int(dut.eq.value)
                act += [(a >> j) & 1 for j in range(p)]
                sign += [1 if (s >> j) & 1 else -1 for j in range(p)]
                width = self.cb + 1
                eq += [to_signed((e >> (j * width)) & ((1 << width) - 1), width) for j in range(p)]
            await RisingEdge(dut.clk)
        dut.out_req.value = 0
        assert len(act) == len(blocks) * p, "one out_valid per block"
        return act, sign, eq

    async def hidden(self, w: np.ndarray, counts: np.ndarray, q: np.ndarray) -> list[tuple]:
        """MAC passes of B cycles per g, back to back; (active, sign, S) per g."""
        dut = self.dut
        cb, qb = self.blocks(counts), self.blocks(q)
        nb = cb.shape[0]
        acc_bits = len(dut.hid_sum)
        strobes = [(g, b) for g in range(w.shape[1]) for b in range(nb)]
        got: list[tuple] = []
        for cycle in range(len(strobes) + self.unit.hid_latency + 1):
            if cycle < len(strobes):
                g, b = strobes[cycle]
                dut.weights.value = pack(self.blocks(w[:, g])[b], self.c.weight_bits)
                dut.trains.value = self.trains(cb[b])
                dut.q.value = pack(qb[b], 2)
                dut.mac_first.value = int(b == 0)
                dut.mac_last.value = int(b == nb - 1)
            dut.mac_valid.value = int(cycle < len(strobes))
            await ReadOnly()
            if dut.hid_valid.value == 1:
                got.append(
                    (
                        int(dut.hid_active.value),
                        1 if dut.hid_sign.value else -1,
                        to_signed(int(dut.hid_sum.value), acc_bits),
                    )
                )
            await RisingEdge(dut.clk)
        assert len(got) == w.shape[1], "one hid_valid per g"
        return got


@cocotb.test()
async def test_output_layer(dut: HierarchyObject) -> None:
    """Output desire and E*q: the label and the others at and one off their bounds, then random."""
    env = DesireEnv(dut)
    await reset(dut)
    rng = stimulus_rng("desire_unit.output")
    n = env.cfg.network.layers[-1]
    for k in range(6):
        counts = rng.integers(0, env.c.tsteps + 1, n)
        counts[: min(n, 2)] = [0, env.c.tsteps][: min(n, 2)]
        label = int(rng.integers(n))
        if k < 3:  # directed: every count at, or one off, its desire's bound
            bounds = np.full(n, env.c.out_other_above)
            bounds[label] = env.c.out_label_below
            counts = np.clip(bounds + (np.arange(n) + k) % 3 - 1, 0, env.c.tsteps)
            # the label one below (desire +1), at and one above its bound, whatever the seed
            counts[label] = np.clip(env.c.out_label_below + k - 1, 0, env.c.tsteps)
        active, sign = output_desire(counts, label, env.c)
        q = ternary(active, sign, None)
        env.sample_output(counts, label, q)
        act, sg, eq = await env.output(counts, label, q)
        assert act[:n] == active.tolist() and sg[:n] == sign.tolist()
        assert eq[:n] == (local_error(counts, sign, env.c) * q).tolist()


@cocotb.test()
async def test_hidden_layer(dut: HierarchyObject) -> None:
    """S_g and the hidden desire: random, no desire, full desire, extreme values."""
    env = DesireEnv(dut)
    await reset(dut)
    rng = stimulus_rng("desire_unit.hidden")
    c = env.c
    n_h = c.layers[2] if len(c.layers) > 2 else c.layers[-1]
    lo, hi = signed_range(c.weight_bits)
    for case in ("random", "zero-desire", "full-desire", "extreme"):
        w = rng.integers(-4000, 4000, (n_h, 5))
        counts = rng.integers(0, c.tsteps + 1, n_h)
        active, keep = rng.random(n_h) < 0.6, rng.random(n_h) < 0.8
        sign = np.where(rng.random(n_h) < 0.5, 1, -1).astype(np.int8)
        if case == "zero-desire":
            active[:] = False
        elif case != "random":
            active[:], keep[:] = True, True
        if case == "extreme":
            counts = np.where(sign > 0, 0, c.tsteps)
            w[:, :2] = np.where(sign > 0, hi, lo)[:, None]
            w[:, 2:4] = np.where(sign > 0, lo, hi)[:, None]
        q = ternary(active, sign, keep)
        want_a, want_s, want_sum = hidden_desire(w, local_error(counts, sign, c), q, c)
        env.sample_hidden(want_sum, want_a, want_s)
        got = await env.hidden(w, counts, q)
        assert [g[2] for g in got] == want_sum.tolist(), case
        assert [g[0] for g in got] == want_a.astype(int).tolist(), case
        assert [g[1] for g in got] == want_s.tolist(), case


@cocotb.test()
async def test_threshold_boundary(dut: HierarchyObject) -> None:
    """|S| = hid_thr is active, hid_thr - 1 is not; S = 0 has sign -1."""
    env = DesireEnv(dut)
    await reset(dut)
    c = env.c
    n_h = c.layers[2] if len(c.layers) > 2 else c.layers[-1]
    counts = np.zeros(n_h, dtype=np.int64)
    counts[0] = 1  # eq_0 = -1 with q = -1
    q = np.zeros(n_h, dtype=np.int64)
    q[0] = -1
    w = np.zeros((n_h, 3), dtype=np.int64)
    w[0] = [-c.hid_thr, -(c.hid_thr - 1), 0]
    active, sign, sums = hidden_desire(w, local_error(counts, -np.ones(n_h), c), q, c)
    env.sample_hidden(sums, active, sign)
    got = await env.hidden(w, counts, q)
    assert [g[:2] for g in got] == [(1, 1), (0, 1), (0, -1)]


@cocotb.test()
async def test_coverage(dut: HierarchyObject) -> None:
    """Last: write this run's cover points for the regression to merge and check."""
    coverage.save()
