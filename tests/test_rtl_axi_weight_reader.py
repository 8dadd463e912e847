"""rtl.axi_weight_reader.AxiWeightReader in the Amaranth simulator, against a Python AXI slave.

The slave here is a few lines of testbench (the cocotb bench, sim/test_axi_weight_reader.py,
runs the Verilog against cocotbext-axi's AxiRam): it accepts AR with random ``arready``,
returns each burst's beats from a memory image made by :func:`pack_words` after a
fixed or random latency, in order, with random ``rvalid`` gaps, and checks the AXI
rules a master must keep (AR stable until taken, INCR, ``arsize``, 256 beats, 4 KB).
The consumer takes words with random ``ready``, or, like the neuron core, a whole row
at a time once ``level`` says it is there.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

import pytest
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator, SimulatorContext
from hypothesis import given, settings
from hypothesis import strategies as st

from rtl.axi import AxiReadSignature
from rtl.axi_weight_reader import AxiWeightReader, pack_words, unpack_words, word_geometry


@dataclass
class Bus:
    """How the testbench's slave and consumer behave."""

    ar_p: float = 1.0  # probability of arready per cycle
    r_p: float = 1.0  # probability that a due beat is offered in a cycle
    latency: tuple[int, int] = (1, 1)  # cycles from AR handshake to its first beat, min/max
    ready_p: float = 1.0  # probability of words.ready per cycle (word-at-a-time consumer)
    rows: bool = False  # consumer takes a request's words at once when level says so
    req_p: float = 1.0  # probability of raising requests.valid in a cycle
    error_beats: set[int] = field(default_factory=set)  # byte addresses answered SLVERR


@dataclass
class Outcome:
    words: list[int]  # raw words taken
    ars: list[tuple[int, int]]  # (araddr, arlen) of each burst
    cycles: int  # from the first request's handshake to the last word's
    error_at: int | None  # cycle of the first error beat
    error_seen: bool


def _image(rng: random.Random, n_words: int, dut: AxiWeightReader) -> tuple[list, bytes]:
    lo, hi = -(1 << (dut.weight_bits - 1)), (1 << (dut.weight_bits - 1)) - 1
    words = [[rng.randint(lo, hi) for _ in range(dut.lanes)] for _ in range(n_words)]
    return words, pack_words(words, dut.lanes, dut.weight_bits, dut.data_bytes)


def _expected(dut: AxiWeightReader, image: bytes, requests: list[tuple[int, int]]) -> list[int]:
    mask = (1 << (dut.lanes * dut.weight_bits)) - 1
    s = dut.stride
    return [
        int.from_bytes(image[a + k * s : a + (k + 1) * s], "little") & mask
        for a, n in requests
        for k in range(n)
    ]


