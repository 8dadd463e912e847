"""cocotb testbench of rtl.axi_weight_reader.AxiWeightReader against cocotbext-axi's AxiRam.

The reader's Verilog (tests/test_sim_axi_weight_reader.py writes it: the block alone,
ports as Amaranth names them) reads weight rows from an ``AxiRamRead``, the read half
of cocotbext-axi's AXI RAM model, bound with ``AxiReadBus.from_prefix(dut, "axi_")``
(the ports are ``axi__araddr``, ...: cocotb-bus adds its ``_`` separator to the
prefix). Pause generators on the RAM's AR sink and R source give random ``arready``
back-pressure and random gaps and stalls of ``rvalid`` (a stall of up to 40 cycles is
the latency of a DRAM page miss, a one-cycle gap the interconnect's arbitration);
the requests are offered and the words taken with random gaps too.

Every cycle checks the stream rules and ``level`` (never more words than arrived,
``level > 0`` only with ``valid``, a promise kept: at least last cycle's level less
the word taken), every burst the AXI rules (INCR, ``arsize``, at most 256 beats, no
4 KB crossing) and that the bursts read exactly the requested bytes; every word is
compared with the memory image written by :func:`rtl.axi_weight_reader.pack_words`.

Environment: ``AXI_WEIGHT_READER`` (JSON of the reader's constructor arguments, set by
the pytest wrapper), ``SEED`` (printed when chosen here; replay with ``SEED=<n>``).
"""

from __future__ import annotations

import itertools
import json
import os
import random
from collections.abc import Iterator

import cocotb
from cocotb.clock import Clock
from cocotb.handle import HierarchyObject
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiRamRead, AxiReadBus

from rtl.axi_weight_reader import pack_words, word_geometry

#: Environment variable with the reader's constructor arguments as JSON.
ENV = "AXI_WEIGHT_READER"


def _params() -> dict:
    return json.loads(os.environ[ENV])


def _rng(test: str) -> random.Random:
    """Stimulus generator of one test, from ``SEED`` (a fresh printed one when unset)."""
    text = os.environ.get("SEED", "")
    seed = int(text, 0) if text else random.SystemRandom().randrange(1 << 31)
    print(f"{test}: SEED={seed} (set SEED={seed} to replay)", flush=True)
    return random.Random(f"{seed}:{test}")


def _bernoulli(rng: random.Random, p_pause: float) -> Iterator[bool]:
    while True:
        yield rng.random() < p_pause


def _stalls(rng: random.Random, p_gap: float, p_stall: float, longest: int) -> Iterator[bool]:
    """R channel pauses: one-cycle gaps and, now and then, a stall of up to ``longest``."""
    while True:
        if rng.random() < p_stall:
            yield from itertools.repeat(True, rng.randint(1, longest))
        yield rng.random() < p_gap


