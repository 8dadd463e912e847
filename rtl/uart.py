"""UART receiver and transmitter, 8N1, as stream components.

Why a UART at all: it is the one host link every FPGA board has (a USB-serial bridge
on two pins), so a board top built on :class:`rtl.host_link.HostLink` needs nothing
but ``rx`` and ``tx``. Both ends count cycles with one divisor,
``round(clk_hz / baud)`` (:func:`uart_divisor`); no oversampling clock.

- :class:`UartTx`: a byte stream in, the serial line out (idle high, start bit 0, 8
  data bits LSB first, stop bit 1, every bit ``divisor`` cycles). A byte offered in
  the last cycle of a stop bit is taken at once, so bytes go back to back at exactly
  ``10 * divisor`` cycles each.
- :class:`UartRx`: the serial line in (asynchronous: synchronised by two flip-flops
  inside), a byte stream out. It waits for the line to fall, samples the start bit in
  its middle (a glitch shorter than half a bit is no start), then every bit in its
  middle, and checks the stop bit. Sampling in the middle tolerates a baud error of
  a few percent: the last sample, 9.5 bits after the edge, may drift by almost half
  a bit (the tests run +-2 % at 4 and 16 cycles per bit). A stop bit of 0 (framing
  error, or a break) drops the byte, strobes ``error`` and waits for the line to go
  high before it looks for the next start bit, so a line held low yields one error,
  not a stream of zero bytes. A byte that completes while the previous one still
  waits on the stream is dropped and strobes ``overrun``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from rtl import check_int

__all__ = ["MAX_BAUD_ERROR", "MIN_DIVISOR", "UartRx", "UartTx", "uart_divisor"]

#: Fewest clock cycles per bit: the receiver samples a bit ``divisor // 2`` cycles after
#: its edge and needs that to be at least 2 (the synchroniser's delay is taken out by
#: detecting the edge on the synchronised line, so 4 is exact for a synchronous sender).
MIN_DIVISOR = 4
#: Largest relative difference between ``clk_hz / divisor`` and the asked baud rate:
#: half of the +-2 % the receiver tolerates, the other half is the far end's.
MAX_BAUD_ERROR = 0.01
#: Data bits per frame (8N1: one start bit, 8 data bits, one stop bit).
DATA_BITS = 8


def uart_divisor(clk_hz: float, baud: float) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_hz``; ValueError when the rate cannot be
    made within :data:`MAX_BAUD_ERROR` or needs fewer than :data:`MIN_DIVISOR` cycles."""
    for name, value in (("clk_hz", clk_hz), ("baud", baud)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"{name} must be a positive number, not {value!r}")
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(
            f"baud {baud:g} at clk_hz {clk_hz:g} is {clk_hz / baud:.2f} cycles per bit; "
            f"the UART needs at least {MIN_DIVISOR}"
        )
    error = abs(clk_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(
            f"baud {baud:g} at clk_hz {clk_hz:g}: the nearest divisor {divisor} gives "
            f"{clk_hz / divisor:g} baud, {error:.1%} off (at most {MAX_BAUD_ERROR:.0%})"
        )
    return divisor


class UartTx(wiring.Component):
    """8N1 transmitter, ``divisor`` cycles per bit.

    Ports
    -----
    data : In(stream.Signature(8))
        Bytes to send; ``ready`` while the line is idle and in the last cycle of a stop bit.
    tx : Out(1)
        The serial line, registered; high when idle (and after reset).
    """

    def __init__(self, divisor: int) -> None:
        self._divisor = check_int("divisor", divisor, MIN_DIVISOR)
        super().__init__({"data": In(stream.Signature(DATA_BITS)), "tx": Out(1, init=1)})

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform: object) -> Module:
        m = Module()
        count = Signal(range(self._divisor))  # cycles left in the current bit, minus one
        bits = Signal(range(DATA_BITS + 3))  # bits left including the current one; 0: idle
        shreg = Signal(DATA_BITS + 2)  # the current bit in bit 0
        boundary = count == 0
        m.d.comb += self.data.ready.eq((bits == 0) | ((bits == 1) & boundary))
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [
                shreg.eq(Cat(0, self.data.payload, 1)),
                bits.eq(DATA_BITS + 2),
                count.eq(self._divisor - 1),
                self.tx.eq(0),
            ]
        with m.Elif(bits != 0):
            with m.If(boundary):
                m.d.sync += [
                    bits.eq(bits - 1),
                    count.eq(self._divisor - 1),
                    shreg.eq(shreg >> 1),
                    self.tx.eq((bits == 1) | shreg[1]),
                ]
            with m.Else():
                m.d.sync += count.eq(count - 1)
        return m


class UartRx(wiring.Component):
    """8N1 receiver, ``divisor`` cycles per bit (module docstring: sampling, errors).

    Ports
    -----
    rx : In(1)
        The serial line, asynchronous to the clock; idle high.
    data : Out(stream.Signature(8))
        Received bytes; a byte waits until taken.
    error : Out(1)
        Strobe: a frame's stop bit was 0; its byte was dropped.
    overrun : Out(1)
        Strobe: a byte completed while the previous one was not yet taken; it was dropped.
    """

    def __init__(self, divisor: int) -> None:
        self._divisor = check_int("divisor", divisor, MIN_DIVISOR)
        super().__init__(
            {
                "rx": In(1, init=1),
                "data": Out(stream.Signature(DATA_BITS)),
                "error": Out(1),
                "overrun": Out(1),
            }
        )

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform: object) -> Module:
        m = Module()
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        half, full = self._divisor // 2, self._divisor
        count = Signal(range(full))  # cycles to the next sample, minus one
        index = Signal(range(DATA_BITS + 2))  # the bit sampled next: 0 start .. 9 stop
        shreg = Signal(DATA_BITS)
        sample = count == 0
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += self.data.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"), m.If(~line):
                m.d.sync += [count.eq(half - 1), index.eq(0)]
                m.next = "FRAME"
            with m.State("FRAME"):
                m.d.sync += count.eq(count - 1)
                with m.If(sample):
                    m.d.sync += [count.eq(full - 1), index.eq(index + 1)]
                    with m.If(index == 0), m.If(line):  # shorter than half a bit: a glitch
                        m.next = "IDLE"
                    with m.Elif(index <= DATA_BITS):
                        m.d.sync += shreg.eq(Cat(shreg[1:], line))
                    with m.Elif(line):
                        self._deliver(m, shreg)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"), m.If(line):  # wait for the line to be released
                m.next = "IDLE"
        return m

    def _deliver(self, m: Module, byte: Signal) -> None:
        """Put ``byte`` on the stream, or strobe ``overrun`` if the last one still waits."""
        with m.If(self.data.valid & ~self.data.ready):
            m.d.comb += self.overrun.eq(1)
        with m.Else():
            m.d.sync += [self.data.payload.eq(byte), self.data.valid.eq(1)]