def _run(
    dut: AxiWeightReader,
    image: bytes,
    requests: list[tuple[int, int]],
    bus: Bus,
    seed: int,
) -> Outcome:
    """Play ``requests`` ((byte address, words)) through ``dut``; check every cycle."""
    axi, d = dut.axi, dut.data_bytes
    beats_per_word = dut.beats_per_word
    want = _expected(dut, image, requests)
    rows = [n for _, n in requests if n]
    out = Outcome([], [], 0, None, False)

    async def bench(ctx: SimulatorContext) -> None:
        rng = random.Random(seed)
        due: deque[tuple[int, int, int, bool]] = deque()  # (cycle due, data, rresp, rlast)
        offer: tuple[int, int, int, bool] | None = None
        held_ar: tuple[int, int] | None = None  # AR offered and not taken last cycle
        held_word: int | None = None  # word offered and not taken last cycle
        req_i, req_valid, accepted_words = 0, False, 0
        beats_in, prev_level, prev_taken = 0, 0, 0
        row_left, row_i = 0, 0
        first_req, idle_run = None, 0
        for cycle in range(200_000):
            # drive the slave's and the consumer's side of this cycle
            arready = rng.random() < bus.ar_p
            ctx.set(axi.arready, arready)
            if offer is None and due and due[0][0] <= cycle and rng.random() < bus.r_p:
                offer = due.popleft()
            if offer is not None:
                ctx.set(axi.rvalid, 1)
                ctx.set(axi.rdata, offer[1])
                ctx.set(axi.rresp, offer[2])
                ctx.set(axi.rlast, offer[3])
            else:  # garbage while not valid: the reader must not sample it
                ctx.set(axi.rvalid, 0)
                ctx.set(axi.rdata, rng.getrandbits(8 * d))
                ctx.set(axi.rresp, rng.getrandbits(2))
            if req_i < len(requests) and (req_valid or rng.random() < bus.req_p):
                req_valid = True
                addr, n = requests[req_i]
                ctx.set(dut.requests.payload, {"addr": addr, "words": n})
            ctx.set(dut.requests.valid, req_valid)
            level = ctx.get(dut.level)
            if bus.rows:
                if row_left == 0 and row_i < len(rows) and level >= rows[row_i]:
                    row_left, row_i = rows[row_i], row_i + 1
                ready = row_left > 0
            else:
                ready = rng.random() < bus.ready_p
            ctx.set(dut.words.ready, ready)

            # read the reader's side and check it
            arvalid = ctx.get(axi.arvalid)
            ar = (ctx.get(axi.araddr), ctx.get(axi.arlen))
            valid, word = ctx.get(dut.words.valid), ctx.get(dut.words.payload.as_value())
            assert ctx.get(axi.rready), "rready low"
            if held_ar is not None:
                assert arvalid and ar == held_ar, f"cycle {cycle}: AR changed before taken"
            if held_word is not None:
                assert valid and word == held_word, f"cycle {cycle}: word changed before taken"
            in_fifo = beats_in // beats_per_word - len(out.words)
            assert in_fifo <= dut.depth_words, f"cycle {cycle}: FIFO overflow"
            assert level <= in_fifo, f"cycle {cycle}: level {level} > {in_fifo} words held"
            assert level >= prev_level - prev_taken, f"cycle {cycle}: level broke its promise"
            assert not level or valid, f"cycle {cycle}: level {level} without valid"
            if bus.rows and row_left:
                assert valid, f"cycle {cycle}: row word missing"
            error = ctx.get(dut.error)
            assert error == (out.error_at is not None), f"cycle {cycle}: error {error}"
            if accepted_words > len(out.words) or req_valid:
                idle_run = 0
                if accepted_words > len(out.words):
                    assert not ctx.get(dut.idle) and ctx.get(dut.busy), f"cycle {cycle}: idle"
            else:
                idle_run += 1

            # the handshakes of this cycle
            if arvalid and arready:
                assert ctx.get(axi.arsize) == d.bit_length() - 1
                assert ctx.get(axi.arburst) == 1 and ctx.get(axi.arid) == 0
                addr, length = ar
                assert addr % d == 0, f"unaligned burst {addr:#x}"
                assert length < 256
                assert addr % 4096 + (length + 1) * d <= 4096, f"4 KB crossed: {ar}"
                out.ars.append(ar)
                lat = rng.randint(*bus.latency)
                for k in range(length + 1):
                    a = addr + k * d
                    resp = 2 if a in bus.error_beats else 0
                    data = int.from_bytes(image[a : a + d], "little")
                    due.append((cycle + lat, data, resp, k == length))
            held_ar = ar if arvalid and not arready else None
            if offer is not None:  # rready is high
                if offer[2] & 2 and out.error_at is None:
                    out.error_at = cycle
                offer = None
                beats_in += 1
            if req_valid and ctx.get(dut.requests.ready):
                if first_req is None:
                    first_req = cycle
                accepted_words += requests[req_i][1]
                req_i, req_valid = req_i + 1, False
            prev_level, prev_taken = level, int(valid and ready)
            if valid and ready:
                out.words.append(word)
                row_left = max(row_left - 1, 0)
                assert len(out.words) <= len(want), "more words than requested"
                if len(out.words) == len(want):
                    out.cycles = cycle - first_req
            held_word = word if valid and not ready else None
            await ctx.tick()
            if req_i == len(requests) and len(out.words) == len(want) and idle_run > 4:
                assert ctx.get(dut.idle), "not idle when drained"
                assert not ctx.get(axi.arvalid) and not due and offer is None
                out.error_seen = bool(ctx.get(dut.error))
                return
        raise AssertionError("no end")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert out.words == want
    return out


def _covers(dut: AxiWeightReader, requests: list[tuple[int, int]], ars: list) -> None:
    """The bursts read exactly the requests' bytes, in order, each once."""
    want = [a + k for a, n in requests for k in range(0, n * dut.stride, dut.data_bytes)]
    got = [a + k * dut.data_bytes for a, length in ars for k in range(length + 1)]
    assert got == want


# (lanes, weight_bits, data_bytes): 1, 2 and 3 beats per word, partial last beats
CONFIGS = [(4, 16, 8), (4, 16, 4), (3, 12, 2), (8, 8, 1), (5, 9, 16)]


