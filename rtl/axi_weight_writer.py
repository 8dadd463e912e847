"""Weight words back to external memory through an AXI4 write master.

Why: on-chip training with the weights in external memory (issue 12, item 2) reads a
weight word, updates it and writes it back. The update unit produces at most one whole
word per cycle, at a fixed delay after its read; this block buffers the write-backs and
writes each word to its place in the table :mod:`rtl.axi_weight_reader` reads, so that
the next sample's reads see it.

Memory image: the reader's (:func:`rtl.axi_weight_reader.word_geometry`): a word is
``beats_per_word`` whole beats at ``addr`` (``base + word * stride``, beat-aligned: the
low bits are taken as 0), little endian, the unused high bits of its last beat 0.

Flow control by reservation. The producer of the writes cannot wait (a write-back leaves
the update pipeline whether or not there is room), so room is promised before the work
that makes the write starts: ``reserve`` takes one of ``depth_words`` credits (``room``
says one is left), and the word popped from the FIFO to the AXI engines gives it back.
Every write must be covered by a reservation made in an earlier cycle or its own; the
FIFO then never overflows, and ``writes.ready`` (the FIFO's room) is high whenever a
reserved write comes.

Bursts. Each word is one INCR burst of ``beats_per_word`` beats, ``wstrb`` all ones,
split only where AXI requires it: at a 4 KB boundary (a stride that is not a power of
two lets a word straddle one) and after 256 beats (:data:`rtl.axi.AXI_MAX_BEATS`). The
AW and W channels run independently, as AXI4 asks of a master (neither waits for the
other's handshake): the AW engine issues the bursts of the FIFO's head word, the W engine
copies the head word into a shift register and sends its beats (``wlast`` where the AW
engine split); the head is popped once both have taken it, so the next word's address
goes out while this word's beats are still on W. With one beat per word and a ready
slave that is a word per cycle. Every AXI output is a register or a function of
registers only (no combinational path from ``awready`` / ``wready`` / ``bvalid``).

Responses. ``bready`` is always high; the bursts without their B response are counted
(at most ``max_outstanding``: the AW engine waits at that many). A response with
``bresp`` SLVERR or DECERR (bit 1 set) sets the sticky ``error`` output, cleared only by
reset. ``idle``: no reservation open, nothing in the FIFO or the engines, every burst
answered: every write reserved so far is in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl import check_int
from rtl.axi import (
    AWBURST_INCR,
    AWCACHE_NORMAL,
    AWPROT_DATA,
    AXI_4K,
    AXI_MAX_BEATS,
    AxiWriteSignature,
)
from rtl.axi_weight_reader import word_geometry

__all__ = ["AxiWeightWriter"]


@dataclass(frozen=True)
class _Engine:
    """What the AW or W engine tells the FIFO's head: whether it has taken the head word
    (by this cycle's end), whether it loads its output register this cycle, whether it
    holds nothing, and its per-head register (cleared when the head is popped)."""

    taken: Value
    loaded: Value
    empty: Value
    state: Signal


class AxiWeightWriter(wiring.Component):
    """Writer of ``lanes``-wide weight words through an AXI4 write master.

    Ports
    -----
    writes : In(stream.Signature(StructLayout({"addr": unsigned(addr_width),
            "data": ArrayLayout(signed(weight_bits), lanes)})))
        Write word ``data`` at byte address ``addr``. ``ready``: the FIFO has room, which
        a reserved write always finds (module docstring).
    reserve : In(1)
        Strobe: promise one write (take a credit); only while ``room``.
    room : Out(1)
        A credit is left: a ``reserve`` this cycle is allowed.
    axi : Out(:class:`rtl.axi.AxiWriteSignature` (addr_width, data_bytes))
        AXI4 write master (AW, W, B); Verilog ports ``axi__awaddr``, ... ``awid`` 0,
        ``awsize`` log2(data_bytes), ``awburst`` INCR, ``awcache`` normal non-cacheable
        bufferable, ``awprot`` / ``awlock`` / ``awqos`` 0, ``wstrb`` all ones, ``bready``
        always high.
    idle : Out(1)
        Every credit is back and every burst has its response (every reserved write is
        in memory).
    error : Out(1)
        Sticky: a response came back with SLVERR or DECERR since reset.
    """

    def __init__(
        self,
        lanes: int,
        weight_bits: int,
        data_bytes: int,
        *,
        addr_width: int = 32,
        depth_words: int,
        max_outstanding: int = 64,
    ) -> None:
        self._lanes = check_int("lanes", lanes, 1)
        self._weight_bits = check_int("weight_bits", weight_bits, 1)
        self._beats, self._stride = word_geometry(lanes, weight_bits, data_bytes)
        self._data_bytes = data_bytes
        self._addr_width = check_int("addr_width", addr_width, 12, 64)  # the 4 KB split
        self._depth_words = check_int("depth_words", depth_words, 1)
        self._max_outstanding = check_int("max_outstanding", max_outstanding, 1)
        write = data.StructLayout(
            {
                "addr": data.unsigned(addr_width),
                "data": data.ArrayLayout(data.signed(weight_bits), lanes),
            }
        )
        super().__init__(
            {
                "writes": In(stream.Signature(write)),
                "reserve": In(1),
                "room": Out(1),
                "axi": Out(AxiWriteSignature(addr_width, data_bytes)),
                "idle": Out(1),
                "error": Out(1),
            }
        )

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def weight_bits(self) -> int:
        return self._weight_bits

    @property
    def data_bytes(self) -> int:
        return self._data_bytes

    @property
    def depth_words(self) -> int:
        return self._depth_words

    @property
    def beats_per_word(self) -> int:
        """Data beats a word occupies (:func:`rtl.axi_weight_reader.word_geometry`)."""
        return self._beats

    @property
    def stride(self) -> int:
        """Bytes from one word to the next: beats per word x data_bytes."""
        return self._stride

    def elaborate(self, platform: object) -> Module:
        m = Module()
        depth = self._depth_words
        entry = Cat(self.writes.payload.addr, self.writes.payload.data)
        head, head_valid, pop = self._fifo(m, entry)
        size = self._data_bytes.bit_length() - 1
        head_addr = Cat(Const(0, size), head[size : self._addr_width])
        head_data = head[self._addr_width :]

        free = Signal(range(depth + 1), init=depth)  # credits left
        outstanding = Signal(range(self._max_outstanding + 1))  # bursts without a response
        aw = self._address(m, head_addr, head_valid, outstanding)
        w = self._data(m, head_addr, head_data, head_valid)
        m.d.comb += pop.eq(head_valid & aw.taken & w.taken)
        with m.If(pop):  # after the engines' own updates: a new head, untouched
            m.d.sync += [aw.state.eq(0), w.state.eq(0)]

        axi = self.axi
        m.d.comb += axi.bready.eq(1)
        response = axi.bvalid  # & bready
        with m.If(response & axi.bresp[1]):
            m.d.sync += self.error.eq(1)
        m.d.sync += [
            free.eq(free - self.reserve + pop),
            outstanding.eq(outstanding + aw.loaded - response),
        ]
        m.d.comb += [
            self.room.eq(free != 0),
            self.idle.eq((free == depth) & (outstanding == 0) & aw.empty & w.empty),
        ]
        return m

    def _fifo(self, m: Module, entry: Value) -> tuple[Value, Value, Signal]:
        """The write FIFO: a memory of ``depth_words - 1`` entries and the read port's data
        register as the head, which holds still until popped. Returns (the head, whether
        there is one, the pop strobe to drive).

        Unlike :class:`amaranth.lib.fifo.SyncFIFOBuffered`, a write to a full memory in a
        cycle that moves its oldest entry to the head is taken (the port reads the old
        entry first): the FIFO holds ``depth_words`` entries in every cycle, which the
        reservations count on."""
        depth = self._depth_words
        inner = max(depth - 1, 1)
        storage = Memory(shape=len(entry), depth=max(inner, 2), init=[])
        m.submodules.storage = storage
        wport, rport = storage.write_port(), storage.read_port(domain="sync")
        produce, consume = Signal(range(inner)), Signal(range(inner))
        level = Signal(range(inner + 1))  # entries in the memory
        head_valid, pop = Signal(), Signal()
        write = self.writes.valid & self.writes.ready
        move = (level != 0) & (~head_valid | pop)
        m.d.comb += [
            self.writes.ready.eq(level + head_valid != depth),
            wport.addr.eq(produce),
            wport.data.eq(entry),
            wport.en.eq(write),
            rport.addr.eq(consume),
            rport.en.eq(move),
        ]
        with m.If(write):
            m.d.sync += produce.eq(Mux(produce == inner - 1, 0, produce + 1))
        with m.If(move):
            m.d.sync += [consume.eq(Mux(consume == inner - 1, 0, consume + 1)), head_valid.eq(1)]
        with m.Elif(pop):
            m.d.sync += head_valid.eq(0)
        m.d.sync += level.eq(level + write - move)
        return rport.data, head_valid, pop

    def _piece(self, addr: Value, left: Value) -> Value:
        """Beats of the burst that starts at ``addr`` with ``left`` beats of the word to
        go: up to the word's end, the next 4 KB boundary or 256 beats, the nearest."""
        if self._beats == 1:
            return Const(1, 1)
        size = self._data_bytes.bit_length() - 1
        to_4k = (AXI_4K >> size) - addr[size:12]
        near = Mux(left < to_4k, left, to_4k)
        return Mux(near < AXI_MAX_BEATS, near, AXI_MAX_BEATS)

    def _address(
        self, m: Module, head_addr: Value, head_valid: Value, outstanding: Signal
    ) -> _Engine:
        """The AW engine: the head word's bursts, one after the other, into the AW
        register (``taken``: the head's last burst is loaded by this cycle's end; ``state``:
        the head's beats covered so far)."""
        axi, beats = self.axi, self._beats
        size = self._data_bytes.bit_length() - 1
        aw_valid = Signal()
        aw_addr = Signal(self._addr_width)
        aw_len = Signal(8)
        sent = Signal(range(beats + 1))  # beats of the head word covered by loaded bursts
        m.d.comb += [
            axi.awaddr.eq(aw_addr),
            axi.awlen.eq(aw_len),
            axi.awvalid.eq(aw_valid),
            axi.awsize.eq(size),
            axi.awburst.eq(AWBURST_INCR),
            axi.awid.eq(0),
            axi.awprot.eq(AWPROT_DATA),
            axi.awcache.eq(AWCACHE_NORMAL),
            axi.awlock.eq(0),
            axi.awqos.eq(0),
        ]
        addr = (head_addr + (sent << size))[: self._addr_width]
        left = beats - sent
        piece = self._piece(addr, left)
        free_slot = ~aw_valid | axi.awready
        load = Signal()
        m.d.comb += load.eq(
            head_valid & (sent != beats) & free_slot & (outstanding != self._max_outstanding)
        )
        with m.If(load):
            m.d.sync += [
                aw_valid.eq(1),
                aw_addr.eq(addr),
                aw_len.eq(piece - 1),
                sent.eq(sent + piece),
            ]
        with m.Elif(axi.awready):
            m.d.sync += aw_valid.eq(0)
        done = (sent == beats) | (load & (piece == left))
        return _Engine(done, load, ~aw_valid & (sent == 0), sent)

    def _data(self, m: Module, head_addr: Value, head_data: Value, head_valid: Value) -> _Engine:
        """The W engine: the head word into a shift register, then its beats
        (``taken``: the head is copied by this cycle's end; ``state``: it was before)."""
        axi, beats = self.axi, self._beats
        size = self._data_bytes.bit_length() - 1
        beat_bits = 8 * self._data_bytes
        shift = Signal(beats * beat_bits)
        left = Signal(range(beats + 1))  # beats of the copied word not yet sent
        took = Signal()  # the head word has been copied
        m.d.comb += [
            axi.wdata.eq(shift[:beat_bits]),
            axi.wstrb.eq(Const(-1, self._data_bytes)),
            axi.wvalid.eq(left != 0),
        ]
        beat = (left != 0) & axi.wready
        if beats == 1:
            m.d.comb += axi.wlast.eq(1)
        else:
            addr = Signal(self._addr_width)  # the beat's address: where the AW engine split
            count = Signal(range(AXI_MAX_BEATS))  # beats of the current burst sent
            at_4k = addr[size:12].all()
            m.d.comb += axi.wlast.eq((left == 1) | at_4k | (count == AXI_MAX_BEATS - 1))
            with m.If(beat):
                m.d.sync += [
                    addr.eq(addr + self._data_bytes),
                    count.eq(Mux(axi.wlast, 0, count + 1)),
                ]
        with m.If(beat):
            m.d.sync += [shift.eq(shift >> beat_bits), left.eq(left - 1)]
        load = head_valid & ~took & ((left == 0) | (beat & (left == 1)))
        with m.If(load):
            m.d.sync += [shift.eq(head_data), left.eq(beats), took.eq(1)]
            if beats > 1:
                m.d.sync += [addr.eq(head_addr), count.eq(0)]
        return _Engine(took | load, load, left == 0, took)
