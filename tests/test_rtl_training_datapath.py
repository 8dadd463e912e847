"""rtl.training_datapath.TrainingDatapath in the Amaranth simulator, driven at its ports.

What the datapath adds to the units (which have their own tests) is memories and
alignment: spike trains written by the producers during the forward phases and
read back as update rows (layer ``l > 0`` one step late), and reads that meet the
weight word ``ISSUE_TO_UNIT`` cycles after the issue and come back as write-backs
to the address they were read from. Its arithmetic end to end is
tests/test_rtl_accelerator.py's (training against golden).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np
import pytest
from amaranth.sim import Simulator, SimulatorContext

from desire.config import Config, load_config
from golden.fixed import constants
from rtl.desire_unit import DesireUnit
from rtl.training_datapath import TrainingDatapath
from rtl.training_sequencer import ISSUE_TO_UNIT

CFG = load_config().replace(network={"layers": (10, 7, 5), "tsteps": 6}, hardware={"lanes": 4})


async def _write_trains(
    ctx: SimulatorContext, dut: TrainingDatapath, spikes: list[np.ndarray]
) -> None:
    """The forward phases' producer writes: neuron layer ``j``'s (T, n_j) spikes, the encoder
    (j = 0) step ``s`` in phase ``s``, core outputs (j > 0) step ``s - 1``."""
    tsteps, p = spikes[0].shape[0], len(dut.spk_bits[0])
    for phase in range(tsteps + 1):
        ctx.set(dut.phase, phase)
        for j, s in enumerate(spikes):
            step = phase if j == 0 else phase - 1
            if not 0 <= step < tsteps:
                continue
            padded = np.zeros(-(-s.shape[1] // p) * p, dtype=bool)
            padded[: s.shape[1]] = s[step]
            for w, bits in enumerate(padded.reshape(-1, p)):
                ctx.set(dut.spk_valid, 1 << j)
                ctx.set(dut.spk_word[j], w)
                ctx.set(dut.spk_bits[j], sum(int(b) << k for k, b in enumerate(bits)))
                await ctx.tick()
        ctx.set(dut.spk_valid, 0)


def _run(
    dut: TrainingDatapath,
    testbench: Callable[[SimulatorContext], Awaitable[None]],
    weights: list[np.ndarray] | None = None,
) -> None:
    """``testbench`` beside the cores' weight ports as a model: ``w_rdata[l]`` is the word
    ``w_word`` of ``ISSUE_TO_UNIT`` cycles before (``weights[l]``: words x lanes)."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    if weights is not None:

        async def memories(ctx: SimulatorContext) -> None:
            words: list[int] = []
            async for _, _, word in ctx.tick().sample(dut.w_word):
                words.append(word)
                at = len(words) - ISSUE_TO_UNIT
                for l, mem in enumerate(weights):
                    row = mem[words[at]] if at >= 0 and words[at] < len(mem) else [0] * 4
                    for j, x in enumerate(row):
                        ctx.set(dut.w_rdata[l][j], int(x))

        sim.add_process(memories)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("seed", [0, 1])
