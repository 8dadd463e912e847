"""rtl.neuron_core.NeuronCore at the edges random stimulus misses, against golden.lif_step.

Why a directed test: with random weights a membrane lands exactly on its threshold
about once in thousands of draws, and the random cases never bring a sum just past
the membrane range (where the overflow check reads the bits above the sign). Here
the weights put one neuron exactly on the threshold, one just below, and sums just
past both rails, with and without dropout (tools/mutate.py, docs/mutation.md).
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator, SimulatorContext

from desire.config import load_config
from golden.fixed import constants, signed_range
from golden.neuron_core import lif_step, synaptic_drive
from rtl.neuron_core import NeuronCore

C = constants(load_config())
THR = C.thr_eval


def _run_steps(
    w: np.ndarray, spikes: np.ndarray, keep: np.ndarray, lanes: int
) -> list[tuple[list[int], list[int]]]:
    """Per step, all events then a fire pass of a one-layer core; (spikes, membranes)."""
    n_out, n_in = w.shape
    core = NeuronCore(
        n_in,
        n_out,
        lanes,
        weight_bits=C.weight_bits,
        membrane_bits=C.membrane_bits,
        decay_shift=C.decay_shift,
        weights=w,
    )
    got: list[tuple[list[int], list[int]]] = []

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(core.threshold, THR)
        ctx.set(core.keep, sum(int(k) << o for o, k in enumerate(keep)))
        ctx.set(core.clear, 1)
        await ctx.tick()
        ctx.set(core.clear, 0)
        await ctx.tick().until(core.idle)
        for step in spikes:
            for i in np.flatnonzero(step):
                ctx.set(core.events.payload, int(i))
                ctx.set(core.events.valid, 1)
                await ctx.tick().until(core.events.ready)
            ctx.set(core.events.valid, 0)
            await ctx.tick().until(core.idle)
            ctx.set(core.fire, 1)
            await ctx.tick()
            ctx.set(core.fire, 0)
            s, v = [0] * (core.blocks * lanes), [0] * (core.blocks * lanes)
            seen = 0
            while seen < core.blocks:
                if ctx.get(core.out_valid):
                    b, bits = ctx.get(core.out_block), ctx.get(core.out_spikes)
                    for j in range(lanes):
                        s[b * lanes + j] = bits >> j & 1
                        v[b * lanes + j] = ctx.get(core.out_membrane[j])
                    seen += 1
                await ctx.tick()
            got.append((s[:n_out], v[:n_out]))
            await ctx.tick().until(core.idle)

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return got


def _golden(
    w: np.ndarray, spikes: np.ndarray, keep: np.ndarray
) -> list[tuple[list[int], list[int]]]:
    v = np.zeros((1, w.shape[0]), dtype=np.int64)
    out = []
    for step in spikes:
        drive = synaptic_drive(step[None], np.ascontiguousarray(w.T))
        v, s = lif_step(v, drive, THR, keep, C)
        out.append((s[0].astype(int).tolist(), v[0].tolist()))
    return out


@pytest.mark.parametrize("lanes", [4, 1])
def test_sim_threshold_equality_and_rails_just_past(lanes: int) -> None:
    """Neuron 0 reaches exactly ``thr`` (fires, resets to 0), neuron 1 ``thr - 1`` (does
    not fire); neurons 2 and 3 sum 17 rail weights, just past the membrane's rails
    (hi < 17 * w_hi < 2 * hi), so they saturate; neuron 4 as neuron 2, dropped."""
    lo, hi = signed_range(C.weight_bits)
    v_hi = signed_range(C.membrane_bits)[1]
    n_in = 17
    assert v_hi < n_in * hi < 2 * v_hi, "the sum must land just past the rail"
    w = np.zeros((5, n_in), dtype=np.int32)
    w[0, 0], w[1, 0] = THR, THR - 1
    w[2], w[3], w[4] = hi, lo, hi
    spikes = np.zeros((3, n_in), dtype=bool)
    spikes[0, 0] = True  # step 0: only input 0 (neurons 0 and 1)
    spikes[1:] = True  # steps 1, 2: every input
    keep = np.array([1, 1, 1, 1, 0], dtype=bool)
    want = _golden(w, spikes, keep)
    assert want[0][0][:2] == [1, 0] and want[0][1][:2] == [0, THR - 1], "the equality case"
    assert want[1][1][2] == v_hi - THR and want[1][1][4] == v_hi, "the rail cases"
    assert _run_steps(w, spikes, keep, lanes) == want
