"""The board's accelerator top minus pins: the accelerator behind a UART.

:class:`HostLink` ``(cfg, weights, clk_hz=..., baud=...)`` holds
:class:`rtl.accelerator.Accelerator` and speaks the protocol of
:mod:`rtl.link_protocol` (SLIP frames; commands to read and write a register or a
weight, runs of them, a sample, and a sync) over :class:`rtl.uart.UartRx` /
:class:`rtl.uart.UartTx`. A board top adds the clock, the pins and the LEDs; the host
side is :mod:`desire.host`. docs/host.md has the protocol for people.

How a frame is handled:

- Received bytes go through a 16-byte FIFO (so a host that resynchronises while the link
  is busy, e.g. waiting for a training sample, loses nothing), then are unescaped. A UART
  framing error or overrun marks the byte after it, and so the frame it lands in, bad.
- Fixed-length commands (``SYNC``, ``READ``, ``WRITE``, ``READ_RUN``) collect their
  payload and run only at the frame's END and only if the length is exact: a frame cut
  short by a resync never writes.
- ``WRITE_RUN`` writes each value as its last byte arrives (one bus write per value, at
  the UART's pace; a run cannot be buffered), to ``addr``, ``addr + 1``, ...; values are
  sign-extended from ``width`` bytes. A run cut short keeps the values written so far
  and is answered ``BAD_LENGTH``.
- ``SAMPLE`` pixels (and the label) go into a buffer of ``n_in + 1`` bytes; at END the
  link reads ``MODE`` and passes the sample to the core only if its length fits the mode
  (as the AXI shell does: a short sample would be completed by the next one's pixels,
  and a bad training sample would change the weights). Then it waits for the result and
  answers with it (:func:`rtl.link_protocol.result_format`).

One command runs at a time, and its reply is sent before the next frame is read: the
core never sees a sample while it runs one, so bus writes are never refused as busy.
"""

from __future__ import annotations

import enum

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from desire.config import Config
from rtl.accelerator import READ_LATENCY, Accelerator
from rtl.axi_shell import ResultFormat
from rtl.link_protocol import (
    ADDR_BYTES,
    END,
    ESC,
    ESC_END,
    ESC_ESC,
    PAYLOAD,
    RUN_HEADER,
    VALUE_BYTES,
    Command,
    LinkInfo,
    Reply,
    result_format,
)
from rtl.register_map import DATA_BITS, Mode
from rtl.uart import UartRx, UartTx, uart_divisor

__all__ = ["RX_FIFO_DEPTH", "HostLink", "SlipEncoder"]

#: Bytes the link buffers between the UART and the command parser.
RX_FIFO_DEPTH = 16

#: A reply symbol: a byte to send escaped, or (``end``) the frame's END.
SYMBOL = data.StructLayout({"data": 8, "end": 1})


