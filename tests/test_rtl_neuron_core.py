"""rtl.neuron_core.NeuronCore in the Amaranth simulator against golden.neuron_core.lif_step."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator, SimulatorContext

from desire.config import load_config
from golden.fixed import constants, signed_range
from golden.neuron_core import lif_step, synaptic_drive
from rtl.neuron_core import NeuronCore, weight_rows

C = constants(load_config())


def _core(n_in: int, n_out: int, lanes: int, w: np.ndarray | None = None) -> NeuronCore:
    return NeuronCore(
        n_in,
        n_out,
        lanes,
        weight_bits=C.weight_bits,
        membrane_bits=C.membrane_bits,
        decay_shift=C.decay_shift,
        weights=w,
    )


def _golden(
    w: np.ndarray, spikes: np.ndarray, thr: int, keep: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-step (spikes, membranes) of golden for one sample."""
    v = np.zeros((1, w.shape[0]), dtype=np.int64)
    out = []
    for s_in in spikes:
        v, s = lif_step(v, synaptic_drive(s_in[None], np.ascontiguousarray(w.T)), thr, keep, C)
        out.append((s[0].copy(), v[0].copy()))
    return out


def _simulate(
    core: NeuronCore, spikes: np.ndarray, thr: int, keep: np.ndarray, order_seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Run one sample through the RTL: clear, then per step all events and a fire pass."""
    rng = np.random.default_rng(order_seed)
    results: list[tuple[np.ndarray, np.ndarray]] = []

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(core.threshold, thr)
        ctx.set(core.keep, int("".join("1" if k else "0" for k in keep[::-1]), 2))
        ctx.set(core.clear, 1)
        await ctx.tick()
        ctx.set(core.clear, 0)
        await ctx.tick().until(core.idle)
        for s_in in spikes:
            idx = np.flatnonzero(s_in)
            rng.shuffle(idx)  # integration is order-independent: exercise that
            for i in idx:
                ctx.set(core.events.payload, int(i))
                ctx.set(core.events.valid, 1)
                await ctx.tick().until(core.events.ready)
            ctx.set(core.events.valid, 0)
            await ctx.tick().until(core.idle)
            ctx.set(core.fire, 1)
            await ctx.tick()
            ctx.set(core.fire, 0)
            s = np.zeros(core.blocks * core.lanes, dtype=bool)
            v = np.zeros(core.blocks * core.lanes, dtype=np.int64)
            seen = 0
            while seen < core.blocks:
                if ctx.get(core.out_valid):
                    b = ctx.get(core.out_block)
                    bits = ctx.get(core.out_spikes)
                    for j in range(core.lanes):
                        s[b * core.lanes + j] = (bits >> j) & 1
                        v[b * core.lanes + j] = ctx.get(core.out_membrane[j])
                    seen += 1
                await ctx.tick()
            results.append((s[: core.n_out], v[: core.n_out]))
            await ctx.tick().until(core.idle)

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return results


def _check(core: NeuronCore, w: np.ndarray, spikes: np.ndarray, thr: int, keep: np.ndarray) -> None:
    got = _simulate(core, spikes, thr, keep, order_seed=1)
    want = _golden(w, spikes, thr, keep)
    assert len(got) == len(want)
    for t, ((gs, gv), (ws, wv)) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_array_equal(gs, ws, err_msg=f"spikes differ at step {t}")
        np.testing.assert_array_equal(gv, wv, err_msg=f"membranes differ at step {t}")


@pytest.mark.parametrize(("n_in", "n_out", "lanes"), [(12, 10, 4), (7, 3, 4), (9, 8, 8), (5, 6, 1)])
def test_sim_random_matches_golden(n_in: int, n_out: int, lanes: int) -> None:
    rng = np.random.default_rng(n_in * 100 + n_out * 10 + lanes)
    w = rng.integers(-6000, 9000, (n_out, n_in)).astype(np.int32)
    spikes = rng.random((6, n_in)) < 0.5
    keep = rng.random(n_out) < 0.8
    _check(_core(n_in, n_out, lanes, w), w, spikes, C.thr_eval, keep)


def test_sim_saturates_at_both_ends() -> None:
    lo, hi = signed_range(C.weight_bits)
    n_in = 40
    w = np.array([[hi] * n_in, [lo] * n_in, [hi // 3] * n_in])
    spikes = np.ones((4, n_in), dtype=bool)
    # a threshold above the membrane range: the top neuron stays pinned at the maximum
    thr = signed_range(C.membrane_bits)[1]
    _check(_core(n_in, 3, 2, w), w, spikes, thr, np.ones(3, dtype=bool))
    _check(_core(n_in, 3, 2, w), w, spikes, C.thr_eval, np.ones(3, dtype=bool))


def test_sim_every_neuron_dropped() -> None:
    rng = np.random.default_rng(3)
    w = rng.integers(0, 8000, (6, 5)).astype(np.int32)
    spikes = np.ones((3, 5), dtype=bool)
    _check(_core(5, 6, 4, w), w, spikes, C.thr_eval, np.zeros(6, dtype=bool))


def test_weight_rows_layout() -> None:
    w = np.arange(15).reshape(5, 3)  # (n_out, n_in)
    rows = weight_rows(w, 2)  # 3 blocks of 2 lanes, padded to 6 neurons
    assert rows[0] == [0, 3] and rows[1] == [6, 9] and rows[2] == [12, 0]
    assert rows[3] == [1, 4]


def test_init() -> None:
    core = _core(784, 64, 8)
    assert (core.blocks, core.depth) == (8, 784 * 8)
    assert core.acc_bits == max(C.membrane_bits, C.weight_bits + 10) + 1
    assert NeuronCore.for_layer(load_config(), 1).n_in == 64


def test_wrong_arguments() -> None:
    with pytest.raises(TypeError, match="lanes must be an integer"):
        _core(4, 4, 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_out must be >= 1"):
        _core(4, 0, 2)
    with pytest.raises(ValueError, match="weights must have shape"):
        _core(4, 4, 2, np.zeros((4, 5), dtype=np.int32))
    with pytest.raises(ValueError, match="weights must be integers in"):
        _core(4, 4, 2, np.full((4, 4), 1 << 20))
    with pytest.raises(ValueError, match="layer must be"):
        NeuronCore.for_layer(load_config(), 2)


@pytest.mark.parametrize(("n_out", "lanes"), [(10, 4), (3, 4), (16, 4)])
def test_sim_event_throughput(n_out: int, lanes: int) -> None:
    """A back-to-back event stream keeps the lanes busy: one event every B cycles (at least
    NeuronCore.WRITE_DISTANCE, so that no read misses a write-back in flight)."""
    core = _core(16, n_out, lanes)
    n_events = 7
    accepted: list[int] = []

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(core.events.valid, 1)
        for cycle in range(n_events * core.event_cycles + 5):
            ctx.set(core.events.payload, len(accepted) % 16)
            if ctx.get(core.events.ready) and len(accepted) < n_events:
                accepted.append(cycle)
            if len(accepted) == n_events:
                ctx.set(core.events.valid, 0)
            await ctx.tick()

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert core.event_cycles == max(core.blocks, NeuronCore.WRITE_DISTANCE)
    assert np.diff(accepted).tolist() == [core.event_cycles] * (n_events - 1)