class Bench:
    """The reader, the RAM behind it, and the per-cycle checks of its consumer side."""

    def __init__(self, dut: HierarchyObject, rng: random.Random, ram_bytes: int = 1 << 16) -> None:
        p = _params()
        self.dut, self.rng = dut, rng
        self.lanes, self.weight_bits, self.data_bytes = (
            p["lanes"],
            p["weight_bits"],
            p["data_bytes"],
        )
        self.depth, self.max_row = p["depth_words"], p["max_row_words"]
        self.addr_width = p.get("addr_width", 32)
        self.beats, self.stride = word_geometry(self.lanes, self.weight_bits, self.data_bytes)
        self.ram = AxiRamRead(AxiReadBus.from_prefix(dut, "axi_"), dut.clk, dut.rst, size=ram_bytes)
        self.image = bytes(ram_bytes)

    async def start(self) -> None:
        Clock(self.dut.clk, 10, unit="ns").start()
        self.dut.requests__valid.value = 0
        self.dut.requests__payload.value = 0
        self.dut.words__ready.value = 0
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0

    def fill(self, base: int, n_words: int) -> None:
        """Random words at ``base`` (in the RAM and in :attr:`image`)."""
        lo, hi = -(1 << (self.weight_bits - 1)), (1 << (self.weight_bits - 1)) - 1
        words = [[self.rng.randint(lo, hi) for _ in range(self.lanes)] for _ in range(n_words)]
        data = pack_words(words, self.lanes, self.weight_bits, self.data_bytes)
        self.ram.write(base, data)
        self.image = self.image[:base] + data + self.image[base + len(data) :]

    def expected(self, requests: list[tuple[int, int]]) -> list[int]:
        mask = (1 << (self.lanes * self.weight_bits)) - 1
        s = self.stride
        return [
            int.from_bytes(self.image[a + k * s : a + (k + 1) * s], "little") & mask
            for a, n in requests
            for k in range(n)
        ]

    async def play(
        self,
        requests: list[tuple[int, int]],
        *,
        req_p: float = 1.0,
        ready_p: float = 1.0,
        rows: bool = False,
        limit: int = 200_000,
    ) -> tuple[int, list[tuple[int, int]]]:
        """Offer ``requests`` ((byte address, words)), take the words (with probability
        ``ready_p`` per cycle, or a request's words at once when ``level`` promises them
        all), check everything; (cycles from the first request to the last word, bursts)."""
        dut = self.dut
        want = self.expected(requests)
        row_sizes = [n for _, n in requests if n]
        got: list[int] = []
        ars: list[tuple[int, int]] = []
        req_i, req_valid, accepted = 0, False, 0
        beats_in, level, taken = 0, 0, False
        held_word: int | None = None
        word: int | None
        row_left, row_i = 0, 0
        first, cycles, drained = None, 0, 0
        for cycle in range(limit):
            await RisingEdge(dut.clk)
            # drive this cycle's inputs (the handshakes of the last cycle happened at this edge)
            if req_i < len(requests) and (req_valid or self.rng.random() < req_p):
                addr, n = requests[req_i]
                dut.requests__payload.value = addr | n << self.addr_width
                req_valid = True
            dut.requests__valid.value = req_valid
            if rows:
                # the level now is at least last cycle's less the word then taken
                next_row = row_sizes[row_i] if row_i < len(row_sizes) else None
                if row_left == 0 and next_row is not None and level - taken >= next_row:
                    row_left, row_i = next_row, row_i + 1
                ready = row_left > 0
            else:
                ready = self.rng.random() < ready_p
            dut.words__ready.value = ready

            await ReadOnly()
            valid = bool(dut.words__valid.value)
            word = int(dut.words__payload.value) if valid else None  # X before the first
            new_level = int(dut.level.value)
            assert int(dut.axi__rready.value) == 1, f"cycle {cycle}: rready low"
            if held_word is not None:
                assert valid and word == held_word, f"cycle {cycle}: word changed before taken"
            in_fifo = beats_in // self.beats - len(got)
            assert new_level <= in_fifo <= self.depth, f"cycle {cycle}: level {new_level}"
            assert new_level >= level - taken, f"cycle {cycle}: level broke its promise"
            assert not new_level or valid, f"cycle {cycle}: level without valid"
            if rows and row_left:
                assert valid, f"cycle {cycle}: a promised row word is missing"
            assert not int(dut.error.value), f"cycle {cycle}: error"
            if accepted > len(got):
                assert not int(dut.idle.value) and int(dut.busy.value), f"cycle {cycle}: idle"
            level = new_level

            # the handshakes at the next edge
            if int(dut.axi__arvalid.value) and int(dut.axi__arready.value):
                ar = (int(dut.axi__araddr.value), int(dut.axi__arlen.value))
                assert int(dut.axi__arsize.value) == self.data_bytes.bit_length() - 1
                assert int(dut.axi__arburst.value) == 1 and int(dut.axi__arid.value) == 0
                assert ar[0] % 4096 + (ar[1] + 1) * self.data_bytes <= 4096, f"4 KB: {ar}"
                ars.append(ar)
            if int(dut.axi__rvalid.value):  # rready is high
                beats_in += 1
            if req_valid and int(dut.requests__ready.value):
                first = cycle if first is None else first
                accepted += requests[req_i][1]
                req_i, req_valid = req_i + 1, False
            taken = valid and ready
            if taken:
                got.append(word)
                row_left = max(row_left - 1, 0)
                assert len(got) <= len(want), "more words than requested"
                if len(got) == len(want):
                    cycles = cycle - first
            held_word = word if valid and not ready else None
            if req_i == len(requests) and len(got) == len(want):
                drained += 1
                if drained > 3:
                    assert int(dut.idle.value), "not idle when drained"
                    break
        else:
            raise AssertionError(f"not done after {limit} cycles: {len(got)}/{len(want)} words")
        assert got == want
        beat_addrs = [a + k * self.data_bytes for a, n in ars for k in range(n + 1)]
        want_addrs = [
            a + k for a, n in requests for k in range(0, n * self.stride, self.data_bytes)
        ]
        assert beat_addrs == want_addrs, "the bursts did not read exactly the requested bytes"
        return cycles, ars


