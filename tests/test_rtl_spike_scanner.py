"""rtl.spike_scanner.SpikeScanner in the Amaranth simulator, driven at its ports."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator, SimulatorContext

from rtl.spike_scanner import SpikeScanner


def _scan(
    dut: SpikeScanner, vectors: list[int], ready_p: float, seed: int
) -> list[tuple[list[int], int]]:
    """Scan each vector with ``ready`` high with probability ``ready_p`` per cycle; per
    vector the indices taken, in order, and the cycles from ``start`` to ``done``."""
    got: list[tuple[list[int], int]] = []

    async def testbench(ctx: SimulatorContext) -> None:
        rng = random.Random(seed)
        for vector in vectors:
            ctx.set(dut.vector, vector)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            taken, cycles = [], 0
            while True:
                ctx.set(dut.events.ready, rng.random() < ready_p)
                if ctx.get(dut.done):
                    assert not ctx.get(dut.events.valid), "done with an index on offer"
                    break
                if ctx.get(dut.events.valid) and ctx.get(dut.events.ready):
                    taken.append(ctx.get(dut.events.payload))
                await ctx.tick()
                cycles += 1
                assert cycles < 20 * (dut.words + dut.width * dut.words) / ready_p, "no end"
            got.append((taken, cycles))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return got


def _bits(vector: int) -> list[int]:
    return [i for i in range(vector.bit_length()) if vector >> i & 1]


@pytest.mark.parametrize(("words", "width"), [(1, 1), (5, 4), (7, 3), (3, 8), (16, 2)])
@pytest.mark.parametrize("ready_p", [1.0, 0.5, 0.1])
def test_sim_every_bit_once_in_order_under_back_pressure(
    words: int, width: int, ready_p: float
) -> None:
    rng = random.Random(words * 100 + width)
    n = words * width
    vectors = [0, (1 << n) - 1, 1 << (n - 1), 1]
    vectors += [rng.getrandbits(n) for _ in range(4)]
    vectors += [rng.getrandbits(n) & rng.getrandbits(n) & rng.getrandbits(n) for _ in range(4)]
    dut = SpikeScanner(words, width)
    for vector, (taken, _) in zip(vectors, _scan(dut, vectors, ready_p, seed=n), strict=True):
        assert taken == _bits(vector), f"vector {vector:#x}"


@pytest.mark.parametrize("word", [0, 1, 5])
def test_sim_a_silent_word_costs_one_cycle(word: int) -> None:
    """With ``ready`` always high, the index of a bit in word ``k`` is offered ``k + 3``
    cycles after ``start``: one to load word 0, one per silent word, one into the output
    register; ``done`` follows its transfer."""
    words, width = 6, 4
    dut = SpikeScanner(words, width)
    first_offer: list[int] = []

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(dut.vector, 1 << (word * width + 2))
        ctx.set(dut.events.ready, 1)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        assert not ctx.get(dut.done), "done must fall the cycle after start"
        for cycle in range(1, 3 * words):
            if ctx.get(dut.events.valid):
                first_offer.append(cycle)
                assert ctx.get(dut.events.payload) == word * width + 2
                await ctx.tick()
                break
            await ctx.tick()
        await ctx.tick().until(dut.done)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert first_offer == [word + 3]


def test_sim_offer_while_ready_is_low() -> None:
    """With ``ready`` held low the first index is still offered (a stream's ``valid`` must
    not wait for ``ready``), ``k + 3`` cycles after ``start`` for a bit in word ``k``, and
    holds still until taken. Bounded waits: a scanner that never offers fails here
    instead of hanging."""
    dut = SpikeScanner(4, 4)
    offers: list[int | None] = []  # payload offered in each cycle after start, or None
    taken: list[int] = []

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(dut.vector, 0b0010_0000_0000_0000)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(10):
            offers.append(ctx.get(dut.events.payload) if ctx.get(dut.events.valid) else None)
            await ctx.tick()
        ctx.set(dut.events.ready, 1)
        for _ in range(4):
            if ctx.get(dut.events.valid):
                taken.append(ctx.get(dut.events.payload))
            await ctx.tick()
        assert ctx.get(dut.done)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert offers == [None] * 5 + [13] * 5
    assert taken == [13]


def test_sim_start_abandons_a_scan() -> None:
    """A ``start`` in the middle of a scan drops the offered index and begins at word 0."""
    dut = SpikeScanner(4, 4)
    taken: list[int] = []

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(dut.vector, 0xFFFF)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        await ctx.tick().until(dut.events.valid)  # index 0 on offer, never taken
        ctx.set(dut.vector, 0b1000_0000_0000_0100)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.events.ready, 1)
        while not ctx.get(dut.done):
            if ctx.get(dut.events.valid):
                taken.append(ctx.get(dut.events.payload))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert taken == [2, 15]


def test_init() -> None:
    dut = SpikeScanner(98, 8)
    assert (dut.words, dut.width) == (98, 8)
    assert len(dut.vector) == 784 and len(dut.events.payload) == 10
    assert len(SpikeScanner(1, 1).events.payload) == 1, "at least one bit, never zero wide"


def test_wrong_arguments() -> None:
    with pytest.raises(ValueError, match="width must be >= 1, not 0"):
        SpikeScanner(3, 0)
    with pytest.raises(TypeError, match=r"words must be an integer, not 2\.0"):
        SpikeScanner(2.0, 4)  # type: ignore[arg-type]
