"""Reusable cocotb drivers and monitors for the accelerator's interfaces.

Signals are found by prefix, as Amaranth flattens them into Verilog
(``pixels__valid``, ``bus__addr``, ...), so a testbench builds a driver from the
DUT and a prefix and then speaks in transactions (pixels, words, samples), not
in cycles. Drivers change inputs just after a rising edge, and decide whether a
handshake happens on the next edge from the values settled before it
(``ReadOnly``): what a read right after ``RisingEdge`` returns differs between
simulators (Verilator has already evaluated the edge, Icarus not).

Speed: every ``await`` of a clock edge wakes Python, which costs more than a
simulated cycle of the whole accelerator under Verilator. So bulk transfers
(a sample's pixels, weight loads and read-backs, a step's events) go through the
players of the simulation harness (sim.harness, :class:`StreamPlayer`,
:class:`SequencePlayer`, :class:`BusPlayer`): one wake-up per transfer; waits
for a result wait on its ``valid`` edge; only the per-cycle checks of block
outputs (:class:`BlockMonitor`) sample every cycle.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from cocotb.handle import HierarchyObject
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from numpy.typing import ArrayLike

from desire.config import Config
from sim.harness import slot_bits
from sim.runner import ENV_CONFIG, ENV_LAYER

__all__ = [
    "BlockMonitor",
    "BusPlayer",
    "MmioMaster",
    "SequencePlayer",
    "StreamPlayer",
    "StreamSink",
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
    """Pulse ``rst`` for two cycles of the harness's clock (sim.harness makes ``clk``)."""
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


class StreamSink(_Driver):
    """Receives an Amaranth ``stream.Signature`` output; returns raw payload integers."""

    def __init__(self, dut: HierarchyObject, prefix: str, clock: Any) -> None:
        super().__init__(dut, prefix, clock)
        self.sig("ready").value = 0

    async def recv(self, stall: int = 0) -> int:
        """Wait for one transfer; ``stall`` > 0 holds ``ready`` low for that many cycles
        after ``valid`` rises (back-pressure), checking that the payload and ``valid``
        hold still meanwhile (the stream rule).

        Waits on ``valid``'s rising edge rather than sampling every clock: a sample
        of the accelerator takes thousands of cycles, each of which would wake Python.
        """
        valid, ready = self.sig("valid"), self.sig("ready")
        ready.value = int(stall == 0)
        await ReadOnly()
        if not valid.value:
            await RisingEdge(valid)
            await ReadOnly()
        value = int(self.sig("payload").value)
        for cycle in range(stall):
            await RisingEdge(self.clock)
            await ReadOnly()
            held = valid.value == 1 and int(self.sig("payload").value) == value
            assert held, f"{self.prefix}: valid or payload changed while stalled ({cycle + 1})"
        if stall:
            await RisingEdge(self.clock)
            ready.value = 1
            await ReadOnly()
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

    async def read(self, addr: int) -> int:
        """Signed 32-bit value at ``addr``."""
        self.sig("addr").value = addr
        for _ in range(self.read_latency):
            await RisingEdge(self.clock)
        await ReadOnly()
        value = to_signed(int(self.sig("rdata").value), 32)
        await RisingEdge(self.clock)
        return value


def _to_port(values: np.ndarray, slot: int) -> int:
    """Items as one integer for a harness port: item k in bits ``[k slot, (k + 1) slot)``."""
    return int.from_bytes(values.astype(f"<u{slot // 8}").tobytes(), "little")