def _random_requests(b: Bench, base: int, n_words: int, count: int) -> list[tuple[int, int]]:
    requests = []
    for _ in range(count):
        n = b.rng.choice([0, 1, b.rng.randint(1, b.max_row), b.max_row])
        requests.append((base + b.rng.randrange(n_words - n + 1) * b.stride, n))
    return requests


@cocotb.test()
async def random_rows_under_back_pressure(dut: HierarchyObject) -> None:
    """Random rows of a table that spans 4 KB boundaries, random pauses everywhere."""
    rng = _rng("random_rows_under_back_pressure")
    b = Bench(dut, rng)
    await b.start()
    base = 0x1000 - 5 * b.stride  # the table starts just below a 4 KB boundary
    n_words = (3 * 4096) // b.stride
    b.fill(base, n_words)
    b.ram.ar_channel.set_pause_generator(_bernoulli(rng, 0.4))
    b.ram.r_channel.set_pause_generator(_stalls(rng, 0.3, 0.03, 40))
    requests = _random_requests(b, base, n_words, 150)
    requests.append(((0x2000 // b.stride) * b.stride - b.stride, b.max_row))  # across 4 KB
    await b.play(requests, req_p=0.6, ready_p=0.7)
    # the neuron core's way: a row taken at once, when level promises all of it
    await b.play(_random_requests(b, base, n_words, 150), req_p=0.8, rows=True)


@cocotb.test()
async def slow_consumer_fills_the_fifo(dut: HierarchyObject) -> None:
    """A consumer slower than the bus: the credits keep the FIFO from overflowing
    (``rready`` stays high) and the bursts shrink to what fits."""
    rng = _rng("slow_consumer_fills_the_fifo")
    b = Bench(dut, rng)
    await b.start()
    b.fill(0, 1024)
    b.ram.ar_channel.set_pause_generator(_bernoulli(rng, 0.1))
    b.ram.r_channel.set_pause_generator(_stalls(rng, 0.1, 0.01, 20))
    await b.play(_random_requests(b, 0, 1024, 60), ready_p=0.15)


@cocotb.test()
async def full_bandwidth(dut: HierarchyObject) -> None:
    """No pauses, consumer always ready, rows back to back: one beat per cycle, bar the
    RAM model's latency at the start."""
    rng = _rng("full_bandwidth")
    b = Bench(dut, rng)
    await b.start()
    b.fill(0, 1024)
    requests = [(k * b.stride, b.max_row) for k in range(0, 1024 - b.max_row, b.max_row)]
    cycles, ars = await b.play(requests)
    beats = sum(n for _, n in requests) * b.beats
    dut._log.info(f"{beats} beats in {cycles} cycles, {len(ars)} bursts")
    assert cycles <= beats + 20, f"{beats} beats took {cycles} cycles"