def test_sim_update_rows_see_the_trains(seed: int) -> None:
    """``row_silent`` of row ``i`` three cycles after its read (read, register, pick): the
    input layer's whole train, a later layer's first ``T - 1`` steps (the one-step delay)."""
    c = constants(CFG)
    rng = np.random.default_rng(seed)
    spikes = [rng.random((c.tsteps, n)) < 0.15 for n in c.layers]
    spikes[0][:, 3] = False  # a row that never spikes
    spikes[1][:, 2] = False
    spikes[1][-1, 2] = True  # spikes only in the last step: unseen by layer 1
    dut = TrainingDatapath.for_config(CFG)
    got: dict[tuple[int, int], bool] = {}

    async def testbench(ctx: SimulatorContext) -> None:
        await _write_trains(ctx, dut, spikes)
        for l in range(c.n_linear):
            for i in range(c.layers[l]):
                ctx.set(dut.issue.read_row, 1 << l)
                ctx.set(dut.issue.read_word, i // CFG.hardware.lanes)
                ctx.set(dut.issue.row_lane, i % CFG.hardware.lanes)
                await ctx.tick()
                ctx.set(dut.issue.read_row, 0)
                await ctx.tick().repeat(2)
                got[l, i] = bool(ctx.get(dut.issue.row_silent) >> l & 1)

    _run(dut, testbench)
    for l in range(c.n_linear):
        seen = spikes[l] if l == 0 else spikes[l][:-1]
        for i in range(c.layers[l]):
            assert got[l, i] == (not seen[:, i].any()), f"layer {l}, row {i}"
    assert got[0, 3] and got[1, 2]


@pytest.mark.parametrize("cfg", [CFG, CFG.replace(formats={"rounding": "nearest"})])
def test_sim_write_back_aligned_to_the_read(cfg: Config) -> None:
    """Without desire (the memories start at 0) an update word is written back unchanged,
    ``ISSUE_TO_UNIT + latency`` cycles after its issue, to the word it was read from."""
    c, p = constants(cfg), cfg.hardware.lanes
    rng = np.random.default_rng(5)
    dut = TrainingDatapath.for_config(cfg)
    blocks = [-(-n // p) for n in c.layers[1:]]
    weights = [
        rng.integers(-(2**15), 2**15, (c.layers[l] * blocks[l], p)) for l in range(c.n_linear)
    ]
    issued: list[tuple[int, int, int]] = []  # (cycle, layer, word)
    written: list[tuple[int, int, int, list[int]]] = []  # (cycle, layer, addr, data)
    latency = ISSUE_TO_UNIT + dut.update.latency

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(dut.lr_int, c.lr_int(0) * 256)
        plan = []  # per cycle: (load layer, issue layer, word, block)
        for l in range(c.n_linear):
            for i in (0, c.layers[l] - 1):
                plan.append((l, None, 0, 0))
                plan += [(None, None, 0, 0)] * dut.update.load_cycles
                plan += [(None, l, i * blocks[l] + b, b) for b in range(blocks[l])]
        plan += [(None, None, 0, 0)] * (latency + 2)
        for cycle, (load, layer, word, block) in enumerate(plan):
            ctx.set(dut.issue.load_row, 0 if load is None else 1 << load)
            ctx.set(dut.issue.upd, 0 if layer is None else 1 << layer)
            ctx.set(dut.issue.word, word)
            ctx.set(dut.issue.block, block)
            if layer is not None:
                assert ctx.get(dut.w_read) == 1 << layer and ctx.get(dut.w_word) == word
                issued.append((cycle, layer, word))
            for l in range(c.n_linear):
                if ctx.get(dut.u_we) >> l & 1:
                    data = [int(x) for x in ctx.get(dut.u_data)]
                    written.append((cycle, l, ctx.get(dut.u_addr), data))
            await ctx.tick()

    _run(dut, testbench, weights)
    want = [(k + latency, l, w, weights[l][w].tolist()) for k, l, w in issued]
    assert written == want


def test_init() -> None:
    dut = TrainingDatapath.for_config(CFG)
    assert dut.desire.lanes == dut.update.lanes == 4
    assert len(dut.keep(1)) == 7 and len(dut.spk_bits) == 3 and len(dut.w_rdata) == 2


def test_wrong_arguments() -> None:
    good = TrainingDatapath.for_config(CFG)
    kwargs = {
        "weight_bits": 16,
        "desire": good.desire,
        "update": good.update,
        "stochastic": True,
        "rounding_seed": 1,
    }
    with pytest.raises(ValueError, match="desire unit has 4 lanes and 6 steps, not 2 and 6"):
        TrainingDatapath((10, 7, 5), 2, 6, **kwargs)
    with pytest.raises(ValueError, match="update unit has 4 lanes and 6 steps, not 4 and 5"):
        five_steps = DesireUnit.for_config(CFG.replace(network={"tsteps": 5}))
        TrainingDatapath((10, 7, 5), 4, 5, **{**kwargs, "desire": five_steps})
    with pytest.raises(TypeError, match="desire must be a DesireUnit"):
        TrainingDatapath((10, 7, 5), 4, 6, **{**kwargs, "desire": good.update})
    with pytest.raises(TypeError, match="stochastic must be a bool"):
        TrainingDatapath((10, 7, 5), 4, 6, **{**kwargs, "stochastic": "yes"})
    with pytest.raises(ValueError, match="l must be >= 1 and <= 1, not 2"):
        good.keep(2)
