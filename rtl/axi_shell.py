"""AXI shell: the accelerator behind standard interfaces (AXI4-Lite, AXI4-Stream, an irq).

Why a shell and not new ports on :class:`rtl.accelerator.Accelerator`: an FPGA
build drops the accelerator into a system of AXI interconnects, DMAs and a CPU
that only speak AMBA, while the core's own ports (a ``stream`` of pixels, a
``stream`` of results, a memory-mapped bus with a fixed read latency and no
handshake) are what its blocks want. The shell translates at the edge and uses
nothing but the core's public ports, so the core's internals stay free to
change under it.

Ports of :class:`AxiShell` (members flatten to Verilog with ``__``, so
``s_axil`` becomes ``s_axil__awaddr`` ..., which cocotbext-axi's
``AxiLiteBus.from_prefix(dut, "s_axil_")`` finds; see :mod:`rtl.axi`):

- ``s_axil``: AXI4-Lite slave, 32-bit data, byte addresses = 4 x the core's
  word addresses (``awaddr[1:0]`` / ``araddr[1:0]`` are ignored, and so are
  ``awprot`` / ``arprot``). Only full-word writes (``wstrb = 0b1111``) are
  carried out; a partial strobe changes nothing and answers SLVERR. Everything
  else answers OKAY: a write the core refuses (busy, bad address or value) sets
  its sticky ``STATUS`` bit as on the bare core. One read and one write are in
  flight at a time; B and R wait for ``bready`` / ``rready``.
- ``s_axis``: pixels, ``tdata`` 8 bits, ``tlast`` on the last transfer of a
  sample (the label in ``MODE = TRAINING``, which follows the ``n_in`` pixels).
- ``m_axis``: results, 8 bits per beat, one frame per sample, ``tlast`` on the
  last beat; the layout is :class:`ResultFormat`.
- ``s_axis_weights`` (on-chip weights only): one 32-bit beat per weight in the
  weight window's address order (:meth:`AxiShell.weight_beats`), ``tlast`` on
  the last; written one per cycle while no sample runs.
- ``irq``: high while ``STATUS & IRQ_ENABLE`` is not 0 (``BUSY`` excluded).
- ``m_axi`` (``weights = external`` only): the core's AXI4 master (reads; writes too with
  on-chip training), passed through.

**Framing.** A sample is accepted only whole: the shell keeps the frame in a
buffer of ``n_in + 1`` bytes and passes it to the core only once ``tlast``
came at the right place. The other design, passing pixels straight on and
dropping the result of a bad frame, cannot undo the damage: a short frame would
leave the core half-fed (the next sample's pixels would complete it, mixing two
samples), and in ``MODE = TRAINING`` a bad sample that runs also changes the
weights. With the buffer a wrong-length frame is never run, ``STATUS.ERR_FRAME``
is set (sticky, write 1 to clear), and the stream resynchronises at the
frame's ``tlast`` (an over-long frame is dropped up to its ``tlast``). The
buffer costs no throughput: the next frame arrives while the core computes,
and is then passed on at one byte per cycle, as fast as the core takes pixels.
The expected length depends on ``MODE``: the shell reads ``MODE`` over the
core's bus when the core is free and holds back a host write to ``MODE`` from
that read until the frame is in the core (``READ_LATENCY + n_in + 3`` cycles
once the core is free), so the frame's length and the mode the core runs it in always agree.

**Registers the shell adds.** ``STATUS.ERR_FRAME`` and ``IRQ_ENABLE`` live in
the shell; reads of ``STATUS`` get the bit merged in, ``IRQ_ENABLE`` is never
passed to the core. The core's error bits reach ``irq`` through a ``STATUS``
read the shell issues itself on every bus cycle nobody else uses (reads have no
side effects), so the irq follows a core error within a few cycles; a
``STATUS`` write clears the shell's copy at once, so a handler that clears
the bits sees ``irq`` fall before its B response.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from desire.config import Config
from golden.fixed import constants
from rtl import check_int
from rtl.accelerator import READ_LATENCY, Accelerator
from rtl.register_map import DATA_BITS, AddressMap, Mode, Status

__all__ = [
    "IRQ_SOURCES",
    "RESP_OKAY",
    "RESP_SLVERR",
    "AxiLiteSignature",
    "AxiShell",
    "AxiStreamSignature",
    "ResultFormat",
]

#: ``bresp`` / ``rresp`` OKAY and SLVERR.
RESP_OKAY = 0b00
RESP_SLVERR = 0b10
#: ``STATUS`` bits that ``IRQ_ENABLE`` can route to ``irq``: all but ``BUSY`` (a sample
#: that runs is no event; its end is ``RESULT``).
IRQ_SOURCES = int(Status(sum(Status)) & ~Status.BUSY)


class AxiLiteSignature(wiring.Signature):
    """AXI4-Lite, all five channels, from the master's side (a slave takes it ``In``).

    Names are AMBA's in lower case, as in :class:`rtl.axi.AxiReadSignature`, so that a
    member ``s_axil`` flattens to ``s_axil__awaddr`` ... and cocotbext-axi's
    ``AxiLiteBus.from_prefix(dut, "s_axil_")`` binds.

    Members (``Out``: driven by the master)
    --------------------------------------
    awaddr, awprot, awvalid : Out(addr_width), Out(3), Out(1)
    awready : In(1)
    wdata, wstrb, wvalid : Out(32), Out(4), Out(1)
    wready : In(1)
    bresp, bvalid : In(2), In(1)
    bready : Out(1)
    araddr, arprot, arvalid : Out(addr_width), Out(3), Out(1)
    arready : In(1)
    rdata, rresp, rvalid : In(32), In(2), In(1)
    rready : Out(1)
    """

    def __init__(self, addr_width: int) -> None:
        self._addr_width = check_int("addr_width", addr_width, 1, 64)
        strobes = DATA_BITS // 8
        super().__init__(
            {
                "awaddr": Out(addr_width),
                "awprot": Out(3),
                "awvalid": Out(1),
                "awready": In(1),
                "wdata": Out(DATA_BITS),
                "wstrb": Out(strobes),
                "wvalid": Out(1),
                "wready": In(1),
                "bresp": In(2),
                "bvalid": In(1),
                "bready": Out(1),
                "araddr": Out(addr_width),
                "arprot": Out(3),
                "arvalid": Out(1),
                "arready": In(1),
                "rdata": In(DATA_BITS),
                "rresp": In(2),
                "rvalid": In(1),
                "rready": Out(1),
            }
        )

    @property
    def addr_width(self) -> int:
        return self._addr_width

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AxiLiteSignature) and self._addr_width == other._addr_width

    def __hash__(self) -> int:
        return hash((AxiLiteSignature, self._addr_width))

    def __repr__(self) -> str:
        return f"AxiLiteSignature({self._addr_width})"


class AxiStreamSignature(wiring.Signature):
    """AXI4-Stream with ``tdata`` and ``tlast`` only, from the source's side.

    No ``tkeep`` / ``tstrb`` (every byte of a beat counts), no ``tid`` / ``tdest`` /
    ``tuser``: cocotbext-axi's ``AxiStreamBus`` treats all of them as optional.

    Members
    -------
    tdata : Out(data_bits)
    tvalid : Out(1)
    tready : In(1)
    tlast : Out(1)
    """

    def __init__(self, data_bits: int) -> None:
        self._data_bits = check_int("data_bits", data_bits, 8)
        if data_bits % 8:
            raise ValueError(f"data_bits must be a multiple of 8, not {data_bits}")
        super().__init__(
            {
                "tdata": Out(data_bits),
                "tvalid": Out(1),
                "tready": In(1),
                "tlast": Out(1),
            }
        )

    @property
    def data_bits(self) -> int:
        return self._data_bits

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AxiStreamSignature) and self._data_bits == other._data_bits

    def __hash__(self) -> int:
        return hash((AxiStreamSignature, self._data_bits))

    def __repr__(self) -> str:
        return f"AxiStreamSignature({self._data_bits})"


@dataclass(frozen=True)
class ResultFormat:
    """Byte layout of a result frame on ``m_axis``, derived from the core's result layout.

    A frame is :attr:`n_bytes` one-byte beats: class ``k``'s spike count in bytes
    ``[k * count_bytes, (k + 1) * count_bytes)`` (little endian), then a trailer of
    :attr:`trailer_bytes`: ``cls`` in its low bits and ``valid_class`` in the top bit of
    its last byte (bit 7 of the frame's last byte). A byte per count lets a host (or a
    DMA into memory) read a count without shifting; the flag in bit 7 keeps ``cls``
    readable as a plain number. :meth:`for_layout` refuses a layout it does not know,
    so a change of the core's result fails here instead of packing wrongly.
    """

    classes: int
    count_bits: int
    cls_bits: int

    @classmethod
    def for_layout(cls, layout: data.StructLayout) -> ResultFormat:
        members = dict(layout.members) if isinstance(layout, data.StructLayout) else {}
        if set(members) != {"counts", "cls", "valid_class"}:
            raise ValueError(f"unknown result layout {layout!r}: expected counts, cls, valid_class")
        counts = members["counts"]
        if (
            not isinstance(counts, data.ArrayLayout)
            or Shape.cast(members["valid_class"]).width != 1
        ):
            raise ValueError(f"unknown result layout {layout!r}")
        return cls(
            counts.length, Shape.cast(counts.elem_shape).width, Shape.cast(members["cls"]).width
        )

    @property
    def count_bytes(self) -> int:
        return max(1, -(-self.count_bits // 8))

    @property
    def trailer_bytes(self) -> int:
        return -(-(self.cls_bits + 1) // 8)

    @property
    def n_bytes(self) -> int:
        return self.classes * self.count_bytes + self.trailer_bytes

    def pack(self, m: Module, result: data.View) -> Signal:
        """The frame of ``result`` (a view of the layout) as one ``8 * n_bytes`` signal,
        byte 0 lowest (combinational)."""
        frame = Signal(8 * self.n_bytes)
        cb, tb = 8 * self.count_bytes, 8 * self.trailer_bytes
        counts = [result.counts[k] for k in range(self.classes)]
        m.d.comb += [frame.word_select(k, cb).eq(c) for k, c in enumerate(counts)]
        trailer = frame[self.classes * cb :]
        m.d.comb += [
            trailer[: self.cls_bits].eq(result.cls),
            trailer[tb - 1].eq(result.valid_class),
        ]
        return frame

    def decode(self, frame: bytes | list[int]) -> tuple[list[int], int, int]:
        """``(counts, cls, valid_class)`` of one frame (what a host does)."""
        frame = bytes(frame)
        if len(frame) != self.n_bytes:
            raise ValueError(f"a result frame has {self.n_bytes} bytes, not {len(frame)}")
        cb = self.count_bytes
        counts = [
            int.from_bytes(frame[k * cb : (k + 1) * cb], "little") for k in range(self.classes)
        ]
        trailer = int.from_bytes(frame[self.classes * cb :], "little")
        top = 8 * self.trailer_bytes - 1
        return counts, trailer & ((1 << self.cls_bits) - 1), trailer >> top

    def markdown(self) -> str:
        """The frame layout as a Markdown table (for the docs beside the Verilog)."""
        cb, n, last = self.count_bytes, self.classes, self.n_bytes - 1
        count = "k" if cb == 1 else f"{cb}k .. {cb}k + {cb - 1}"
        rows = ["| byte | field |", "|---|---|"]
        rows.append(f"| {count} (k < {n}) | spike count of class k, little endian |")
        first = n * cb
        trailer = str(first) if first == last else f"{first} .. {last}"
        rows.append(
            f"| {trailer} (last: tlast) | cls in bits 0 .. {self.cls_bits - 1}, "
            f"valid_class in bit 7 of byte {last} |"
        )
        return "\n".join(rows) + "\n"


class _Frame(enum.Enum):
    """States of the pixel framer."""

    RECV = 0  # taking a frame into the buffer
    DISCARD = 1  # an over-long frame: dropping beats up to its tlast
    CHECK = 2  # a whole frame waits for the core, then for MODE, to know if its length fits
    SEND = 3  # passing the frame to the core


class _Tag(enum.IntEnum):
    """What a bus read in flight was for."""

    NONE = 0
    AXI = 1  # the AXI-Lite master's read
    MODE = 2  # the framer's read of MODE
    STATUS = 3  # the irq's poll of STATUS


class AxiShell(wiring.Component):
    """:class:`rtl.accelerator.Accelerator` ``(cfg, weights)`` behind AXI (module docstring).

    Ports
    -----
    s_axil : In(AxiLiteSignature(addr_bits + 2))
        Registers and weights; byte address = 4 x the core's word address.
    s_axis : In(AxiStreamSignature(8))
        Samples, one frame each: ``n_in`` pixels (then the label in training).
    m_axis : Out(AxiStreamSignature(8))
        Results, one frame of :attr:`result_format` each.
    s_axis_weights : In(AxiStreamSignature(32)), on-chip weights only
        The weight window, one beat per weight (:meth:`weight_beats`).
    irq : Out(1)
        Registered: ``STATUS & IRQ_ENABLE`` is not 0.
    m_axi : Out(the core's ``axi`` signature), ``weights = external`` only
        The core's external weight reads.
    """

    def __init__(self, cfg: Config, weights: list[np.ndarray] | None = None) -> None:
        self._core = core = Accelerator(cfg, weights)
        c = constants(cfg)
        self._n_in = c.layers[0]
        self._training = cfg.hardware.training
        self._on_chip = cfg.hardware.weights == "on-chip"
        self._lanes = lanes = cfg.hardware.lanes
        blocks = [-(-n // lanes) for n in c.layers[1:]]
        # the weight window's fields, checked against the core's own addresses so that the
        # weight stream notices if the core ever lays its window out differently
        self._window = AddressMap([n * b for n, b in zip(c.layers, blocks, strict=False)], lanes)
        if self._window.addr_bits != core.addr_bits:
            raise AssertionError("the weight window of the core is not the one expected")
        for l in range(c.n_linear):
            n_out, n_inp = c.layers[l + 1], c.layers[l]
            last = self._window.weight(l, n_inp * blocks[l] - 1, (n_out - 1) % lanes)
            if core.weight_address(l, n_out - 1, n_inp - 1) != last:
                raise AssertionError("the weight window of the core is not the one expected")
        self.regs = core.regs
        self.result_format = ResultFormat.for_layout(core.result_layout)
        members = {
            "s_axil": In(AxiLiteSignature(core.addr_bits + 2)),
            "s_axis": In(AxiStreamSignature(8)),
            "m_axis": Out(AxiStreamSignature(8)),
            "irq": Out(1),
        }
        if self._on_chip:
            members["s_axis_weights"] = In(AxiStreamSignature(DATA_BITS))
        if "axi" in core.signature.members:
            members["m_axi"] = Out(core.signature.members["axi"].signature)
        super().__init__(members)

    @property
    def core(self) -> Accelerator:
        """The accelerator inside (its ``weight_address``, ``no_class``, ...)."""
        return self._core

    def byte_address(self, word: int) -> int:
        """AXI-Lite byte address of the core's word address ``word``."""
        check_int("word", word, 0, (1 << self._core.addr_bits) - 1)
        return 4 * word

    def weight_beats(self, weights: list[np.ndarray]) -> list[int]:
        """``s_axis_weights`` beats (32-bit two's complement) for ``weights`` (one
        ``(n_out, n_in)`` array per layer): layer by layer, each layer's window words in
        address order, the lanes of a word lowest first; lanes past ``n_out`` are 0."""
        c, lanes = constants(self._core.config), self._lanes
        if len(weights) != c.n_linear:
            raise ValueError(f"expected {c.n_linear} weight layers, got {len(weights)}")
        beats: list[np.ndarray] = []
        for l, w in enumerate(weights):
            w = np.asarray(w, dtype=np.int64)
            shape = (c.layers[l + 1], c.layers[l])
            if w.shape != shape:
                raise ValueError(f"weights[{l}] has shape {w.shape}, not {shape}")
            blocks = -(-shape[0] // lanes)
            padded = np.zeros((blocks * lanes, shape[1]), dtype=np.int64)
            padded[: shape[0]] = w
            # word = inp * blocks + block, lane = out % lanes: (inp, block, lane) order
            beats.append(padded.reshape(blocks, lanes, shape[1]).transpose(2, 0, 1).ravel())
        return [int(x) & 0xFFFF_FFFF for x in np.concatenate(beats)]

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.core = core = self._core
        regs, bus, axil = self.regs, core.bus, self.s_axil
        if "axi" in core.signature.members:
            wiring.connect(m, core.axi, wiring.flipped(self.m_axi))

        err_frame = Signal()  # STATUS.ERR_FRAME, sticky
        irq_enable = Signal(DATA_BITS)
        status_seen = Signal(DATA_BITS)  # the core's STATUS, from the shell's own reads
        core_busy = Signal()  # a sample is in the core, from its last byte to its result
        state = Signal(_Frame)
        chk_issued = Signal()
        mode_locked = ((state == _Frame.CHECK) & chk_issued) | (state == _Frame.SEND)

        # AXI-Lite write: AW and W in one slot each; B when both are there and done
        aw_full, aw_addr = Signal(), Signal(core.addr_bits)
        w_full, w_data, w_strb = Signal(), Signal(DATA_BITS), Signal(DATA_BITS // 8)
        m.d.comb += [axil.awready.eq(~aw_full), axil.wready.eq(~w_full)]
        with m.If(axil.awvalid & axil.awready):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(axil.awaddr[2:])]
        with m.If(axil.wvalid & axil.wready):
            m.d.sync += [w_full.eq(1), w_data.eq(axil.wdata), w_strb.eq(axil.wstrb)]
        with m.If(axil.bvalid & axil.bready):
            m.d.sync += axil.bvalid.eq(0)
        wr_pending = aw_full & w_full & ~axil.bvalid
        whole = w_strb.all()
        local = aw_addr == regs.IRQ_ENABLE
        wr_local = wr_pending & (~whole | local)  # done here, without the core's bus
        wr_bus_req = wr_pending & whole & ~local & ~((aw_addr == regs.MODE) & mode_locked)

        # AXI-Lite read: one at a time, from AR to the R handshake
        ar_full, ar_issued, ar_addr = Signal(), Signal(), Signal(core.addr_bits)
        m.d.comb += axil.arready.eq(~ar_full)
        with m.If(axil.arvalid & axil.arready):
            m.d.sync += [ar_full.eq(1), ar_issued.eq(0), ar_addr.eq(axil.araddr[2:])]
        with m.If(axil.rvalid & axil.rready):
            m.d.sync += [axil.rvalid.eq(0), ar_full.eq(0)]
        rd_req = ar_full & ~ar_issued
        chk_req = (state == _Frame.CHECK) & ~chk_issued & ~core_busy

        # the core's bus, one user a cycle: MODE check, AXI read, AXI write, weight stream,
        # else a STATUS poll. Every requester but the stream waits READ_LATENCY cycles or
        # a handshake between requests, so none starves the others.
        ws_write, ws_error = Signal(), Signal()
        wr_grant = wr_bus_req & ~chk_req & ~rd_req
        ws_free = ~chk_req & ~rd_req & ~wr_bus_req
        with m.If(chk_req):
            m.d.comb += bus.addr.eq(regs.MODE)
            m.d.sync += chk_issued.eq(1)
        with m.Elif(rd_req):
            m.d.comb += bus.addr.eq(ar_addr)
            m.d.sync += ar_issued.eq(1)
        with m.Elif(wr_grant):
            m.d.comb += [bus.addr.eq(aw_addr), bus.wdata.eq(w_data), bus.we.eq(1)]
        with m.Elif(~ws_write):  # (the weight stream drives its own writes)
            m.d.comb += bus.addr.eq(regs.STATUS)
        with m.If(wr_local | wr_grant):
            m.d.sync += [
                aw_full.eq(0),
                w_full.eq(0),
                axil.bvalid.eq(1),
                axil.bresp.eq(Mux(whole, RESP_OKAY, RESP_SLVERR)),
            ]
        with m.If(wr_local & whole):
            m.d.sync += irq_enable.eq(w_data & IRQ_SOURCES)
        status_write = wr_grant & (aw_addr == regs.STATUS)
        with m.If(status_write):
            m.d.sync += status_seen.eq(status_seen & ~w_data)
        if self._on_chip:
            self._weight_stream(m, ws_free & ~core_busy, ws_write, ws_error)

        # reads in flight: what each was for; a STATUS write voids the polls before it
        tags = [Signal(_Tag, name=f"tag{k}") for k in range(READ_LATENCY)]
        issued = Mux(
            chk_req,
            _Tag.MODE,
            Mux(rd_req, _Tag.AXI, Mux(wr_grant | ws_write, _Tag.NONE, _Tag.STATUS)),
        )
        m.d.sync += tags[0].eq(issued)
        for before, after in itertools.pairwise(tags):
            m.d.sync += after.eq(Mux(status_write & (before == _Tag.STATUS), _Tag.NONE, before))
        out = tags[-1]
        with m.If((out == _Tag.STATUS) & ~status_write):
            m.d.sync += status_seen.eq(bus.rdata)
        with m.If(out == _Tag.AXI):
            merged = Mux(
                ar_addr == regs.STATUS,
                bus.rdata | Mux(err_frame, Status.ERR_FRAME, 0),
                Mux(ar_addr == regs.IRQ_ENABLE, irq_enable, bus.rdata),
            )
            m.d.sync += [axil.rvalid.eq(1), axil.rdata.eq(merged), axil.rresp.eq(RESP_OKAY)]

        frame_error = self._framer(m, state, chk_issued, core_busy, out == _Tag.MODE)
        with m.If(status_write & (w_data & Status.ERR_FRAME).any()):
            m.d.sync += err_frame.eq(0)
        with m.If(frame_error | ws_error):  # a new error wins over a clear in the same cycle
            m.d.sync += err_frame.eq(1)

        self._results(m, core_busy)
        own = Status.BUSY | Status.RESULT | Status.ERR_FRAME
        sources = (status_seen & ~own) | Mux(core.result.valid, Status.RESULT, 0)
        sources |= Mux(err_frame, Status.ERR_FRAME, 0)
        m.d.sync += self.irq.eq((sources & irq_enable).any())
        return m

    def _framer(
        self, m: Module, state: Signal, chk_issued: Signal, core_busy: Signal, mode_out: Signal
    ) -> Signal:
        """``s_axis`` into the frame buffer, checked, then into the core's pixel stream;
        returns the strobe of a framing error. ``mode_out``: ``bus.rdata`` is ``MODE``."""
        core, n_in = self._core, self._n_in
        max_len = n_in + int(self._training)
        src, pixels = self.s_axis, core.pixels
        m.submodules.frame = buf = Memory(shape=8, depth=max_len, init=[])
        wr, rd = buf.write_port(), buf.read_port()
        index = Signal(range(max_len + 1))  # beats taken / bytes read out
        labelled = Signal()  # the frame has n_in + 1 bytes
        error = Signal()
        taken = src.tvalid & src.tready
        length = Mux(labelled, n_in + 1, n_in)
        m.d.comb += [wr.addr.eq(index), wr.data.eq(src.tdata), rd.addr.eq(index)]
        m.d.comb += pixels.payload.eq(rd.data)
        with m.Switch(state):
            with m.Case(_Frame.RECV):
                m.d.comb += [src.tready.eq(1), wr.en.eq(taken)]
                with m.If(taken):
                    m.d.sync += index.eq(index + 1)
                    with m.If(src.tlast):
                        m.d.sync += index.eq(0)
                        if self._training:
                            m.d.sync += labelled.eq(index == n_in)
                            plausible = (index == n_in - 1) | (index == n_in)
                        else:
                            m.d.sync += labelled.eq(0)
                            plausible = index == n_in - 1
                        with m.If(plausible):
                            m.d.sync += [state.eq(_Frame.CHECK), chk_issued.eq(0)]
                        with m.Else():
                            m.d.comb += error.eq(1)
                    with m.Elif(index == max_len - 1):  # no tlast where the frame must end
                        m.d.comb += error.eq(1)
                        m.d.sync += [index.eq(0), state.eq(_Frame.DISCARD)]
            with m.Case(_Frame.DISCARD):
                m.d.comb += src.tready.eq(1)
                with m.If(taken & src.tlast):
                    m.d.sync += state.eq(_Frame.RECV)
            # CHECK: MODE, read once the core is free, says the length
            with m.Case(_Frame.CHECK), m.If(mode_out):
                core_mode = core.bus.rdata
                fits = Mux(labelled, core_mode == Mode.TRAINING, core_mode == Mode.INFERENCE)
                with m.If(fits):
                    m.d.sync += state.eq(_Frame.SEND)
                with m.Else():
                    m.d.comb += error.eq(1)
                    m.d.sync += state.eq(_Frame.RECV)
            with m.Case(_Frame.SEND):  # a read stage in front of the pixel stream
                advance = ~pixels.valid | pixels.ready
                m.d.comb += rd.en.eq(advance)
                with m.If(advance):
                    m.d.sync += [pixels.valid.eq(index != length), index.eq(index + 1)]
                with m.If(pixels.valid & pixels.ready & (index == length)):
                    m.d.sync += [
                        pixels.valid.eq(0),
                        index.eq(0),
                        state.eq(_Frame.RECV),
                        core_busy.eq(1),
                    ]
        return error

    def _results(self, m: Module, core_busy: Signal) -> None:
        """The core's result, one byte a beat onto ``m_axis``; the core's result is taken
        (and ``core_busy`` ends) with the last beat, so it holds still meanwhile."""
        core, fmt, dst = self._core, self.result_format, self.m_axis
        frame = fmt.pack(m, core.result.payload)
        beat = Signal(range(fmt.n_bytes))
        last = beat == fmt.n_bytes - 1
        m.d.comb += [
            dst.tdata.eq(frame.word_select(beat, 8)),
            dst.tvalid.eq(core.result.valid),
            dst.tlast.eq(last),
            core.result.ready.eq(dst.tready & last),
        ]
        with m.If(dst.tvalid & dst.tready):
            m.d.sync += beat.eq(Mux(last, 0, beat + 1))
            with m.If(last):
                m.d.sync += core_busy.eq(0)

    def _weight_stream(self, m: Module, free: Signal, write: Signal, error: Signal) -> None:
        """``s_axis_weights`` onto the core's bus: ``write`` when a beat is written this
        cycle (the bus is ``free`` and no sample runs). A frame of the wrong length strobes
        ``error`` (``ERR_FRAME``): the beats written stay, the next frame starts at weight 0
        (an over-long one after its ``tlast``)."""
        win, src, bus = self._window, self.s_axis_weights, self._core.bus
        n = len(win.depths)
        lane = Signal(range(max(win.lanes, 2)))
        word = Signal(range(max(max(win.depths), 2)))
        layer = Signal(range(max(n, 2)))
        discard = Signal()
        depth = Array(Const(d - 1, word.shape()) for d in win.depths)
        end_word = lane == win.lanes - 1
        end_layer = end_word & (word == depth[layer])
        end = end_layer & (layer == n - 1)
        fields = Cat(lane[: win.lane_bits], word[: win.word_bits], layer[: win.layer_bits])
        pad = win.addr_bits - 1 - len(fields)
        m.d.comb += [
            src.tready.eq(discard | free),
            write.eq(src.tvalid & free & ~discard),
        ]
        with m.If(write):
            m.d.comb += [
                bus.addr.eq(Cat(fields, Const(0, pad), 1)),
                bus.wdata.eq(src.tdata),
                bus.we.eq(1),
            ]
        restart = [lane.eq(0), word.eq(0), layer.eq(0)]
        with m.If(src.tvalid & src.tready):
            with m.If(discard), m.If(src.tlast):
                m.d.sync += discard.eq(0)
            with m.Elif(src.tlast):
                m.d.sync += restart
                m.d.comb += error.eq(~end)
            with m.Elif(end):
                m.d.sync += [*restart, discard.eq(1)]
                m.d.comb += error.eq(1)
            with m.Else():
                m.d.sync += lane.eq(lane + 1)
                with m.If(end_word):
                    m.d.sync += [lane.eq(0), word.eq(word + 1)]
                with m.If(end_layer):
                    m.d.sync += [word.eq(0), layer.eq(layer + 1)]
