"""Weight rows from external memory through an AXI4 read master, ahead of the lanes.

Why: the "weights in external memory" option (issue 12, item 2) keeps the
weight table in DRAM instead of block RAM. An input spike needs its weight row
(``words`` consecutive words of ``lanes`` weights); the scanner knows the next
spikes before the lanes need them, so the consumer posts their rows as requests
early and this block streams them in as AXI4 INCR bursts, several in flight, so
that the memory's latency is hidden and the bus delivers a beat every cycle.

Memory image. A word (``lanes`` signed weights of ``weight_bits``, lane ``j`` at
bits ``[j * weight_bits, (j + 1) * weight_bits)``) occupies
:attr:`AxiWeightReader.beats_per_word` whole data beats, little endian, the
unused high bits of its last beat 0; word ``k`` of a table at ``base`` lives at
``base + k * stride``, :attr:`~AxiWeightReader.stride` = beats per word x
``data_bytes``. :func:`pack_words` writes that image (tests, host software),
:func:`unpack_words` reads it back. Words never share a beat: a row's first beat
is then always beat-aligned, and the word assembly is a shift register and a
beat counter, without a barrel shifter of beat-width inputs.

Flow control by credits. The reader owns ``depth_words`` words of FIFO, counted
as ``depth_words * beats_per_word`` beat credits. A burst is issued only when
the credits cover all of its beats (taken back one word's worth when the
consumer takes a word), so every beat that can ever arrive has room, and
``rready`` is simply always high: the reader never back-pressures the bus, and
so never holds up other masters of a shared interconnect with a half-read
burst. Credits are counted in beats rather than words because bursts end at 4 KB
boundaries, which may fall inside a word when the stride is not a power of two.

Bursts. A request is split into INCR bursts of at most 256 beats
(:data:`rtl.axi.AXI_MAX_BEATS`) that never cross a 4 KB boundary, each also at
most the free credits. A burst is issued when the credits cover the whole of
the next piece (up to the request's end, the 4 KB boundary or 256 beats), or
when at least :attr:`~AxiWeightReader.burst_threshold` (a quarter of the FIFO,
at most 256) are free, so that a slow consumer makes medium bursts as it drains
the FIFO instead of a one-beat burst per word taken. A new burst goes out while
earlier ones are still returning (the AR channel is not held until the last
beat); with latency ``L`` cycles from AR to the first beat, the bus stays busy
when the FIFO holds about ``4/3 (L + 6)`` beats (the unit tests check this bound).
All bursts use ID 0, so AXI returns them in order, and the beats form one stream
of words in request order. From a request to its first word takes ``L + 3 +
beats_per_word`` cycles (two to split it and register the AR, one through the
FIFO's output register); a ready consumer then gets a beat's worth every cycle.

``requests.ready`` depends on ``axi.arready`` combinationally (a request is taken
in the cycle its last burst goes out, so back-to-back one-word rows keep the bus
busy); every AXI output is a register or a constant.

Errors. A beat with ``rresp`` SLVERR or DECERR (bit 1 set) sets the sticky
``error`` output, cleared only by reset; the beat's data is still delivered as a
word part (whatever the slave drove, typically 0), so the word count and the
credits stay consistent and the consumer is never left waiting. The consumer
(or the host, through a status register) decides what an error means for the
run; ``rlast`` is not used (the reader counts beats itself) and ``rid`` is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl import check_int, index_shape
from rtl.axi import (
    ARBURST_INCR,
    ARCACHE_NORMAL,
    ARPROT_DATA,
    AXI_4K,
    AXI_MAX_BEATS,
    AxiReadSignature,
)

__all__ = ["DATA_BYTES", "AxiWeightReader", "pack_words", "unpack_words", "word_geometry"]

#: AXI data widths the reader supports, in bytes per beat.
DATA_BYTES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)


def word_geometry(lanes: int, weight_bits: int, data_bytes: int) -> tuple[int, int]:
    """(beats per word, stride in bytes) of words of ``lanes`` x ``weight_bits`` on a bus
    of ``data_bytes`` bytes: a word takes whole beats."""
    check_int("lanes", lanes, 1)
    check_int("weight_bits", weight_bits, 1)
    check_int("data_bytes", data_bytes, 1)
    if data_bytes not in DATA_BYTES:
        raise ValueError(f"data_bytes must be one of {DATA_BYTES}, not {data_bytes}")
    beats = -(-(lanes * weight_bits) // (8 * data_bytes))
    return beats, beats * data_bytes


def pack_words(
    words: Sequence[Sequence[int]], lanes: int, weight_bits: int, data_bytes: int
) -> bytes:
    """Memory image of ``words`` (each ``lanes`` signed weights of ``weight_bits``): word
    ``k`` at byte ``k * stride``, little endian, lane ``j`` at bits ``[j * weight_bits,
    (j + 1) * weight_bits)``, unused bits 0. ValueError for a weight out of range."""
    _, stride = word_geometry(lanes, weight_bits, data_bytes)
    lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    mask = (1 << weight_bits) - 1
    image = bytearray()
    for k, word in enumerate(words):
        if len(word) != lanes:
            raise ValueError(f"word {k} has {len(word)} weights, not {lanes}")
        value = 0
        for j, weight in enumerate(word):
            if not isinstance(weight, int) or not lo <= weight <= hi:
                raise ValueError(f"word {k} lane {j}: {weight!r} is not in [{lo}, {hi}]")
            value |= (weight & mask) << (j * weight_bits)
        image += value.to_bytes(stride, "little")
    return bytes(image)


def unpack_words(image: bytes, lanes: int, weight_bits: int, data_bytes: int) -> list[list[int]]:
    """Inverse of :func:`pack_words`: the words of an image (a whole number of strides)."""
    _, stride = word_geometry(lanes, weight_bits, data_bytes)
    if len(image) % stride:
        raise ValueError(
            f"image of {len(image)} bytes is not a whole number of {stride}-byte words"
        )
    mask, sign = (1 << weight_bits) - 1, 1 << (weight_bits - 1)
    words = []
    for k in range(0, len(image), stride):
        value = int.from_bytes(image[k : k + stride], "little")
        word = [(value >> (j * weight_bits)) & mask for j in range(lanes)]
        words.append([(w ^ sign) - sign for w in word])
    return words


class AxiWeightReader(wiring.Component):
    """Reader of weight rows (runs of ``lanes``-wide words) through an AXI4 read master.

    Ports
    -----
    requests : In(stream.Signature(StructLayout({"addr": unsigned(addr_width),
            "words": range(max_row_words + 1)})))
        Read ``words`` consecutive words from byte address ``addr`` (a multiple of
        ``data_bytes``: its low bits are taken as 0; normally ``base + row * stride``).
        ``words == 0`` is accepted and reads nothing. ``ready`` is high when the
        previous request has been split into bursts (from the cycle its last burst is
        issued), so back-to-back requests issue back-to-back bursts.
    words : Out(stream.Signature(ArrayLayout(signed(weight_bits), lanes)))
        The words of the requests in request order, each once, from a FIFO of
        ``depth_words`` words; the payload holds still while ``valid`` and not taken.
    level : Out(range(depth_words + 1))
        Words ``words`` will offer on consecutive cycles from this one if they are
        taken every cycle, so never more than that: the FIFO's count while ``valid``,
        0 otherwise (in the one cycle after a word is written into an empty FIFO, before
        it reaches the output register, the count is 1 and ``level`` still 0).
    axi : Out(:class:`rtl.axi.AxiReadSignature` (addr_width, data_bytes))
        AXI4 read master (AR and R channels); Verilog ports ``axi__araddr``, ...
        (cocotbext-axi: ``AxiReadBus.from_prefix(dut, "axi_")``). ``arid`` 0, ``arsize``
        log2(data_bytes), ``arburst`` INCR, ``arcache`` normal non-cacheable
        bufferable, ``arprot`` / ``arlock`` / ``arqos`` 0; ``rready`` always high.
    busy : Out(1)
        An accepted request is not finished: a burst of it is to be issued, a beat
        still to return, or a word still to be taken.
    idle : Out(1)
        ``~busy``: every accepted request's words have been taken (a step is drained).
    error : Out(1)
        Sticky: a beat came back with SLVERR or DECERR since reset.
    """

    def __init__(
        self,
        lanes: int,
        weight_bits: int,
        data_bytes: int,
        *,
        addr_width: int = 32,
        depth_words: int,
        max_row_words: int,
    ) -> None:
        self._lanes = check_int("lanes", lanes, 1)
        self._weight_bits = check_int("weight_bits", weight_bits, 1)
        self._beats, self._stride = word_geometry(lanes, weight_bits, data_bytes)
        self._data_bytes = data_bytes
        # the 4 KB split reads the address's low 12 bits
        self._addr_width = check_int("addr_width", addr_width, 12, 64)
        self._max_row_words = check_int("max_row_words", max_row_words, 1)
        # the consumer waits for a whole row in the FIFO, so one must fit; two words at
        # least because the FIFO is an output register plus a memory of depth_words - 1
        self._depth_words = check_int("depth_words", depth_words, max(2, max_row_words))
        request = data.StructLayout(
            {"addr": data.unsigned(addr_width), "words": range(max_row_words + 1)}
        )
        super().__init__(
            {
                "requests": In(stream.Signature(request)),
                "words": Out(stream.Signature(data.ArrayLayout(data.signed(weight_bits), lanes))),
                "level": Out(range(depth_words + 1)),
                "axi": Out(AxiReadSignature(addr_width, data_bytes)),
                "busy": Out(1),
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
    def addr_width(self) -> int:
        return self._addr_width

    @property
    def depth_words(self) -> int:
        return self._depth_words

    @property
    def max_row_words(self) -> int:
        return self._max_row_words

    @property
    def beats_per_word(self) -> int:
        """Data beats a word occupies: ceil(lanes * weight_bits / (8 * data_bytes))."""
        return self._beats

    @property
    def stride(self) -> int:
        """Bytes from one word to the next in external memory: beats per word x data_bytes."""
        return self._stride

    @property
    def credit_beats(self) -> int:
        """Beats the FIFO holds: the most that may be requested and not yet taken."""
        return self._depth_words * self._beats

    @property
    def burst_threshold(self) -> int:
        """Free beats that let a burst shorter than the next piece go out."""
        return max(1, min(AXI_MAX_BEATS, self.credit_beats // 4))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        axi, req, out = self.axi, self.requests, self.words
        size = self._data_bytes.bit_length() - 1  # log2(data_bytes)
        beats, credits = self._beats, self.credit_beats
        beat_bits = 8 * self._data_bytes

        # --- AR: requests split into bursts, issued against the credits ------------
        active = Signal()  # a request is being split
        cur_addr = Signal(self._addr_width)  # its next burst's address
        cur_left = Signal(range(self._max_row_words * beats + 1))  # its beats not yet issued
        free = Signal(range(credits + 1), init=credits)  # beats of FIFO not yet spoken for
        ar_addr = Signal(self._addr_width)
        ar_len = Signal(8)
        ar_valid = Signal()
        m.d.comb += [
            axi.araddr.eq(ar_addr),
            axi.arlen.eq(ar_len),
            axi.arvalid.eq(ar_valid),
            axi.arsize.eq(size),
            axi.arburst.eq(ARBURST_INCR),
            axi.arid.eq(0),
            axi.arprot.eq(ARPROT_DATA),
            axi.arcache.eq(ARCACHE_NORMAL),
            axi.arlock.eq(0),
            axi.arqos.eq(0),
        ]

        # beats from cur_addr to the next 4 KB boundary (cur_addr is beat-aligned)
        to_4k = Signal(range(AXI_4K // self._data_bytes + 1))
        m.d.comb += to_4k.eq((AXI_4K >> size) - cur_addr[size:12])
        piece = Signal(range(AXI_MAX_BEATS + 1))  # the next burst if the credits allow
        near = Mux(cur_left < to_4k, cur_left, to_4k)
        m.d.comb += piece.eq(Mux(near < AXI_MAX_BEATS, near, AXI_MAX_BEATS))
        whole = free >= piece
        burst = Signal.like(piece)
        m.d.comb += burst.eq(Mux(whole, piece, free))
        issue = Signal()
        m.d.comb += issue.eq(
            active & (~ar_valid | axi.arready) & (whole | (free >= self.burst_threshold))
        )
        last = burst == cur_left  # this burst ends the request
        m.d.comb += req.ready.eq(~active | (issue & last))

        with m.If(issue):
            m.d.sync += [
                ar_valid.eq(1),
                ar_addr.eq(cur_addr),
                ar_len.eq(burst - 1),
                cur_addr.eq(cur_addr + (burst << size)),
                cur_left.eq(cur_left - burst),
                active.eq(~last),
            ]
        with m.Elif(axi.arready):
            m.d.sync += ar_valid.eq(0)
        with m.If(req.valid & req.ready):
            addr = req.payload.addr
            m.d.sync += [
                cur_addr.eq(Cat(Const(0, size), addr[size:])),
                cur_left.eq(req.payload.words * beats),
                active.eq(req.payload.words != 0),
            ]

        # --- R: beats into words, words into the FIFO ----------------------------------
        m.d.comb += axi.rready.eq(1)  # the credits guarantee room for every beat
        beat = axi.rvalid  # & rready
        with m.If(beat & axi.rresp[1]):
            m.d.sync += self.error.eq(1)
        word_bits = self._lanes * self._weight_bits
        if beats == 1:
            word_done: Value = beat
            word: Value = axi.rdata[:word_bits]
        else:
            phase = Signal(range(beats))  # beats of the current word received
            parts = Signal((beats - 1) * beat_bits, reset_less=True)  # them, newest on top
            at_end = phase == beats - 1
            word_done = beat & at_end
            word = Cat(parts, axi.rdata)[:word_bits]
            with m.If(beat):
                m.d.sync += [
                    parts.eq(Cat(parts[beat_bits:], axi.rdata)),
                    phase.eq(Mux(at_end, 0, phase + 1)),
                ]

        # FIFO: memory of depth_words - 1 words + the read port's data register as output
        # stage, whose data holds still while the word is on offer. A write to a full
        # memory in a cycle that reads it is allowed (the port reads the old word first),
        # which the credits can make happen; a write to a full FIFO they exclude.
        inner = self._depth_words - 1
        storage = Memory(shape=word_bits, depth=max(inner, 2), init=[])
        m.submodules.storage = storage
        wport = storage.write_port()
        rport = storage.read_port(domain="sync")
        produce = Signal(index_shape(inner))
        consume = Signal(index_shape(inner))
        inner_level = Signal(range(inner + 1))
        out_valid = Signal()
        do_read = (inner_level != 0) & (~out_valid | out.ready)
        m.d.comb += [
            wport.addr.eq(produce),
            wport.data.eq(word),
            wport.en.eq(word_done),
            rport.addr.eq(consume),
            rport.en.eq(do_read),
            out.payload.eq(rport.data),
            out.valid.eq(out_valid),
            self.level.eq(Mux(out_valid, inner_level + 1, 0)),
        ]
        with m.If(word_done):
            m.d.sync += produce.eq(Mux(produce == inner - 1, 0, produce + 1))
        with m.If(do_read):
            m.d.sync += [consume.eq(Mux(consume == inner - 1, 0, consume + 1)), out_valid.eq(1)]
        with m.Elif(out.ready):
            m.d.sync += out_valid.eq(0)
        m.d.sync += inner_level.eq(inner_level + word_done - do_read)

        taken = out_valid & out.ready
        m.d.sync += free.eq(free - Mux(issue, burst, 0) + Mux(taken, beats, 0))
        m.d.comb += [
            self.idle.eq(~active & (free == credits)),
            self.busy.eq(~self.idle),
        ]
        return m