def _from_port(port: Any, slot: int, count: int) -> np.ndarray:
    """The first ``count`` items of a harness port (the inverse of _to_port)."""
    data = int(port.value).to_bytes(len(port) // 8, "little")[: count * slot // 8]
    return np.frombuffer(data, dtype=f"<u{slot // 8}").astype(np.uint64)


class _Player(_Driver):
    """Common part of the harness's players (sim.harness): ``tb_<prefix>count/go/done``."""

    def __init__(self, dut: HierarchyObject, prefix: str, clock: Any, items: str) -> None:
        super().__init__(dut, prefix, clock)
        self.go = self.tb("go")
        self.go.value = 0
        self.items = self.tb(items)

    def tb(self, name: str) -> Any:
        return getattr(self.dut, f"tb_{self.prefix}{name}")

    async def play(self, words: np.ndarray, slot: int) -> None:
        """Write ``words`` into the player and play them; returns in ``ReadOnly`` of the
        cycle after the last one (all captures made), with ``go`` already low."""
        self.items.value = _to_port(words, slot)
        self.tb("count").value = len(words)
        self.go.value = 1
        await RisingEdge(self.tb("done"))
        self.go.value = 0
        await ReadOnly()


class StreamPlayer(_Player):
    """Sends a stream's payloads through the harness's stream player (sim.harness.Stream):
    a whole transfer goes into the simulator at once, Python wakes once per transfer."""

    def __init__(self, dut: HierarchyObject, prefix: str, clock: Any) -> None:
        super().__init__(dut, prefix, clock, "data")
        self.sig("valid").value = 0
        self.width = len(self.sig("payload"))
        self.slot = slot_bits(self.width)
        self.depth = len(self.items) // self.slot

    async def send(self, payloads: Iterable[int]) -> None:
        """Transfer every payload in order, each when ``ready`` (back-pressure); returns
        just after the clock edge that follows the last transfer."""
        values = np.fromiter((int(v) for v in payloads), dtype=np.uint64)
        if len(values) > self.depth:
            raise ValueError(f"{len(values)} payloads, the harness holds {self.depth}")
        if len(values):
            await self.play(values & np.uint64((1 << self.width) - 1), self.slot)
            await RisingEdge(self.clock)  # the player sees go low and rewinds


class SequencePlayer(_Player):
    """Drives the inputs ``<prefix><field>`` with one command per cycle through the
    harness's sequence player (sim.harness.Sequence), and returns the captured output of
    each command where the harness captures one."""

    def __init__(
        self, dut: HierarchyObject, prefix: str, clock: Any, fields: Sequence[str]
    ) -> None:
        super().__init__(dut, prefix, clock, "cmd")
        self.widths = [len(self.sig(f)) for f in fields]
        for f in fields:
            self.sig(f).value = 0
        self.slot = slot_bits(sum(self.widths))
        self.depth = len(self.items) // self.slot
        self.captured = getattr(dut, f"tb_{prefix}captured", None)

    def _pack(self, columns: Sequence[ArrayLike]) -> np.ndarray:
        """One command word per item: the fields, the first one most significant."""
        cols = np.broadcast_arrays(*(np.asarray(c, dtype=np.int64) for c in columns))
        words = np.zeros(cols[0].shape, dtype=np.uint64)
        for col, width in zip(cols, self.widths, strict=True):
            field = col.astype(np.uint64) & np.uint64((1 << width) - 1)
            words = (words << np.uint64(width)) | field
        return words.ravel()

    async def run(self, *columns: ArrayLike) -> np.ndarray:
        """Play the commands whose fields are ``columns`` (one array or scalar per field, in
        the order of ``fields``), in transfers of the harness's depth; the captured value of
        each command (unsigned), empty without a capture."""
        words = self._pack(columns)
        got = []
        for start in range(0, len(words), self.depth):
            chunk = words[start : start + self.depth]
            await self.play(chunk, self.slot)
            if self.captured is not None:
                slot = len(self.captured) // self.depth
                got.append(_from_port(self.captured, slot, len(chunk)))
            await RisingEdge(self.clock)  # the player sees go low and rewinds
        return np.concatenate(got) if got else np.zeros(0, dtype=np.uint64)


class BusPlayer(SequencePlayer):
    """:class:`MmioMaster`'s bulk accesses through the harness: writes back to back and
    pipelined reads (a new address every cycle), one Python wake-up per transfer."""

    def __init__(self, dut: HierarchyObject, prefix: str, clock: Any) -> None:
        super().__init__(dut, prefix, clock, ("we", "addr", "wdata"))

    async def write_many(self, addrs: ArrayLike, values: ArrayLike) -> None:
        """``values[k]`` to ``addrs[k]``, one write per cycle."""
        await self.run(1, addrs, values)

    async def read_many(self, addrs: ArrayLike) -> np.ndarray:
        """Signed 32-bit values at ``addrs``, one address per cycle."""
        raw = await self.run(0, addrs, 0)
        return raw.astype(np.uint32).view(np.int32).astype(np.int64)


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