class SlipEncoder(wiring.Component):
    """Reply symbols to line bytes: escapes END and ESC, sends END for an ``end`` symbol.

    Ports
    -----
    i : In(stream.Signature(SYMBOL))
        Bytes of a frame, then one symbol with ``end`` set.
    o : Out(stream.Signature(8))
        Bytes for the UART.
    """

    def __init__(self) -> None:
        super().__init__({"i": In(stream.Signature(SYMBOL)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        second = Signal()  # the escaped byte after an ESC is due
        held = Signal(8)
        i, o = self.i, self.o
        special = (i.payload.data == END) | (i.payload.data == ESC)
        m.d.comb += o.valid.eq(i.valid | second)
        with m.If(second):
            m.d.comb += o.payload.eq(held)
            with m.If(o.ready):
                m.d.sync += second.eq(0)
        with m.Elif(i.payload.end):
            m.d.comb += [o.payload.eq(END), i.ready.eq(o.ready)]
        with m.Elif(special):
            m.d.comb += [o.payload.eq(ESC), i.ready.eq(o.ready)]
            with m.If(i.valid & o.ready):
                m.d.sync += [
                    second.eq(1),
                    held.eq(Mux(i.payload.data == END, ESC_END, ESC_ESC)),
                ]
        with m.Else():
            m.d.comb += [o.payload.eq(i.payload.data), i.ready.eq(o.ready)]
        return m


class _Read(enum.IntEnum):
    """What a bus read in flight is for."""

    REG = 0  # READ: reply with the value
    RUN = 1  # READ_RUN: reply with width bytes, then the next
    MODE = 2  # SAMPLE: the length check


class HostLink(wiring.Component):
    """:class:`rtl.accelerator.Accelerator` ``(cfg, weights)`` behind a UART at ``baud``
    (clock ``clk_hz``), speaking :mod:`rtl.link_protocol` (module docstring).

    Ports
    -----
    rx : In(1)
        Serial line from the host (asynchronous; synchronised inside), idle high.
    tx : Out(1)
        Serial line to the host, idle high.
    busy : Out(1)
        A sample is in the accelerator (from the length check to its result): an LED.
    result : Out(1)
        Toggles with every result sent: an LED that blinks while samples stream.
    error : Out(1)
        Sticky: a frame was answered with an error status; a ``SYNC`` clears it.

    ``sample_ram`` is the sample buffer's yosys ``ram_style`` (None: yosys' choice, a
    block RAM): ``"distributed"`` keeps it out of block RAM on a part whose block RAMs the
    weights fill (the ULX3S 25F).
    """

    def __init__(
        self,
        cfg: Config,
        weights: list[np.ndarray] | None = None,
        *,
        clk_hz: float,
        baud: float,
        sample_ram: str | None = None,
    ) -> None:
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a desire.config.Config, not {cfg!r}")
        if cfg.hardware.weights != "on-chip":
            raise ValueError("HostLink needs on-chip weights (hardware.weights = on-chip)")
        self._divisor = uart_divisor(clk_hz, baud)
        self._core = Accelerator(cfg, weights)
        self._n_in = cfg.network.layers[0]
        self._sample_ram = sample_ram
        self.info = LinkInfo.for_config(cfg)
        self.result_format = result_format(cfg)
        if self.result_format != ResultFormat.for_layout(self._core.result_layout):
            raise AssertionError("the core's result layout is not the protocol's")
        if self.info.addr_bits != self._core.addr_bits:
            raise AssertionError("the core's address width is not the protocol's")
        self.regs = self._core.regs
        super().__init__(
            {
                "rx": In(1, init=1),
                "tx": Out(1, init=1),
                "busy": Out(1),
                "result": Out(1),
                "error": Out(1),
            }
        )

    @property
    def core(self) -> Accelerator:
        """The accelerator inside (``weight_address``, ``no_class``, ...)."""
        return self._core

    @property
    def divisor(self) -> int:
        """Clock cycles per UART bit."""
        return self._divisor

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.core = core = self._core
        m.submodules.uart_rx = urx = UartRx(self._divisor)
        m.submodules.uart_tx = utx = UartTx(self._divisor)
        m.submodules.slip = slip = SlipEncoder()
        m.submodules.rx_fifo = fifo = SyncFIFOBuffered(width=9, depth=RX_FIFO_DEPTH)
        wiring.connect(m, slip.o, utx.data)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]

        # UART -> FIFO; an error marks the next byte written (so the frame it belongs to)
        marked = Signal()
        m.d.comb += [
            fifo.w_data.eq(Cat(urx.data.payload, marked | urx.error | urx.overrun)),
            fifo.w_en.eq(urx.data.valid),
            urx.data.ready.eq(fifo.w_rdy),
        ]
        with m.If(fifo.w_en & fifo.w_rdy):
            m.d.sync += marked.eq(0)
        with m.If(urx.error | urx.overrun):
            m.d.sync += marked.eq(1)

        self._parser(m, fifo, slip, core)
        return m

    def _parser(
        self, m: Module, fifo: SyncFIFOBuffered, slip: SlipEncoder, core: Accelerator
    ) -> None:
        """The command parser, the executor and the reply sender: one FSM."""
        n_in, fmt, regs = self._n_in, self.result_format, self.regs
        info = self.info.to_bytes()
        reply_bytes = 2 + max(len(info) + 1, VALUE_BYTES, fmt.n_bytes)
        max_frame = 1 + RUN_HEADER + VALUE_BYTES * ((1 << 16) - 1)

        # frame state
        nbytes = Signal(range(max_frame + 2))  # bytes of the frame so far, saturating
        cmd = Signal(8)
        bad = Signal()  # a line error or bad escape in this frame
        escaped = Signal()
        arg = Signal(8 * (ADDR_BYTES + VALUE_BYTES))  # the first payload bytes
        addr, count = arg[: 8 * ADDR_BYTES], arg[32:48]
        width, wvalue = arg[48:56], arg[32:64]
        width_ok = (width >= 1) & (width <= VALUE_BYTES)
        # WRITE_RUN state
        idx = Signal(16)  # values completed
        vbyte = Signal(2)  # byte of the value being assembled
        vacc = Signal(DATA_BITS)
        excess = Signal()  # more values than count
        wr_valid, wr_addr, wr_data = Signal(), Signal(DATA_BITS), Signal(DATA_BITS)
        # reply state
        out = Signal(8 * reply_bytes)
        out_len = Signal(range(reply_bytes + 1))
        out_k = Signal(range(reply_bytes + 1))
        more = Signal()  # READ_RUN: more values follow this chunk
        rd_wait = Signal(range(READ_LATENCY + 1))
        rd_for = Signal(_Read)
        rd_addr = Signal(DATA_BITS)
        error = Signal()
        toggle = Signal()
        m.d.comb += [self.error.eq(error), self.result.eq(toggle)]

        # sample buffer
        attrs = {"ram_style": self._sample_ram} if self._sample_ram else None
        m.submodules.samples = buf = Memory(shape=8, depth=n_in + 1, init=[], attrs=attrs)
        bw, br = buf.write_port(), buf.read_port()
        length = Signal.like(nbytes)  # payload bytes of a SAMPLE (full width: no wrap)
        feed_i = Signal(range(n_in + 2))
        pixels = core.pixels
        m.d.comb += [br.addr.eq(feed_i), pixels.payload.eq(br.data)]

        # intake: one FIFO symbol a cycle while parsing
        raw, mark = fifo.r_data[:8], fifo.r_data[8]
        intake = Signal()
        take = intake & fifo.r_rdy
        m.d.comb += fifo.r_en.eq(intake)
        is_end = take & (raw == END)
        got = Signal()  # a payload byte (unescaped) arrives
        byte = Signal(8)
        with m.If(take & ~is_end):
            with m.If(mark):
                m.d.sync += bad.eq(1)
            with m.If(escaped):
                m.d.sync += escaped.eq(0)
                m.d.comb += [got.eq(1), byte.eq(Mux(raw == ESC_END, END, ESC))]
                with m.If((raw != ESC_END) & (raw != ESC_ESC)):
                    m.d.sync += bad.eq(1)
            with m.Elif(raw == ESC):
                m.d.sync += escaped.eq(1)
            with m.Else():
                m.d.comb += [got.eq(1), byte.eq(raw)]

        p = nbytes - 1  # payload index of the byte that arrives
        with m.If(got):
            m.d.sync += nbytes.eq(Mux(nbytes == max_frame + 1, nbytes, nbytes + 1))
            with m.If(nbytes == 0):
                m.d.sync += cmd.eq(byte)
            with m.Elif(p < len(arg) // 8):
                m.d.sync += arg.word_select(p[:3], 8).eq(byte)
            with m.If((nbytes != 0) & (cmd == Command.SAMPLE) & (p <= n_in)):
                m.d.comb += [bw.addr.eq(p), bw.data.eq(byte), bw.en.eq(1)]

        # WRITE_RUN: values as they arrive, written one cycle later
        merged = Signal(DATA_BITS)
        m.d.comb += merged.eq(vacc)
        with m.Switch(vbyte):
            for k in range(VALUE_BYTES):
                with m.Case(k):
                    m.d.comb += merged.word_select(k, 8).eq(byte)
        sext = merged
        for k in (3, 2, 1):  # sign-extend from width bytes
            sext = Mux(width == k, merged[: 8 * k].as_signed(), sext)
        m.d.sync += wr_valid.eq(0)
        run_data = got & (cmd == Command.WRITE_RUN) & (nbytes > RUN_HEADER) & width_ok
        with m.If(run_data):
            m.d.sync += vacc.eq(merged)
            with m.If(vbyte == width - 1):
                m.d.sync += [vbyte.eq(0), idx.eq(idx + 1)]
                with m.If(idx < count):
                    m.d.sync += [wr_valid.eq(1), wr_addr.eq(addr + idx), wr_data.eq(sext)]
                with m.Else():
                    m.d.sync += excess.eq(1)
            with m.Else():
                m.d.sync += vbyte.eq(vbyte + 1)

        bus = core.bus
        with m.If(wr_valid):
            m.d.comb += [bus.addr.eq(wr_addr), bus.wdata.eq(wr_data), bus.we.eq(1)]

        new_frame = [nbytes.eq(0), bad.eq(0), escaped.eq(0), idx.eq(0), vbyte.eq(0)]
        new_frame.append(excess.eq(0))

        def reply(status: Reply, payload: list | None = None, follow: Value | int = 0) -> list:
            """Statements that load a reply (status, cmd, payload bytes) for ``SEND``;
            ``follow``: READ_RUN values follow instead of the END."""
            payload = payload or []
            stmts = [
                out.word_select(0, 8).eq(status),
                out.word_select(1, 8).eq(cmd),
                out_len.eq(2 + len(payload)),
                out_k.eq(0),
                more.eq(follow),
            ]
            if status != Reply.OK:
                stmts.append(error.eq(1))
            stmts += [out.word_select(2 + k, 8).eq(b) for k, b in enumerate(payload)]
            return stmts

        def read(address: object, purpose: _Read) -> list:
            return [rd_addr.eq(address), rd_wait.eq(0), rd_for.eq(purpose)]

        status_of = {  # the fixed-length commands' length check
            c: Mux(bad, Reply.LINE_ERROR, Mux(nbytes == 1 + n, Reply.OK, Reply.BAD_LENGTH))
            for c, n in PAYLOAD.items()
        }
        sym = slip.i
        frame = fmt.pack(m, core.result.payload)
        with m.FSM():
            with m.State("RECV"):
                m.d.comb += intake.eq(~wr_valid)
                with m.If(is_end & (nbytes == 0) & ~bad & ~mark):
                    m.d.sync += new_frame  # empty frame: ignored (the resync byte)
                with m.Elif(is_end):
                    m.d.sync += bad.eq(bad | mark | escaped)
                    m.next = "DISPATCH"
            with m.State("DISPATCH"):
                m.d.sync += new_frame
                m.next = "SEND"
                with m.If(bad):
                    m.d.sync += reply(Reply.LINE_ERROR)
                with m.Elif(cmd == Command.SYNC):
                    ok = status_of[Command.SYNC] == Reply.OK
                    with m.If(ok):
                        m.d.sync += reply(Reply.OK, [arg[:8], *info])
                        m.d.sync += error.eq(0)
                    with m.Else():
                        m.d.sync += reply(Reply.BAD_LENGTH)
                with m.Elif(cmd == Command.READ):
                    with m.If(status_of[Command.READ] == Reply.OK):
                        m.d.sync += read(addr, _Read.REG)
                        m.next = "READ"
                    with m.Else():
                        m.d.sync += reply(Reply.BAD_LENGTH)
                with m.Elif(cmd == Command.WRITE):
                    with m.If(status_of[Command.WRITE] == Reply.OK):
                        m.d.comb += [bus.addr.eq(addr), bus.wdata.eq(wvalue), bus.we.eq(1)]
                        m.d.sync += reply(Reply.OK)
                    with m.Else():
                        m.d.sync += reply(Reply.BAD_LENGTH)
                with m.Elif(cmd == Command.WRITE_RUN):
                    whole = (nbytes > RUN_HEADER) & (idx == count) & (vbyte == 0) & ~excess
                    with m.If(nbytes < 1 + RUN_HEADER):
                        m.d.sync += reply(Reply.BAD_LENGTH)
                    with m.Elif(~width_ok):
                        m.d.sync += reply(Reply.BAD_ARGUMENT)
                    with m.Elif(whole):
                        m.d.sync += reply(Reply.OK)
                    with m.Else():
                        m.d.sync += reply(Reply.BAD_LENGTH)
                with m.Elif(cmd == Command.READ_RUN):
                    with m.If(status_of[Command.READ_RUN] != Reply.OK):
                        m.d.sync += reply(Reply.BAD_LENGTH)
                    with m.Elif(~width_ok):
                        m.d.sync += reply(Reply.BAD_ARGUMENT)
                    with m.Else():
                        m.d.sync += [*reply(Reply.OK, follow=count != 0), idx.eq(0)]
                with m.Elif(cmd == Command.SAMPLE):
                    m.d.sync += [*read(regs.MODE, _Read.MODE), length.eq(nbytes - 1)]
                    m.next = "READ"
                with m.Else():
                    m.d.sync += reply(Reply.UNKNOWN_COMMAND)
            with m.State("READ"):
                m.d.comb += bus.addr.eq(rd_addr)
                m.d.sync += rd_wait.eq(rd_wait + 1)
                with m.If(rd_wait == READ_LATENCY):
                    with m.If(rd_for == _Read.RUN):
                        m.d.sync += [
                            out.eq(bus.rdata),
                            out_len.eq(width),
                            out_k.eq(0),
                            more.eq(idx + 1 != count),
                            idx.eq(idx + 1),
                        ]
                    m.next = "SEND"
                    with m.If(rd_for == _Read.MODE):
                        training = bus.rdata == Mode.TRAINING
                        fits = length == Mux(training, n_in + 1, n_in)
                        with m.If(fits):
                            m.d.sync += feed_i.eq(0)
                            m.next = "FEED"
                        with m.Else():
                            m.d.sync += reply(Reply.BAD_LENGTH)
                    with m.Elif(rd_for == _Read.REG):
                        m.d.sync += reply(Reply.OK, [bus.rdata.word_select(k, 8) for k in range(4)])
            with m.State("FEED"):  # a read stage in front of the pixel stream (as the AXI shell)
                m.d.comb += self.busy.eq(1)
                advance = ~pixels.valid | pixels.ready
                m.d.comb += br.en.eq(advance)
                with m.If(advance):
                    m.d.sync += [pixels.valid.eq(feed_i != length), feed_i.eq(feed_i + 1)]
                with m.If(pixels.valid & pixels.ready & (feed_i == length)):
                    m.d.sync += pixels.valid.eq(0)
                    m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += [self.busy.eq(1), core.result.ready.eq(1)]
                with m.If(core.result.valid):
                    m.d.sync += reply(
                        Reply.OK, [frame.word_select(k, 8) for k in range(fmt.n_bytes)]
                    )
                    m.d.sync += toggle.eq(~toggle)
                    m.next = "SEND"
            with m.State("SEND"):
                last = out_k == out_len
                m.d.comb += [
                    sym.valid.eq(1),
                    sym.payload.data.eq(out.word_select(out_k, 8)),
                    sym.payload.end.eq(last),
                ]
                with m.If(last & more):  # READ_RUN: the next value instead of END
                    m.d.comb += sym.valid.eq(0)
                    m.d.sync += read(addr + idx, _Read.RUN)
                    m.next = "READ"
                with m.Elif(sym.ready):
                    m.d.sync += out_k.eq(out_k + 1)
                    with m.If(last):
                        m.next = "RECV"
