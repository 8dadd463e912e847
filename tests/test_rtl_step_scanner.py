"""rtl.step_scanner.StepScanner in the Amaranth simulator, driven at its ports."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator, SimulatorContext

from rtl.step_scanner import StepScanner

Op = tuple[int, int, int]  # (layer, index, fire)


def _expected(inputs: list[int], vectors: list[int]) -> list[Op]:
    """Per layer its set bits ascending, then its fire operation."""
    out: list[Op] = []
    for l, (n, v) in enumerate(zip(inputs, vectors, strict=True)):
        out += [(l, i, 0) for i in range(n) if v >> i & 1]
        out.append((l, 0, 1))
    return out


def _pack(dut: StepScanner, vectors: list[int]) -> int:
    """The layers' vectors as the ``vectors`` port holds them (each padded to whole words)."""
    packed, shift = 0, 0
    for v, words in zip(vectors, dut.layer_words, strict=True):
        packed |= v << shift
        shift += words * dut.width
    return packed


def _scan(dut: StepScanner, steps: list[list[int]], ready_p: float, seed: int) -> list[list[Op]]:
    """Scan each step's vectors with ``ready`` high with probability ``ready_p``; a scanner
    built with ``memory`` reads them from a model of a synchronous read port."""
    got: list[list[Op]] = []
    packed = [0]  # the vectors the read port model serves

    async def read_port(ctx: SimulatorContext) -> None:
        async for _, _, word in ctx.tick().sample(dut.read_word):
            ctx.set(dut.read_data, packed[0] >> (word * dut.width) & ((1 << dut.width) - 1))

    async def testbench(ctx: SimulatorContext) -> None:
        rng = random.Random(seed)
        for vectors in steps:
            packed[0] = _pack(dut, vectors)
            if not dut.memory:
                ctx.set(dut.vectors, packed[0])
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            assert not ctx.get(dut.done), "done the cycle after start"
            taken: list[Op] = []
            cycles = 0
            while not ctx.get(dut.done):
                ctx.set(dut.ops.ready, rng.random() < ready_p)
                if ctx.get(dut.ops.valid) and ctx.get(dut.ops.ready):
                    op = ctx.get(dut.ops.payload)
                    taken.append((op.layer, op.index, op.fire))
                await ctx.tick()
                cycles += 1
                assert cycles < 40 * (sum(dut.inputs) + 8) / ready_p, "no end"
            assert not ctx.get(dut.ops.valid), "done with an operation on offer"
            got.append(taken)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    if dut.memory:
        sim.add_process(read_port)
    sim.run()
    return got


@pytest.mark.parametrize(
    ("inputs", "width"), [([1], 1), ([5], 4), ([12, 7, 3], 4), ([9, 16, 2], 8), ([20, 6], 3)]
)
@pytest.mark.parametrize("ready_p", [1.0, 0.4])
@pytest.mark.parametrize("memory", [False, True], ids=["registers", "memory"])
def test_every_spike_once_in_order_then_the_fire(
    inputs: list[int], width: int, ready_p: float, memory: bool
):
    rng = random.Random(sum(inputs) * 31 + width)
    dut = StepScanner(inputs, width, memory=memory)
    steps = [[0] * len(inputs), [(1 << n) - 1 for n in inputs], [1 << (n - 1) for n in inputs]]
    steps += [[rng.getrandbits(n) for n in inputs] for _ in range(4)]
    steps += [[rng.getrandbits(n) & rng.getrandbits(n) for n in inputs] for _ in range(3)]
    got = _scan(dut, steps, ready_p, seed=7)
    for vectors, taken in zip(steps, got, strict=True):
        assert taken == _expected(inputs, vectors)


def test_start_abandons_a_scan_in_progress():
    dut = StepScanner([8, 4], 4)
    full = [0xFF, 0xF]
    taken: list[Op] = []

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(dut.vectors, _pack(dut, full))
        ctx.set(dut.ops.ready, 1)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        await ctx.tick().repeat(4)  # a few operations out, the rest abandoned
        ctx.set(dut.vectors, _pack(dut, [0b10, 0]))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        while not ctx.get(dut.done):
            if ctx.get(dut.ops.valid):
                op = ctx.get(dut.ops.payload)
                taken.append((op.layer, op.index, op.fire))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert taken == [(0, 1, 0), (0, 0, 1), (1, 0, 1)]


@pytest.mark.parametrize("bad", [[], [0], "12", [3, -1]])
def test_bad_inputs_are_refused(bad: object):
    with pytest.raises((TypeError, ValueError)):
        StepScanner(bad, 4)  # type: ignore[arg-type]
