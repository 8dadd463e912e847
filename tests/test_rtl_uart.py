"""rtl.uart: 8N1 receiver and transmitter in the Amaranth simulator, with a line driven at
a baud rate off by +-2 %, bytes back to back, framing errors, glitches and the divisor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator, SimulatorContext

from rtl.uart import MIN_DIVISOR, UartRx, UartTx, uart_divisor


def _run(dut: wiring.Component, *benches: Callable[[SimulatorContext], Awaitable[None]]) -> None:
    """First bench in the foreground, the others in the background."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(benches[0])
    for bench in benches[1:]:
        sim.add_testbench(bench, background=True)
    sim.run()


def _line_bits(byte: int, stop: int = 1) -> list[int]:
    return [0, *((byte >> k) & 1 for k in range(8)), stop]


async def _drive(ctx: SimulatorContext, rx: object, bits: list[int], bit_cycles: float) -> None:
    """Drive ``bits`` onto ``rx``, bit k starting at ``round(k * bit_cycles)`` cycles:
    a sender whose rate differs from the receiver's, with the rounding a real edge has."""
    at = 0
    for k, bit in enumerate(bits):
        ctx.set(rx, bit)
        end = round((k + 1) * bit_cycles)
        await ctx.tick().repeat(end - at)
        at = end


def _collector(dut: UartRx, got: list[int], errors: list[int]):
    async def bench(ctx: SimulatorContext) -> None:
        ctx.set(dut.data.ready, 1)
        async for _, _, valid, payload, error, overrun in ctx.tick().sample(
            dut.data.valid, dut.data.payload, dut.error, dut.overrun
        ):
            if valid:
                got.append(payload)
            if error or overrun:
                errors.append(int(error) + 2 * int(overrun))

    return bench


def test_divisor_is_checked() -> None:
    assert uart_divisor(100e6, 115_200) == 868
    assert uart_divisor(48e6, 3e6) == 16
    assert uart_divisor(4, 1) == MIN_DIVISOR
    with pytest.raises(ValueError, match="at least 4"):
        uart_divisor(12e6, 4e6)
    with pytest.raises(ValueError, match="off"):
        uart_divisor(1000, 180)  # 5.56 cycles: 6 gives 166.7 baud, 7.4 % off
    with pytest.raises(ValueError, match="positive"):
        uart_divisor(0, 9600)
    with pytest.raises(ValueError, match="positive"):
        uart_divisor(1e6, True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="divisor must be >= 4"):
        UartRx(3)
    with pytest.raises(TypeError):
        UartTx(4.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("divisor", "error"),
    [(4, 0.0), (4, 0.02), (4, -0.02), (7, 0.0), (16, 0.02), (16, -0.02)],
)
def test_rx_back_to_back_with_baud_error(divisor: int, error: float) -> None:
    """Bytes back to back (one stop bit at the sender's rate), the sender off by ``error``."""
    dut = UartRx(divisor)
    data = [
        0x00,
        0xFF,
        0x55,
        0xAA,
        0x80,
        0x01,
        *np.random.default_rng(divisor).integers(0, 256, 10),
    ]
    got: list[int] = []
    errors: list[int] = []

    async def bench(ctx: SimulatorContext) -> None:
        await ctx.tick().repeat(3)  # idle, then a start edge at an odd phase
        bits = [b for byte in data for b in _line_bits(int(byte))]
        await _drive(ctx, dut.rx, bits, divisor * (1 + error))
        await ctx.tick().repeat(2 * divisor)

    _run(dut, bench, _collector(dut, got, errors))
    assert got == [int(b) for b in data]
    assert errors == []


def test_rx_framing_error_and_glitch() -> None:
    dut = UartRx(8)
    got: list[int] = []
    errors: list[int] = []

    async def bench(ctx: SimulatorContext) -> None:
        ctx.set(dut.rx, 0)  # a glitch of 3 cycles (< half a bit): no start
        await ctx.tick().repeat(3)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(20)
        await _drive(ctx, dut.rx, [*_line_bits(0x3C, stop=0), 0, 0, 0], 8)  # then a break
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(16)
        await _drive(ctx, dut.rx, _line_bits(0xA5), 8)
        await ctx.tick().repeat(16)

    _run(dut, bench, _collector(dut, got, errors))
    assert got == [0xA5]  # the bad frame's byte is dropped, the line held low is one error
    assert errors == [1]


def test_rx_overrun() -> None:
    dut = UartRx(4)
    seen: list[int] = []

    async def bench(ctx: SimulatorContext) -> None:  # nobody takes the first byte
        bits = _line_bits(0x11) + _line_bits(0x22)
        await _drive(ctx, dut.rx, bits, 4)
        await ctx.tick().repeat(8)
        seen.append(ctx.get(dut.data.payload))

    async def watch(ctx: SimulatorContext) -> None:
        async for _, _, overrun in ctx.tick().sample(dut.overrun):
            if overrun:
                seen.append(-1)

    _run(dut, bench, watch)
    assert seen == [-1, 0x11]


@pytest.mark.parametrize("divisor", [4, 9])
def test_tx_back_to_back(divisor: int) -> None:
    """The transmitter's line, decoded by the test: every bit ``divisor`` cycles, bytes
    back to back (``10 * divisor`` cycles each), idle high."""
    dut = UartTx(divisor)
    data = [0x00, 0xFF, 0xC0, 0x5A, 0x01]
    line: list[int] = []

    async def feed(ctx: SimulatorContext) -> None:
        ctx.set(dut.data.valid, 1)
        for byte in data:
            ctx.set(dut.data.payload, byte)
            await ctx.tick().until(dut.data.ready)
        ctx.set(dut.data.valid, 0)
        await ctx.tick().repeat(12 * divisor)

    async def probe(ctx: SimulatorContext) -> None:
        async for _, _, tx in ctx.tick().sample(dut.tx):
            line.append(tx)

    _run(dut, feed, probe)
    start = line.index(0)
    assert all(line[:start])
    bits = line[start : start + 10 * len(data) * divisor : divisor]
    assert len(bits) == 10 * len(data)
    for k, byte in enumerate(data):
        assert bits[10 * k : 10 * k + 10] == _line_bits(byte), f"byte {k}"
    # each bit lasts exactly divisor cycles, and the line is idle afterwards
    for k in range(10 * len(data)):
        chunk = line[start + k * divisor : start + (k + 1) * divisor]
        assert len(set(chunk)) == 1, f"bit {k} is not steady"
    assert all(line[start + 10 * len(data) * divisor :])


def test_loopback() -> None:
    """Transmitter into receiver at the smallest divisor: every byte value once."""

    class Loop(wiring.Component):
        def __init__(self) -> None:
            self.tx, self.rx = UartTx(MIN_DIVISOR), UartRx(MIN_DIVISOR)
            super().__init__({})

        def elaborate(self, platform: object) -> Module:
            m = Module()
            m.submodules.tx, m.submodules.rx = self.tx, self.rx
            m.d.comb += self.rx.rx.eq(self.tx.tx)
            return m

    dut = Loop()
    got: list[int] = []
    errors: list[int] = []

    async def feed(ctx: SimulatorContext) -> None:
        ctx.set(dut.tx.data.valid, 1)
        for byte in range(256):
            ctx.set(dut.tx.data.payload, byte)
            await ctx.tick().until(dut.tx.data.ready)
        ctx.set(dut.tx.data.valid, 0)
        await ctx.tick().repeat(12 * MIN_DIVISOR)

    _run(dut, feed, _collector(dut.rx, got, errors))
    assert got == list(range(256))
    assert errors == []
