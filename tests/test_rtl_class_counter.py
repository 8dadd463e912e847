"""rtl.class_counter.ClassCounter in the Amaranth simulator against golden.network.strict_argmax."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator, SimulatorContext

from golden.network import strict_argmax
from rtl.class_counter import ClassCounter


def _simulate(dut: ClassCounter, lanes: int, samples: list[np.ndarray]) -> list[tuple]:
    """Per sample (T, classes) of spikes: clear, one fire pass per step (block by block),
    then the arg-max one step per cycle; returns (counts, cls, valid_class, steps)."""
    got: list[tuple] = []

    async def testbench(ctx: SimulatorContext) -> None:
        for spikes in samples:
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            for step in spikes:
                padded = np.zeros(-(-len(step) // lanes) * lanes, dtype=bool)
                padded[: len(step)] = step
                ctx.set(dut.spk_valid, 1)
                for b, block in enumerate(padded.reshape(-1, lanes)):
                    ctx.set(dut.spk_block, b)
                    ctx.set(dut.spk_bits, sum(int(x) << j for j, x in enumerate(block)))
                    await ctx.tick()
                ctx.set(dut.spk_valid, 0)
                await ctx.tick()  # a gap between fire passes, as between phases
            ctx.set(dut.step, 1)
            steps = 1
            while not ctx.get(dut.last):
                await ctx.tick()
                steps += 1
                assert steps <= dut.classes, "no last step"  # fail, do not hang
            await ctx.tick()
            ctx.set(dut.step, 0)
            res = ctx.get(dut.result)
            got.append(([int(x) for x in res.counts], int(res.cls), int(res.valid_class), steps))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return got


@pytest.mark.parametrize(("classes", "lanes"), [(6, 4), (10, 8), (3, 1), (1, 2), (5, 5)])
def test_sim_counts_and_strict_argmax(classes: int, lanes: int) -> None:
    tsteps = 7
    rng = np.random.default_rng(classes * 10 + lanes)
    samples = [rng.random((tsteps, classes)) < rng.uniform(0.1, 0.9) for _ in range(6)]
    samples.append(np.zeros((tsteps, classes), dtype=bool))  # all 0: a tie (unless 1 class)
    samples.append(np.ones((tsteps, classes), dtype=bool))  # every class T times
    one = np.zeros((tsteps, classes), dtype=bool)
    one[:, classes - 1] = True  # the last class wins
    samples.append(one)
    dut = ClassCounter(classes, lanes, tsteps)
    got = _simulate(dut, lanes, samples)
    for k, (spikes, (counts, cls, valid, steps)) in enumerate(zip(samples, got, strict=True)):
        want = spikes.sum(axis=0)
        assert counts == want.tolist(), f"sample {k}"
        pred = int(strict_argmax(want))
        assert (cls, valid) == ((pred, 1) if pred >= 0 else (dut.no_class, 0)), f"sample {k}"
        assert steps == classes, f"sample {k}: the arg-max takes one cycle per class"


@pytest.mark.parametrize("tsteps", [1, 8, 16])
def test_sim_count_reaches_t(tsteps: int) -> None:
    """A class that spikes at every step counts exactly ``T``, also for a power of two (the
    counter's top bit); random spikes rarely give a count of ``T``."""
    spikes = np.zeros((tsteps, 3), dtype=bool)
    spikes[:, 1] = True
    spikes[1:, 2] = True  # T - 1: class 1 wins by one
    got = _simulate(ClassCounter(3, 2, tsteps), 2, [spikes])
    assert got[0][:3] == ([0, tsteps, tsteps - 1], 1, 1)


def test_sim_clear_wins_over_a_count() -> None:
    dut = ClassCounter(2, 2, 3)
    seen: list[list[int]] = []

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(dut.spk_valid, 1)
        ctx.set(dut.spk_bits, 0b11)
        await ctx.tick()
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        ctx.set(dut.spk_valid, 0)
        seen.append([int(x) for x in ctx.get(dut.result).counts])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == [[0, 0]]


def test_init() -> None:
    dut = ClassCounter(10, 8, 20)
    assert dut.classes == 10 and dut.no_class == 15
    assert dut.result_layout.size == 10 * 5 + 4 + 1
    assert [name for name, _ in dut.result_layout] == ["counts", "cls", "valid_class"]


def test_wrong_arguments() -> None:
    with pytest.raises(ValueError, match="classes must be >= 1, not 0"):
        ClassCounter(0, 4, 6)
    with pytest.raises(TypeError, match="tsteps must be an integer, not None"):
        ClassCounter(3, 4, None)  # type: ignore[arg-type]
