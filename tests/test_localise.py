"""sim.localise: the trace port of the accelerator against golden/'s records.

The accelerator (both architectures) runs in the Amaranth simulator with
``hardware.trace``; its beats match golden exactly, and when the hardware holds one
weight golden does not, the localiser names the first step, layer and neuron where it
shows, with both values.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator, SimulatorContext

from desire.config import Config, load_config
from golden.network import GoldenNet
from rtl.accelerator import Accelerator
from sim.localise import Divergence, TraceBeat, first_divergence, steps_from_trace
from tests.test_rtl_accelerator import _images, _transfer

CFG = load_config().replace(
    network={"layers": (20, 12, 6), "tsteps": 6}, hardware={"lanes": 4, "trace": True}
)


def _traces(cfg: Config, weights: list[np.ndarray], images: np.ndarray) -> list[list[TraceBeat]]:
    """Every trace beat of every sample, cycles counted from the sample's first pixel."""
    dut = Accelerator(cfg, weights)
    out: list[list[TraceBeat]] = [[] for _ in images]
    sample = [-1]  # the sample the host is sending or waiting for
    starts: dict[int, int] = {}  # the cycle each sample's first pixel went in

    async def host(ctx: SimulatorContext) -> None:
        for k, img in enumerate(images):
            sample[0] = k
            await _transfer(ctx, dut, img)

    async def monitor(ctx: SimulatorContext) -> None:
        cycle = 0
        while True:
            await ctx.tick()
            cycle += 1
            starts.setdefault(sample[0], cycle)
            for l, port in enumerate(dut.trace):
                if ctx.get(port.valid):
                    out[sample[0]].append(
                        TraceBeat(
                            cycle - starts[sample[0]],
                            l,
                            ctx.get(port.phase),
                            ctx.get(port.block),
                            ctx.get(port.spikes),
                            tuple(int(v) for v in ctx.get(port.membranes)),
                        )
                    )

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return out


def _net(cfg: Config) -> GoldenNet:
    net = GoldenNet.init_random(cfg, seed=3)
    net.weights = [np.clip(w * 3, -(2**15), 2**15 - 1).astype(np.int32) for w in net.weights]
    return net


@pytest.mark.parametrize("arch", ["per-layer", "shared"])
def test_trace_matches_golden_step_by_step(arch: str) -> None:
    cfg = CFG.replace(hardware={"architecture": arch})
    net = _net(cfg)
    images = _images(cfg, 3, seed=2)
    traces = _traces(cfg, net.weights, images)
    rec = net.forward(images, record=True)
    assert first_divergence(rec.spikes, rec.membranes, traces, cfg.hardware.lanes) is None
    assert any(b.spikes for beats in traces for b in beats), "the test needs spikes"


def test_a_wrong_weight_is_located() -> None:
    """The hardware holds one weight of layer 0 that golden does not: the first divergence
    is that neuron, at the first step its input spikes, with the difference in its value."""
    cfg = CFG.replace(hardware={"architecture": "shared"})
    net = _net(cfg)
    images = _images(cfg, 2, seed=2)
    rec = net.forward(images, record=True)
    inp = int(np.flatnonzero(rec.input_spikes[:, 1].any(axis=0))[0])  # sample 0 is black
    hw = [w.copy() for w in net.weights]
    hw[0][5, inp] += 2000  # neuron 5 of layer 0 integrates more from input ``inp``
    found = first_divergence(rec.spikes, rec.membranes, _traces(cfg, hw, images), 4)
    assert isinstance(found, Divergence)
    first_use = int(np.flatnonzero(rec.input_spikes[:, 1, inp])[0])
    assert (found.sample, found.step, found.layer, found.neuron) == (1, first_use, 0, 5)
    if found.what == "membrane":  # still below threshold: the extra weight, exactly
        assert found.rtl is not None and found.rtl - found.golden == 2000
    else:  # the extra weight made it fire
        assert (found.what, found.rtl, found.golden) == ("spike", 1, 0)
    assert "sample 1" in str(found) and "neuron 5" in str(found)


def test_steps_from_trace_and_missing_passes() -> None:
    beats = [
        TraceBeat(10, 0, 1, 0, 0b01, (7, -3)),
        TraceBeat(11, 0, 1, 1, 0b10, (0, 9)),
        TraceBeat(12, 0, 2, 0, 0b00, (1, 2)),  # step 1, block 1 never reported
    ]
    spikes, membranes, cycles = steps_from_trace(beats, [3], 2, 2)
    assert spikes[0].tolist() == [[True, False, False], [False, False, False]]
    assert membranes[0][0].tolist() == [7, -3, 0] and cycles[0][1].tolist() == [12, 12, -1]
    golden_s = [spikes[0][:, None, :].copy()]
    golden_v = [membranes[0][:, None, :].copy()]
    found = first_divergence(golden_s, golden_v, [beats], 2)
    assert found == Divergence(0, 1, 0, 2, "missing", None, 0, None)
