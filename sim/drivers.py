"""Reusable cocotb drivers and monitors for the accelerator's interfaces.

Signals are found by prefix, as Amaranth flattens them into Verilog
(``pixels__valid``, ``bus__addr``, ...), so a testbench builds a driver from the
DUT and a prefix and then speaks in transactions (pixels, words, samples), not
in cycles. Drivers change inputs just after a rising edge, and decide whether a
handshake happens on the next edge from the values settled before it
(``ReadOnly``): what a read right after ``RisingEdge`` returns differs between
simulators (Verilator has already evaluated the edge, Icarus not).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
from cocotb.clock import Clock
from cocotb.handle import HierarchyObject
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from desire.config import Config
from sim.runner import ENV_CONFIG, ENV_LAYER

__all__ = [
    "BlockMonitor",
    "MemPortWriter",
    "MmioMaster",
    "StreamSink",
    "StreamSource",
    "env_config",
    "env_layer",
    "reset",
    "stimulus_rng",
    "to_signed",
    "wait_high",
]


def env_config() -> Config:
    """The config the runner built the DUT for (sim.runner passes it as JSON)."""
    return Config.from_dict(json.loads(os.environ[ENV_CONFIG]))


def env_layer() -> int:
    """The layer a ``neuron_core`` DUT was built for."""
    return int(os.environ.get(ENV_LAYER, "0"))


def stimulus_rng(test: str) -> np.random.Generator:
    """Stimulus generator of one test, from ``SEED`` and the test's name (printed to replay)."""
    seed = int(os.environ.get("SEED", "0"), 0)
    print(f"{test}: SEED={seed}")
    return np.random.default_rng([seed, *test.encode()])


async def reset(dut: HierarchyObject) -> None:
    """Start the 100 MHz clock on ``clk`` and pulse ``rst`` for two cycles."""
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


def to_signed(value: int, bits: int) -> int:
    """Two's-complement reading of a ``bits``-bit unsigned value."""
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


class _Driver:
    def __init__(self, dut: HierarchyObject, prefix: str, clock: Any) -> None:
        self.dut, self.prefix, self.clock = dut, prefix, clock

    def sig(self, name: str) -> Any:
        return getattr(self.dut, f"{self.prefix}{name}")


class StreamSource(_Driver):
    """Drives an Amaranth ``stream.Signature`` input (``<prefix>payload/valid/ready``)."""

    def __init__(self, dut: HierarchyObject, prefix: str, clock: Any) -> None:
        super().__init__(dut, prefix, clock)
        self.sig("valid").value = 0
        self.stalls = 0  # cycles spent waiting on ready

    async def send(self, payloads: Iterable[int]) -> None:
        """Transfer every payload in order; waits on ``ready`` (back-pressure)."""
        valid, payload, ready = self.sig("valid"), self.sig("payload"), self.sig("ready")
        for value in payloads:
            payload.value = int(value)
            valid.value = 1
            while True:
                await ReadOnly()
                taken = bool(ready.value)
                await RisingEdge(self.clock)
                if taken:
                    break
                self.stalls += 1
        valid.value = 0


class StreamSink(_Driver):
    """Receives an Amaranth ``stream.Signature`` output; returns raw payload integers."""

    def __init__(self, dut: HierarchyObject, prefix: str, clock: Any) -> None:
        super().__init__(dut, prefix, clock)
        self.sig("ready").value = 0

    async def recv(self) -> int:
        """Wait for one transfer (ready held high until it happens)."""
        valid, ready = self.sig("valid"), self.sig("ready")
        ready.value = 1
        while True:
            await ReadOnly()
            if valid.value:
                value = int(self.sig("payload").value)
                break
            await RisingEdge(self.clock)
        await RisingEdge(self.clock)  # the transfer happens on this edge
        ready.value = 0
        return value


class MmioMaster(_Driver):
    """The accelerator's memory-mapped port: ``<prefix>addr/wdata/we/rdata``; ``rdata``
    follows the address by ``read_latency`` cycles (``rtl.accelerator.READ_LATENCY``)."""

    def __init__(self, dut: HierarchyObject, prefix: str, clock: Any, read_latency: int) -> None:
        super().__init__(dut, prefix, clock)
        if read_latency < 1:
            raise ValueError(f"read_latency must be >= 1, not {read_latency}")
        self.read_latency = read_latency
        self.sig("we").value = 0
        self.sig("addr").value = 0
        self.sig("wdata").value = 0

    async def write(self, addr: int, value: int) -> None:
        self.sig("addr").value = addr
        self.sig("wdata").value = value & 0xFFFF_FFFF
        self.sig("we").value = 1
        await RisingEdge(self.clock)
        self.sig("we").value = 0

    async def write_many(self, items: Iterable[tuple[int, int]]) -> None:
        """Back-to-back writes, one per cycle."""
        addr, wdata, we = self.sig("addr"), self.sig("wdata"), self.sig("we")
        we.value = 1
        for a, v in items:
            addr.value = a
            wdata.value = v & 0xFFFF_FFFF
            await RisingEdge(self.clock)
        we.value = 0

    async def read(self, addr: int) -> int:
        """Signed 32-bit value at ``addr``."""
        self.sig("addr").value = addr
        for _ in range(self.read_latency):
            await RisingEdge(self.clock)
        await ReadOnly()
        value = to_signed(int(self.sig("rdata").value), 32)
        await RisingEdge(self.clock)
        return value


class MemPortWriter(_Driver):
    """Writes lane-addressed memories (``<prefix>word/lane/data/we``): weights or pixels."""

    def __init__(self, dut: HierarchyObject, prefix: str, clock: Any, we: str = "we") -> None:
        super().__init__(dut, prefix, clock)
        self._we = we
        self.sig(we).value = 0

    async def write(self, items: Iterable[tuple[int, int, int]]) -> None:
        """(word, lane, value) triples, one per cycle."""
        word, lane, data, we = (
            self.sig("word"),
            self.sig("lane"),
            self.sig("data"),
            self.sig(self._we),
        )
        we.value = 1
        for w, j, v in items:
            word.value, lane.value, data.value = w, j, int(v) & ((1 << len(data)) - 1)
            await RisingEdge(self.clock)
        we.value = 0


async def wait_high(clock: Any, signal: Any) -> None:
    """Return just after the first rising edge preceded by a cycle with ``signal`` high."""
    while True:
        await ReadOnly()
        high = bool(signal.value)
        await RisingEdge(clock)
        if high:
            return


class BlockMonitor:
    """Collects ``(index, value...)`` every cycle ``valid`` is high, until ``count`` are seen.

    For the block outputs (encoder spike words, neuron-core fire pass), which
    have no back-pressure: the monitor must sample every cycle while active.
    """

    def __init__(self, clock: Any, valid: Any, index: Any, *values: Any) -> None:
        self.clock, self.valid, self.index, self.values = clock, valid, index, values

    async def collect(self, count: int) -> list[tuple[int, ...]]:
        got: list[tuple[int, ...]] = []
        while len(got) < count:
            await RisingEdge(self.clock)
            await ReadOnly()
            if self.valid.value:
                got.append((int(self.index.value), *(int(v.value) for v in self.values)))
        return got
