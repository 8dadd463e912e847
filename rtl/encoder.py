"""Rate-coding input encoder: 8-bit pixels to spikes (docs/fixed-point.md, section 2).

Per pixel an accumulator ``a``: each step ``a <- a + x``, fire when ``a >= 255``,
then ``a <- a - 255``. The pixels and accumulators live in two memories whose
word holds ``lanes`` pixels, so one step costs ``ceil(n / lanes)`` cycles and the
spikes come out as ``lanes``-bit words: the same granularity as the neuron
cores' output, so every spike vector of the accelerator has one word format.
Mirrors :class:`golden.encoder.Encoder`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.fixed import PIXEL_FULL
from rtl import check_int, index_shape

__all__ = ["PIXEL_BITS", "Encoder"]

#: Width of a pixel (uint8).
PIXEL_BITS = 8
#: Width of an accumulator: a + x <= 254 + 255 = 509 fits 9 bits.
ACC_BITS = (2 * PIXEL_FULL).bit_length()


class Encoder(wiring.Component):
    """Encoder of ``n`` pixels served ``lanes`` at a time.

    Ports
    -----
    pix_word, pix_lane : In
        Where the pixel on ``pix_data`` goes: pixel ``pix_word * lanes + pix_lane``.
        Word and lane (not a flat index) so that no divider is needed for a lane
        count that is not a power of two; the host side counts them up.
    pix_data : In(8)
        Pixel value, written when ``pix_we`` is high. Write only while not
        ``busy`` (the accelerator's pixel stream guarantees it).
    pix_we : In(1)
    keep : In(n)
        Input dropout mask (all ones in inference): a dropped pixel never fires
        but still accumulates. Sampled two cycles before each word is output.
    start : In(1)
        Strobe: compute one time step. Ignored while ``busy``.
    first : In(1)
        Sampled with ``start``: first step of a sample, the accumulators count
        as 0 (no separate clearing pass).
    busy : Out(1)
        High from the cycle after ``start`` until the last word is out.
    spk_valid : Out(1)
        One spike word this cycle (no back-pressure: the consumer must take it).
    spk_word : Out(index_shape(words))
        Index of the word: spikes of pixels ``spk_word * lanes + j``.
    spk_bits : Out(lanes)
        Spike of each lane; padding lanes beyond ``n`` never fire.
    """

    #: Cycles from reading a word to its spikes: register the memories, add, fire and
    #: subtract, register.
    STAGES = 4

    def __init__(self, n: int, lanes: int) -> None:
        self._n = check_int("n", n, 1)
        self._lanes = check_int("lanes", lanes, 1)
        self._words = -(-n // lanes)
        super().__init__(
            {
                "pix_word": In(index_shape(self._words)),
                "pix_lane": In(index_shape(lanes)),
                "pix_data": In(PIXEL_BITS),
                "pix_we": In(1),
                "keep": In(n, init=(1 << n) - 1),
                "start": In(1),
                "first": In(1),
                "busy": Out(1),
                "spk_valid": Out(1),
                "spk_word": Out(index_shape(self._words)),
                "spk_bits": Out(lanes),
            }
        )

    @property
    def n(self) -> int:
        return self._n

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def words(self) -> int:
        """Cycles per time step (one memory word per cycle)."""
        return self._words

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p = self._lanes
        m.submodules.pixels = pix = Memory(
            shape=data.ArrayLayout(unsigned(PIXEL_BITS), p), depth=max(self._words, 2), init=[]
        )
        m.submodules.accs = acc = Memory(
            shape=data.ArrayLayout(unsigned(ACC_BITS), p), depth=max(self._words, 2), init=[]
        )
        pix_w = pix.write_port(granularity=1)
        pix_r = pix.read_port()
        acc_w = acc.write_port()
        # not transparent: a step starts only when the last one's write-backs are done
        # (``busy``), and a plain synchronous read lets the register after it stay in the fabric
        acc_r = acc.read_port()

        m.d.comb += [pix_w.addr.eq(self.pix_word), pix_w.en.eq(self.pix_we << self.pix_lane)]
        m.d.comb += [pix_w.data[j].eq(self.pix_data) for j in range(p)]

        # stage 0: walk the words; stage 1: register the memory outputs; stage 2: compute
        running = Signal()
        word = Signal(index_shape(self._words))
        first = Signal()
        s1_valid, s2_valid, s3_valid = Signal(), Signal(), Signal()
        s1_word, s2_word, s3_word = (
            Signal(index_shape(self._words), name=f"s{k}_word") for k in (1, 2, 3)
        )
        m.d.comb += [
            pix_r.addr.eq(word),
            acc_r.addr.eq(word),
            self.busy.eq(running | s1_valid | s2_valid | s3_valid | self.spk_valid),
        ]
        m.d.sync += [s1_valid.eq(running), s1_word.eq(word), s2_valid.eq(s1_valid)]
        m.d.sync += s2_word.eq(s1_word)
        with m.If(running):
            m.d.sync += word.eq(word + 1)
            with m.If(word == self._words - 1):
                m.d.sync += [running.eq(0), word.eq(0)]
        with m.Elif(self.start & ~self.busy):
            m.d.sync += [running.eq(1), word.eq(0), first.eq(self.first)]

        pix2 = Signal.like(pix_r.data, name="s2_pix")
        acc2 = Signal.like(acc_r.data, name="s2_acc")
        keep2 = Signal(p, name="s2_keep")
        keep = Cat(self.keep, Const(0, self._words * p - self._n)).word_select(s1_word, p)
        m.d.sync += [pix2.eq(pix_r.data), acc2.eq(acc_r.data), keep2.eq(keep)]

        # stage 2: a <- a + x (registered); stage 3: fire at 255, subtract and write back;
        # the spikes leave through registers (each spike bit fans out to the spike vectors
        # and T slots of the train memory)
        a3 = Signal(data.ArrayLayout(unsigned(ACC_BITS), p), name="s3_a")
        keep3 = Signal(p, name="s3_keep")
        m.d.sync += [a3[j].eq(Mux(first, 0, acc2[j]) + pix2[j]) for j in range(p)]
        m.d.sync += keep3.eq(keep2)
        m.d.sync += [s3_valid.eq(s2_valid), s3_word.eq(s2_word)]
        fires = []
        for j in range(p):
            fire = a3[j] >= PIXEL_FULL
            m.d.comb += acc_w.data[j].eq(a3[j] - Mux(fire, PIXEL_FULL, 0))
            fires.append(fire & keep3[j])
        m.d.comb += [acc_w.addr.eq(s3_word), acc_w.en.eq(s3_valid)]
        m.d.sync += [
            self.spk_valid.eq(s3_valid),
            self.spk_word.eq(s3_word),
            self.spk_bits.eq(Cat(*fires)),
        ]
        return m
