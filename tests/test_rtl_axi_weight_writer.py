"""rtl.axi_weight_writer.AxiWeightWriter in the Amaranth simulator, against a Python AXI slave.

The slave (:func:`write_slave`, also the write half of the accelerator's training bench,
tests/test_rtl_training_external.py) accepts AW and W independently with random
``awready`` / ``wready``, matches the beats to the bursts in order, writes them into a
byte image with ``wstrb``, and answers each burst on B after a random delay; it checks
the rules a master must keep (AW and W stable until taken, INCR, ``awsize``, 256 beats,
no 4 KB crossing, ``wlast`` exactly on each burst's last beat).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator, SimulatorContext

from rtl.axi import AXI_4K, AxiSignature, AxiWriteSignature
from rtl.axi_weight_reader import pack_words, unpack_words
from rtl.axi_weight_writer import AxiWeightWriter


@dataclass
class WriteLog:
    """What the slave saw: (awaddr, beats) of every burst, and the responses it sent."""

    bursts: list[tuple[int, int]] = field(default_factory=list)
    responses: int = 0
    beats: int = 0


def write_slave(
    axi: Any,
    memory: bytearray,
    base: int,
    *,
    gaps: float,
    b_delay: tuple[int, int],
    seed: int,
    error_at: int | None = None,
    log: WriteLog | None = None,
) -> Callable[[SimulatorContext], Any]:
    """An AXI4 write slave over ``memory`` at ``base``: ``awready`` and ``wready`` each
    withheld with probability ``gaps``, a burst's response ``b_delay`` cycles after its
    last beat (in order); a burst that writes byte ``error_at`` answers SLVERR."""
    d = len(axi.wstrb)
    log = log if log is not None else WriteLog()

    async def slave(ctx: SimulatorContext) -> None:
        rng = random.Random(seed)
        aws: deque[tuple[int, int]] = deque()
        beats: deque[tuple[int, int, int]] = deque()
        due: deque[tuple[int, int]] = deque()  # (cycle, bresp)
        held_aw = held_w = None  # what was offered and not taken, that must stay
        cycle = 0
        while True:
            aw_ready, w_ready = rng.random() >= gaps, rng.random() >= gaps
            ctx.set(axi.awready, aw_ready)
            ctx.set(axi.wready, w_ready)
            offer = due[0] if due and due[0][0] <= cycle and rng.random() >= gaps else None
            ctx.set(axi.bvalid, offer is not None)
            ctx.set(axi.bresp, offer[1] if offer else 0)
            aw = _aw(ctx, axi) if ctx.get(axi.awvalid) else None
            w = _w(ctx, axi) if ctx.get(axi.wvalid) else None
            assert held_aw is None or aw == held_aw, f"AW changed before taken: {held_aw} {aw}"
            assert held_w is None or w == held_w, f"W changed before taken: {held_w} {w}"
            held_aw = aw if aw is not None and not aw_ready else None
            held_w = w if w is not None and not w_ready else None
            if aw is not None and aw_ready:
                addr, length, size, burst = aw
                assert (size, burst) == (d.bit_length() - 1, 1), "INCR bursts of whole beats"
                assert addr % d == 0 and length <= 256, f"burst {addr:#x} + {length}"
                assert addr // AXI_4K == (addr + length * d - 1) // AXI_4K, "crosses 4 KB"
                aws.append((addr, length))
                log.bursts.append((addr, length))
            if w is not None and w_ready:
                beats.append(w[:3])
                log.beats += 1
            if offer is not None and ctx.get(axi.bready):
                due.popleft()
                log.responses += 1
            while aws and len(beats) >= aws[0][1]:
                addr, length = aws.popleft()
                hit = False
                for k in range(length):
                    data, strb, last = beats.popleft()
                    assert last == (k == length - 1), f"wlast on beat {k} of {length}"
                    a = addr + k * d - base
                    assert a >= 0 and a + d <= len(memory), f"write outside: {addr:#x}"
                    hit |= error_at is not None and a <= error_at < a + d
                    for i in range(d):
                        if strb >> i & 1:
                            memory[a + i] = data >> (8 * i) & 0xFF
                due.append((cycle + rng.randint(*b_delay), 2 if hit else 0))
            await ctx.tick()
            cycle += 1

    return slave


def _aw(ctx: SimulatorContext, axi: Any) -> tuple[int, int, int, int]:
    return (
        ctx.get(axi.awaddr),
        ctx.get(axi.awlen) + 1,
        ctx.get(axi.awsize),
        ctx.get(axi.awburst),
    )


def _w(ctx: SimulatorContext, axi: Any) -> tuple[int, int, int]:
    return ctx.get(axi.wdata), ctx.get(axi.wstrb), ctx.get(axi.wlast)


@dataclass
class Run:
    image: bytes
    log: WriteLog
    cycles: int  # from the first reservation until idle
    error: bool


def _run(
    dut: AxiWeightWriter,
    base: int,
    n_words: int,
    writes: list[tuple[int, list[int]]],
    *,
    delay: int,
    reserve_p: float = 1.0,
    gaps: float = 0.0,
    b_delay: tuple[int, int] = (0, 0),
    seed: int = 1,
    error_at: int | None = None,
) -> Run:
    """Reserve each write when ``room`` allows (with chance ``reserve_p`` per cycle), send
    it ``delay`` cycles later, wait for ``idle``."""
    memory = bytearray(n_words * dut.stride)
    log = WriteLog()
    out: dict[str, Any] = {}

    async def producer(ctx: SimulatorContext) -> None:
        rng = random.Random(seed + 1)
        todo = deque(writes)
        due: deque[tuple[int, tuple[int, list[int]]]] = deque()
        cycle = 0
        assert ctx.get(dut.idle) and ctx.get(dut.room)
        while todo or due:
            reserve = bool(todo) and ctx.get(dut.room) and rng.random() < reserve_p
            ctx.set(dut.reserve, reserve)
            if reserve:
                due.append((cycle + delay, todo.popleft()))
            send = due and due[0][0] == cycle
            ctx.set(dut.writes.valid, bool(send))
            if send:
                addr, word = due.popleft()[1]
                ctx.set(dut.writes.payload.addr, addr)
                ctx.set(dut.writes.payload.data, word)
                assert ctx.get(dut.writes.ready), "a reserved write found no room"
            await ctx.tick()
            cycle += 1
        ctx.set(dut.reserve, 0)
        ctx.set(dut.writes.valid, 0)
        while not ctx.get(dut.idle):
            await ctx.tick()
            cycle += 1
        await ctx.tick().repeat(3)
        out["cycles"], out["error"] = cycle, bool(ctx.get(dut.error))
        assert ctx.get(dut.idle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    slave = write_slave(
        dut.axi, memory, base, gaps=gaps, b_delay=b_delay, seed=seed, error_at=error_at, log=log
    )
    sim.add_testbench(slave, background=True)
    sim.run()
    return Run(bytes(memory), log, out["cycles"], out["error"])


def _words(rng: random.Random, n: int, dut: AxiWeightWriter) -> list[list[int]]:
    lo, hi = -(1 << (dut.weight_bits - 1)), (1 << (dut.weight_bits - 1)) - 1
    return [[rng.randint(lo, hi) for _ in range(dut.lanes)] for _ in range(n)]


@pytest.mark.parametrize(
    ("lanes", "weight_bits", "data_bytes", "base", "gaps", "b_delay"),
    [
        (4, 16, 8, 0x1000, 0.0, (0, 0)),  # a word is one beat
        (4, 16, 2, 0x2000, 0.4, (0, 30)),  # four beats
        (3, 16, 2, 0x0FF0, 0.3, (2, 9)),  # stride 6 from 0xff0: words straddle 4 KB
        (5, 8, 4, 0x0FFC, 0.2, (1, 5)),  # 40 bits in two beats of which the last half used
    ],
    ids=["1-beat", "4-beat-random", "4k-straddle", "partial-beat"],
)
def test_words_land_in_the_image(
    lanes: int,
    weight_bits: int,
    data_bytes: int,
    base: int,
    gaps: float,
    b_delay: tuple[int, int],
) -> None:
    """Random words written in random order (each once) land where the reader reads them
    (pack_words' image), whatever the slave's gaps and response delays; every burst has a
    response, and the writer is idle only after the last."""
    dut = AxiWeightWriter(lanes, weight_bits, data_bytes, depth_words=6)
    rng = random.Random(lanes * data_bytes)
    n_words = 1400 // dut.stride + 3  # the bases near 4 KB: words across it
    words = _words(rng, n_words, dut)
    order = [*rng.sample(range(n_words), 60), n_words - 1]
    order = list(dict.fromkeys(order))
    writes = [(base + k * dut.stride, words[k]) for k in order]
    run = _run(dut, base, n_words, writes, delay=7, gaps=gaps, b_delay=b_delay, seed=3)
    got = unpack_words(run.image, lanes, weight_bits, data_bytes)
    for k in range(n_words):
        assert got[k] == (words[k] if k in order else [0] * lanes), f"word {k}"
    assert run.log.responses == len(run.log.bursts) and not run.error
    assert run.log.beats == len(order) * dut.beats_per_word
    stride_words = {a for a, _ in run.log.bursts if (a - base) % dut.stride == 0}
    assert len(stride_words) == len(order), "a burst starts every word"
    # padding bits of the last beat are written as 0
    assert run.image == pack_words(got, lanes, weight_bits, data_bytes)


def test_split_at_256_beats() -> None:
    """A word longer than 256 beats (2560 bits on a 1-byte bus) goes out as two bursts."""
    dut = AxiWeightWriter(160, 16, 1, depth_words=2)
    words = _words(random.Random(5), 2, dut)
    run = _run(dut, 0, 2, [(0, words[1]), (dut.stride, words[0])], delay=2, gaps=0.1)
    assert run.log.bursts == [(0, 256), (256, 64), (320, 256), (576, 64)]
    assert unpack_words(run.image, 160, 16, 1) == [words[1], words[0]]


def test_a_word_per_cycle_and_credits() -> None:
    """A ready slave takes a one-beat word per cycle: the writer keeps up with a producer
    that reserves every cycle, its depth covering the reservation-to-pop loop."""
    dut = AxiWeightWriter(4, 16, 8, depth_words=12)
    n = 200
    words = _words(random.Random(2), n, dut)
    run = _run(dut, 0, n, [(k * 8, w) for k, w in enumerate(words)], delay=6)
    assert run.cycles <= n + 16, run.cycles
    assert unpack_words(run.image, 4, 16, 8) == words


def test_credits_throttle_a_slow_slave() -> None:
    """With few credits and a slow slave the producer waits on ``room``; nothing is lost."""
    dut = AxiWeightWriter(4, 16, 8, depth_words=3, max_outstanding=2)
    words = _words(random.Random(4), 40, dut)
    writes = [(k * 8, w) for k, w in enumerate(words)]
    run = _run(dut, 0, 40, writes, delay=5, gaps=0.6, b_delay=(5, 40), reserve_p=0.8)
    assert unpack_words(run.image, 4, 16, 8) == words
    assert run.log.responses == 40


def test_error_response_is_sticky() -> None:
    dut = AxiWeightWriter(4, 16, 8, depth_words=4)
    words = _words(random.Random(6), 8, dut)
    run = _run(dut, 0, 8, [(k * 8, w) for k, w in enumerate(words)], delay=3, error_at=5 * 8)
    assert run.error
    assert unpack_words(run.image, 4, 16, 8) == words  # the data still went out


def test_signatures() -> None:
    """Master's view: AW, W and ``bready`` out, the readies and B in; the combined
    signature holds the read and write members under one port."""
    sig = AxiWriteSignature(40, 8)
    assert sig == AxiWriteSignature(40, 8) and sig != AxiWriteSignature(40, 16)
    assert sig.members["awaddr"] == Out(40) and sig.members["wdata"] == Out(64)
    assert sig.members["wstrb"] == Out(8) and sig.members["bresp"] == In(2)
    assert sig.members["awready"].flow is In and sig.members["bready"].flow is Out
    both = AxiSignature(32, 4)
    assert {"araddr", "rdata", "awaddr", "wdata", "bvalid"} <= set(both.members.keys())
    assert both != AxiWriteSignature(32, 4)
    dut = AxiWeightWriter(4, 16, 8, addr_width=40, depth_words=4)
    assert dut.signature.members["axi"] == Out(sig)
    with pytest.raises(ValueError):
        AxiWriteSignature(32, 3)
    with pytest.raises(ValueError):
        AxiWeightWriter(4, 16, 3, depth_words=4)
