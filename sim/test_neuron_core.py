"""cocotb testbench of rtl.neuron_core.NeuronCore; golden.neuron_core.lif_step is the scoreboard.

Every time step the fire pass's spikes and membranes (after reset) of every
neuron are compared with golden's.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.handle import HierarchyObject
from cocotb.triggers import RisingEdge

from golden.fixed import constants, signed_range
from golden.neuron_core import lif_step, synaptic_drive
from rtl.neuron_core import weight_rows
from sim import coverage
from sim.drivers import (
    BlockMonitor,
    SequencePlayer,
    StreamPlayer,
    env_config,
    env_layer,
    reset,
    stimulus_rng,
    to_signed,
    wait_high,
)


class CoreEnv:
    """DUT (in its sim.harness harness) plus drivers; :meth:`check` runs one sample and
    scores every step. The weight port and the event stream are played by the harness."""

    def __init__(self, dut: HierarchyObject) -> None:
        self.dut = dut
        self.c = constants(env_config())
        layer = env_layer()
        self.n_in, self.n_out = self.c.layers[layer], self.c.layers[layer + 1]
        self.lanes = env_config().hardware.lanes
        self.blocks = -(-self.n_out // self.lanes)
        dut.fire.value = 0
        dut.clear.value = 0
        dut.u_we.value = 0  # the training write-back port, unused here
        self.events = StreamPlayer(dut, "events__", dut.clk)
        self.weights = SequencePlayer(dut, "w_", dut.clk, ("we", "word", "lane", "data"))
        # out_membrane is one flat vector in Verilog: lane j is bits [j * mb, (j + 1) * mb)
        self.monitor = BlockMonitor(
            dut.clk, dut.out_valid, dut.out_block, dut.out_spikes, dut.out_membrane
        )
        self.cover = coverage.points("neuron_core")
        self.cover["layer"](self.blocks)

    async def load_weights(self, w: np.ndarray) -> None:
        lo, hi = signed_range(self.c.weight_bits)
        for value in {int(w.min()), int(w.max())}:
            self.cover["weight"](value, lo, hi)
        rows = np.array(weight_rows(w, self.lanes))
        words, lanes = np.indices(rows.shape)
        await self.weights.run(1, words.ravel(), lanes.ravel(), rows.ravel())

    async def strobe(self, name: str) -> None:
        """Pulse ``fire`` or ``clear`` once the core is idle (it stays idle without input)."""
        await wait_high(self.dut.clk, self.dut.idle)
        getattr(self.dut, name).value = 1
        await RisingEdge(self.dut.clk)
        getattr(self.dut, name).value = 0
        await RisingEdge(self.dut.clk)

    async def fire(self) -> tuple[np.ndarray, np.ndarray]:
        """End-of-step pass: (spikes, membranes) of the n_out neurons."""
        await wait_high(self.dut.clk, self.dut.idle)
        self.dut.fire.value = 1
        collect = cocotb.start_soon(self.monitor.collect(self.blocks))
        await RisingEdge(self.dut.clk)
        self.dut.fire.value = 0
        blocks = await collect
        await RisingEdge(self.dut.clk)
        s = np.zeros(self.blocks * self.lanes, dtype=bool)
        v = np.zeros(self.blocks * self.lanes, dtype=np.int64)
        mb = self.c.membrane_bits
        for b, bits, flat in blocks:
            for j in range(self.lanes):
                s[b * self.lanes + j] = (bits >> j) & 1
                v[b * self.lanes + j] = to_signed((flat >> (j * mb)) & ((1 << mb) - 1), mb)
        return s[: self.n_out], v[: self.n_out]

    async def check(
        self,
        w: np.ndarray,
        spikes: np.ndarray,
        thr: int,
        keep: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        """One sample of ``len(spikes)`` steps, events in random order each step."""
        await self.load_weights(w)
        self.dut.threshold.value = thr & ((1 << self.c.membrane_bits) - 1)
        self.dut.keep.value = int("".join("1" if k else "0" for k in keep[::-1]), 2)
        await self.strobe("clear")
        v = np.zeros((1, self.n_out), dtype=np.int64)
        w_in_major = np.ascontiguousarray(w.T)
        for t, s_in in enumerate(spikes):
            await self.events.send(rng.permutation(np.flatnonzero(s_in)))
            got_s, got_v = await self.fire()
            v, s = lif_step(v, synaptic_drive(s_in[None], w_in_major), thr, keep, self.c)
            self.sample(v[0] + np.where(s[0], thr, 0), thr, keep)
            bad = np.flatnonzero((got_s != s[0]) | (got_v != v[0]))
            assert not bad.size, (
                f"step {t}: neurons {bad[:8]} spikes {got_s[bad[:8]]} vs {s[0][bad[:8]]}, "
                f"membranes {got_v[bad[:8]]} vs {v[0][bad[:8]]}"
            )

    def sample(self, before_reset: np.ndarray, thr: int, keep: np.ndarray) -> None:
        """Cover points of one fire pass, once per distinct bin (not once per neuron)."""
        lo, hi = signed_range(self.c.membrane_bits)
        seen: dict[tuple, int] = {}
        for k, v in enumerate(before_reset.tolist()):
            seen.setdefault((coverage.compare(v, thr), bool(keep[k]), v >= thr), k)
            seen.setdefault(("rail", coverage.rail(v, lo, hi)), k)
        for key, k in seen.items():
            v = int(before_reset[k])
            if key[0] == "rail":
                self.cover["membrane"](v, lo, hi)
            else:
                self.cover["neuron"](v, thr, bool(keep[k]))


@cocotb.test()
async def test_random(dut: HierarchyObject) -> None:
    """Constrained-random weights, input rates, thresholds and dropout masks, two samples."""
    env = CoreEnv(dut)  # drives every input before reset ends
    await reset(dut)
    rng = stimulus_rng("neuron_core.random")
    lo, hi = signed_range(env.c.weight_bits)
    thr_hi = signed_range(env.c.membrane_bits)[1]
    for _ in range(2):
        scale = rng.choice([hi // 16, hi // 4, hi])
        w = rng.integers(-scale, scale + 1, (env.n_out, env.n_in)).astype(np.int32)
        w = np.clip(w + scale // 8, lo, hi)  # slightly excitatory so neurons fire
        spikes = rng.random((env.c.tsteps, env.n_in)) < rng.uniform(0.02, 0.5)
        thr = int(rng.choice([env.c.thr_eval, *env.c.thr_train, rng.integers(1, thr_hi)]))
        keep = rng.random(env.n_out) < rng.choice([1.0, 0.6])
        await env.check(w, spikes, thr, keep, rng)


@cocotb.test()
async def test_saturation_both_ends(dut: HierarchyObject) -> None:
    """All inputs spike into maximal weights: membranes pin at +max and -max."""
    env = CoreEnv(dut)  # drives every input before reset ends
    await reset(dut)
    rng = stimulus_rng("neuron_core.saturation")
    lo, hi = signed_range(env.c.weight_bits)
    w = np.where(np.arange(env.n_out)[:, None] % 2 == 0, hi, lo) * np.ones((1, env.n_in), int)
    spikes = np.ones((4, env.n_in), dtype=bool)
    keep = np.ones(env.n_out, dtype=bool)
    await env.check(w, spikes, signed_range(env.c.membrane_bits)[1], keep, rng)
    await env.check(w, spikes, env.c.thr_eval, keep, rng)


@cocotb.test()
async def test_every_neuron_dropped(dut: HierarchyObject) -> None:
    """keep = 0: nothing fires, nothing resets, membranes still integrate and decay."""
    env = CoreEnv(dut)  # drives every input before reset ends
    await reset(dut)
    rng = stimulus_rng("neuron_core.dropped")
    w = rng.integers(0, signed_range(env.c.weight_bits)[1] // 4, (env.n_out, env.n_in))
    spikes = rng.random((4, env.n_in)) < 0.3
    await env.check(w, spikes, env.c.thr_eval, np.zeros(env.n_out, dtype=bool), rng)


@cocotb.test()
async def test_silent_input(dut: HierarchyObject) -> None:
    """No input spikes at all: membranes stay 0, nothing fires."""
    env = CoreEnv(dut)  # drives every input before reset ends
    await reset(dut)
    rng = stimulus_rng("neuron_core.silent")
    w = rng.integers(-1000, 1000, (env.n_out, env.n_in))
    spikes = np.zeros((3, env.n_in), dtype=bool)
    await env.check(w, spikes, env.c.thr_eval, np.ones(env.n_out, dtype=bool), rng)


@cocotb.test()
async def test_threshold_equality(dut: HierarchyObject) -> None:
    """One input spike into weights thr - 1, thr and thr + 1: membranes exactly at the
    threshold must fire (v >= thr) and reset to 0; a dropped one must do neither."""
    env = CoreEnv(dut)  # drives every input before reset ends
    await reset(dut)
    rng = stimulus_rng("neuron_core.equality")
    thr = env.c.thr_eval
    w = np.zeros((env.n_out, env.n_in), dtype=np.int64)
    w[:, 0] = thr + np.arange(env.n_out) % 3 - 1
    spikes = np.zeros((2, env.n_in), dtype=bool)
    spikes[0, 0] = True
    keep = np.arange(env.n_out) % 4 != 3
    await env.check(w, spikes, thr, keep, rng)


@cocotb.test()
async def test_coverage(dut: HierarchyObject) -> None:
    """Last: write this run's cover points for the regression to merge and check."""
    coverage.save()