@pytest.mark.parametrize(("lanes", "weight_bits", "data_bytes"), CONFIGS)
@pytest.mark.parametrize(
    "bus",
    [
        Bus(latency=(3, 3)),
        Bus(ar_p=0.4, r_p=0.6, latency=(1, 12), ready_p=0.7, req_p=0.5),
        Bus(ar_p=0.7, r_p=0.8, latency=(1, 30), rows=True),
        Bus(ar_p=0.9, r_p=0.9, latency=(2, 6), ready_p=0.2),
    ],
    ids=["fixed", "random", "rows", "slow-consumer"],
)
def test_sim_every_word_in_order(lanes: int, weight_bits: int, data_bytes: int, bus: Bus) -> None:
    rng = random.Random(lanes * 1000 + weight_bits * 10 + data_bytes)
    dut = AxiWeightReader(lanes, weight_bits, data_bytes, depth_words=12, max_row_words=9)
    n_words = 4096 // dut.stride + 40  # the table spans a 4 KB boundary
    _, image = _image(rng, n_words, dut)
    requests = []
    for _ in range(24):
        n = rng.choice([0, 1, 2, rng.randint(1, 9), 9])
        requests.append((rng.randrange(n_words - n + 1) * dut.stride, n))
    requests.append(((4096 // dut.stride) * dut.stride - 2 * dut.stride, 9))  # across 4 KB
    out = _run(dut, image, requests, bus, seed=rng.getrandbits(32))
    _covers(dut, requests, out.ars)
    assert not out.error_seen


def test_sim_payload_is_the_lanes_signed() -> None:
    """The word's view decodes to the packed weights (lane j at bits j * weight_bits)."""
    dut = AxiWeightReader(3, 12, 2, depth_words=4, max_row_words=4)
    words = [[-2048, 2047, -1], [0, 1, -2], [5, -5, 1000], [-1000, 7, 0]]
    image = pack_words(words, 3, 12, 2)
    got = []

    async def bench(ctx: SimulatorContext) -> None:
        ctx.set(dut.words.ready, 0)
        ctx.set(dut.axi.arready, 1)
        ctx.set(dut.requests.payload, {"addr": 0, "words": 4})
        ctx.set(dut.requests.valid, 1)
        await ctx.tick()
        ctx.set(dut.requests.valid, 0)
        while not ctx.get(dut.axi.arvalid):
            await ctx.tick()
        assert ctx.get(dut.axi.araddr) == 0 and ctx.get(dut.axi.arlen) == 4 * 3 - 1
        await ctx.tick()
        ctx.set(dut.axi.arready, 0)
        for k in range(12):
            ctx.set(dut.axi.rvalid, 1)
            ctx.set(dut.axi.rdata, int.from_bytes(image[2 * k : 2 * k + 2], "little"))
            await ctx.tick()
        ctx.set(dut.axi.rvalid, 0)
        for _ in range(3):
            await ctx.tick()
        assert ctx.get(dut.level) == 4
        ctx.set(dut.words.ready, 1)
        for _ in range(4):
            assert ctx.get(dut.words.valid)
            got.append([ctx.get(dut.words.payload[j]) for j in range(3)])
            await ctx.tick()
        assert not ctx.get(dut.words.valid) and ctx.get(dut.idle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == words


@pytest.mark.parametrize(
    ("lanes", "weight_bits", "data_bytes", "latency"),
    [(4, 16, 8, 1), (4, 16, 8, 12), (4, 16, 4, 20), (3, 12, 2, 8), (8, 8, 1, 30)],
)
def test_sim_full_bandwidth(lanes: int, weight_bits: int, data_bytes: int, latency: int) -> None:
    """No back-pressure, latency L: N words in N * beats_per_word + L + 6 cycles (one beat
    every cycle once the first arrives): as one long request, and as back-to-back rows
    through a FIFO of only about 4/3 (L + 6) beats."""
    beats = word_geometry(lanes, weight_bits, data_bytes)[0]
    n = 150
    rng = random.Random(latency)
    bus = Bus(latency=(latency, latency))
    dut = AxiWeightReader(lanes, weight_bits, data_bytes, depth_words=n, max_row_words=n)
    _, image = _image(rng, 400, dut)
    out = _run(dut, image, [(7 * dut.stride, n)], bus, seed=1)
    assert out.cycles <= n * beats + latency + 6, f"{out.cycles} cycles"
    depth = max(-(-(4 * (latency + 6)) // (3 * beats)) + 1, 8)
    for row in (1, 3, 8):
        dut = AxiWeightReader(lanes, weight_bits, data_bytes, depth_words=depth, max_row_words=8)
        requests = [(k * dut.stride, row) for k in range(100, 100 + n, row)]
        out = _run(dut, image, requests, bus, seed=2)
        words = len(out.words)
        assert out.cycles <= words * beats + latency + 6, f"rows of {row}: {out.cycles} cycles"


def test_sim_bursts_split_at_256_beats_and_4k() -> None:
    dut = AxiWeightReader(1, 8, 1, depth_words=600, max_row_words=600)
    rng = random.Random(3)
    _, image = _image(rng, 8192, dut)
    requests = [(0x100, 600), (4096 - 10, 30), (8192 - 600, 600)]
    out = _run(dut, image, requests, Bus(latency=(2, 9), ready_p=0.9), seed=4)
    _covers(dut, requests, out.ars)
    assert (0x100, 255) in out.ars  # a full 256-beat burst
    assert (4096 - 10, 9) in out.ars and (4096, 19) in out.ars  # split at 4 KB
    assert max(length for _, length in out.ars) == 255


def test_sim_slverr_sets_sticky_error() -> None:
    dut = AxiWeightReader(4, 16, 4, depth_words=8, max_row_words=8)
    rng = random.Random(5)
    _, image = _image(rng, 64, dut)
    requests = [(0, 8), (10 * dut.stride, 8), (30 * dut.stride, 8)]
    bus = Bus(latency=(1, 5), r_p=0.7, error_beats={10 * dut.stride + dut.data_bytes})
    out = _run(dut, image, requests, bus, seed=6)  # also: error low until that beat, then high
    assert out.error_at is not None and out.error_seen


def test_sim_error_stays_low_on_okay() -> None:
    dut = AxiWeightReader(4, 16, 4, depth_words=8, max_row_words=8)
    _, image = _image(random.Random(7), 16, dut)
    out = _run(dut, image, [(0, 8), (8 * dut.stride, 8)], Bus(latency=(1, 3)), seed=8)
    assert out.error_at is None and not out.error_seen


def test_geometry() -> None:
    dut = AxiWeightReader(4, 16, 4, depth_words=16, max_row_words=8)
    assert (dut.beats_per_word, dut.stride) == (2, 8)
    dut = AxiWeightReader(3, 12, 16, depth_words=16, max_row_words=8)
    assert (dut.beats_per_word, dut.stride) == (1, 16)
    dut = AxiWeightReader(8, 16, 1, depth_words=16, max_row_words=8)
    assert (dut.beats_per_word, dut.stride) == (16, 16)
    assert dut.credit_beats == 256 and dut.burst_threshold == 64


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((4, 16, 3), {"depth_words": 8, "max_row_words": 4}, ValueError),
        ((4, 16, 128), {"depth_words": 8, "max_row_words": 4}, ValueError),
        ((4, 16, 4), {"depth_words": 3, "max_row_words": 4}, ValueError),
        ((4, 16, 4), {"depth_words": 1, "max_row_words": 1}, ValueError),
        ((4, 16, 4), {"depth_words": 8, "max_row_words": 0}, ValueError),
        ((0, 16, 4), {"depth_words": 8, "max_row_words": 4}, ValueError),
        ((4, 16, 4), {"depth_words": 8, "max_row_words": 4, "addr_width": 8}, ValueError),
        ((4, 16.0, 4), {"depth_words": 8, "max_row_words": 4}, TypeError),
    ],
)
def test_refuses_bad_arguments(args: tuple, kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        AxiWeightReader(*args, **kwargs)


def test_pack_words_refuses_out_of_range() -> None:
    with pytest.raises(ValueError):
        pack_words([[128]], 1, 8, 1)
    with pytest.raises(ValueError):
        pack_words([[1, 2]], 1, 8, 1)
    assert pack_words([[-1, 1]], 2, 4, 2) == bytes([0x1F, 0])


@settings(max_examples=200, deadline=None)
@given(
    lanes=st.integers(1, 9),
    weight_bits=st.integers(1, 20),
    data_bytes=st.sampled_from([1, 2, 4, 8, 16, 32, 64]),
    data=st.data(),
)
def test_pack_words_round_trip(
    lanes: int, weight_bits: int, data_bytes: int, data: st.DataObject
) -> None:
    lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    words = data.draw(st.lists(st.lists(st.integers(lo, hi), min_size=lanes, max_size=lanes)))
    image = pack_words(words, lanes, weight_bits, data_bytes)
    beats, stride = word_geometry(lanes, weight_bits, data_bytes)
    assert stride == beats * data_bytes and (beats - 1) * 8 * data_bytes < lanes * weight_bits
    assert len(image) == len(words) * stride
    assert unpack_words(image, lanes, weight_bits, data_bytes) == words
    for k in range(len(words)):  # unused bits of the word's last beat are 0
        assert (
            int.from_bytes(image[k * stride : (k + 1) * stride], "little") >> (lanes * weight_bits)
            == 0
        )


def test_axi_signature() -> None:
    """Master's view: AR and ``rready`` out, ``arready`` and R in; names as AMBA's."""
    sig = AxiReadSignature(40, 8)
    assert sig == AxiReadSignature(40, 8) and sig != AxiReadSignature(40, 16)
    assert sig.members["araddr"] == Out(40) and sig.members["rdata"] == In(64)
    assert sig.members["arready"].flow is In and sig.members["rready"].flow is Out
    dut = AxiWeightReader(4, 16, 8, addr_width=40, depth_words=4, max_row_words=4)
    assert dut.signature.members["axi"] == Out(sig)
    with pytest.raises(ValueError):
        AxiReadSignature(32, 3)
