"""The comparisons of a PRNG draw with a threshold: dropout keep bits and update rounding.

Both are proved against golden's rules written out in the harness, for every draw:

* dropout (:class:`rtl.dropout.DropoutMasks`, golden: :func:`golden.prng.dropout_mask`):
  a neuron is kept iff the top ``prob_bits`` of its draw are ``>= drop_p``. The
  block's xorshift32 stream is replaced by a stand-in whose draw is a free input, so the
  comparison is checked for all 2^32 draws, not only those the seed reaches next;
* rounding (:class:`rtl.update_unit.UpdateUnit`, golden:
  :func:`golden.update_unit.weight_update` with :func:`golden.prng.weyl_rounding`):
  ``mag = (lr_int * acc + rnd) >> lr_shift`` rounds up iff the dropped fraction plus
  ``rnd`` reaches ``2^lr_shift``; the harness checks every updated weight against the
  whole rule (traces, STDP sum, rounding, gate, saturation) for free row draws, trains,
  gates, weights and ``lr_int``.

Covers show the boundary (draw equal to the threshold, fraction plus offset equal to
``2^lr_shift``) and the value one below it are reached.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.asserts import AnyConst
from amaranth.hdl import Assume, Cat, Const, Cover, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from golden.fixed import WEYL_STEP
from rtl.dropout import DropoutMasks
from rtl.prng import MASK32
from rtl.update_unit import UpdateUnit
from tests.formal.props import Checks, delayed, no_reset, past

__all__ = ["DropoutHarness", "RoundingHarness"]


class _FreeDraws(wiring.Component):
    """Stand-in for :class:`rtl.prng.XorShift32`: the draw is ``source``, any value."""

    def __init__(self, source: Signal) -> None:
        self._source = source
        super().__init__({"draw": In(1), "value": Out(32), "state": Out(32)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.d.comb += [self.value.eq(self._source), self.state.eq(self._source)]
        return m


class DropoutHarness(wiring.Component):
    """Checks ``DropoutMasks`` of one-neuron layers with thresholds ``drop_p`` on
    ``prob_bits`` bits (one draw per layer per sample, in layer order).

    Property ``keep bit is golden's rule``: after draw ``j`` of a sample, with ``enable``,
    ``keep<j>`` is ``(draw >> (32 - prob_bits)) >= drop_p[j]``, for every 32-bit draw.
    Covers per layer: a draw whose top bits equal ``drop_p`` (kept) and one below it
    (dropped).
    """

    def __init__(
        self,
        drop_p: Sequence[int],
        prob_bits: int,
        *,
        block: type[DropoutMasks] = DropoutMasks,
        only: str | None = None,
    ) -> None:
        self._drop_p, self._prob_bits = tuple(drop_p), prob_bits
        self._dut = block([1] * len(drop_p), drop_p, prob_bits=prob_bits, seed=1)
        self._only = only
        super().__init__({"enable": In(1), "draw": In(1), "value": In(32)})
        # the block's stream, replaced before it is elaborated
        self._dut._rng = _FreeDraws(self.value)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.dut = dut = self._dut
        checks = Checks(m, self._only)
        no_reset(m)
        m.d.comb += [dut.enable.eq(self.enable), dut.draw.eq(self.draw)]
        layers = len(self._drop_p)
        index = Signal(range(layers))  # the draw's layer, counted here
        with m.If(self.draw):
            m.d.sync += index.eq(Mux(index == layers - 1, 0, index + 1))
        drew = past(m, self.draw, "draw") & self.enable
        drew_index = past(m, index, "index")
        top = past(m, self.value, "value")[32 - self._prob_bits :]
        for j, p in enumerate(self._drop_p):
            mine = drew & (drew_index == j)
            checks.check("keep bit is golden's rule", ~mine | (dut.keep(j) == (top >= p)))
            m.d.comb += Cover(mine & (top == p) & dut.keep(j))
            m.d.comb += Cover(mine & (top == p - 1) & ~dut.keep(j))
        checks.close()
        return m


class RoundingHarness(wiring.Component):
    """Checks an ``UpdateUnit`` (``lanes``, ``tsteps``, ``lr_shift``, ``rounding``; small
    weights and traces) on the sequencer's tightest schedule: rows of two blocks, each
    loaded one cycle before the last word of the row before, words back to back
    (:meth:`UpdateUnit.tightest_schedule`), ``lr_int`` a free constant.

    Property ``weight is golden's update``: every ``w_new`` equals
    ``sat(w_old + gate * ((lr_int * acc + rnd) >> lr_shift))`` with golden's traces, STDP
    sum and ``rnd`` (stochastic: the top ``lr_shift`` bits of ``A + o * 0x9E3779B9``,
    ``o`` the neuron; nearest: ``2^(lr_shift-1)``; truncate: 0). Covers: a fraction plus
    offset of exactly ``2^lr_shift`` (rounds up) and of one less (does not).
    """

    #: Rows of two blocks: the second word of a row steps the Weyl base.
    BLOCKS = 2
    WEIGHT_BITS, TRACE_BITS, TRACE_FRAC, DECAY_SHIFT = 4, 3, 1, 1

    def __init__(
        self,
        lanes: int,
        tsteps: int,
        lr_shift: int,
        rounding: str,
        *,
        block: type[UpdateUnit] = UpdateUnit,
        only: str | None = None,
    ) -> None:
        self._dut = block(
            lanes,
            tsteps=tsteps,
            weight_bits=self.WEIGHT_BITS,
            trace_bits=self.TRACE_BITS,
            trace_frac=self.TRACE_FRAC,
            decay_shift=self.DECAY_SHIFT,
            lr_shift=lr_shift,
            rounding=rounding,
        )
        self._lanes, self._tsteps = lanes, tsteps
        self._lr_shift, self._rounding = lr_shift, rounding
        self._only = only
        super().__init__(
            {
                "row_train": In(tsteps),
                "row_rand": In(32),
                "post": In(data.ArrayLayout(unsigned(tsteps), lanes)),
                "gate": In(data.ArrayLayout(signed(2), lanes)),
                "w_old": In(data.ArrayLayout(signed(self.WEIGHT_BITS), lanes)),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.dut = dut = self._dut
        checks = Checks(m, self._only)
        no_reset(m)
        p, load = self._lanes, dut.load_cycles
        loads, words = dut.tightest_schedule(2, self.BLOCKS)
        period = min(k for k in loads if k > 0)
        # the schedule repeats every period cycles; words begin load cycles after the first load
        phase = Signal(range(period))
        m.d.sync += phase.eq(Mux(phase == period - 1, 0, phase + 1))
        started = Signal(range(load + 1))
        with m.If(started != load):
            m.d.sync += started.eq(started + 1)
        word_phases = {k % period: b for k, (_, b) in words.items()}
        word = (started == load) & Cat(*(phase == k for k in word_phases)).any()
        first = Cat(*(phase == k for k, b in word_phases.items() if b == 0)).any()
        lr_int = AnyConst(32)
        m.d.comb += [
            dut.row_load.eq(phase == 0),
            dut.row_train.eq(self.row_train),
            dut.row_rand.eq(self.row_rand),
            dut.word_valid.eq(word),
            dut.word_first.eq(first),
            dut.post.eq(self.post),
            dut.gate.eq(self.gate),
            dut.w_old.eq(self.w_old),
            dut.lr_int.eq(lr_int),
        ]
        m.d.comb += [Assume(self.gate[j] != -2) for j in range(p)]  # ternary: -1, 0, +1

        # this word's row was loaded load + b cycles ago, b = the word's block (0 or 1)
        block = ~first
        train = Mux(
            block,
            delayed(m, self.row_train, load + 1, "train1"),
            delayed(m, self.row_train, load, "train0"),
        )
        rand = Mux(
            block,
            delayed(m, self.row_rand, load + 1, "rand1"),
            delayed(m, self.row_rand, load, "rand0"),
        )
        traces = self._traces(train)
        expected = Signal(data.ArrayLayout(signed(self.WEIGHT_BITS), p))
        fracs = []
        for j in range(p):
            acc = sum(Mux(self.post[j][t], traces[t], 0) for t in range(self._tsteps))
            rnd = self._offset(rand, block * p + j)
            product = lr_int * acc
            mag = (product + rnd) >> self._lr_shift
            gate = self.gate[j]
            new = self.w_old[j] + Mux(gate == 0, 0, Mux(gate < 0, -mag, mag))
            m.d.comb += expected[j].eq(_saturate(new, self.WEIGHT_BITS))
            fracs.append(product[: self._lr_shift] + rnd)
        later = delayed(m, expected.as_value(), dut.latency, "expected")
        checks.check("weight is golden's update", ~dut.out_valid | (dut.w_new.as_value() == later))
        one = 1 << self._lr_shift
        m.d.comb += Cover(word & Cat(*(f == one for f in fracs)).any())
        m.d.comb += Cover(word & Cat(*(f == one - 1 for f in fracs)).any())
        checks.close()
        return m

    def _traces(self, train: Value) -> list[Value]:
        """golden.neuron_core.trace_step over the row's train: r <- min(r - (r >> k) + one
        * s, r_max), from r = 0."""
        r_max, one = (1 << self.TRACE_BITS) - 1, 1 << self.TRACE_FRAC
        r: Value = Const(0, self.TRACE_BITS)
        out = []
        for t in range(self._tsteps):
            nxt = r - (r >> self.DECAY_SHIFT) + Mux(train[t], one, 0)
            r = Mux(nxt > r_max, r_max, nxt)[: self.TRACE_BITS]
            out.append(r)
        return out

    def _offset(self, row_word: Value, neuron: Value) -> Value:
        """golden's rnd for the neuron ``neuron`` of a row whose draw is ``row_word``."""
        shift = self._lr_shift
        if self._rounding == "stochastic":
            return ((row_word + neuron * WEYL_STEP) & MASK32) >> (32 - shift)
        if self._rounding == "nearest":
            return Const(1 << (shift - 1), shift)
        return Const(0, 1)


def _saturate(value: Value, bits: int) -> Value:
    """golden.fixed.sat: clip to the signed ``bits``-bit range, by comparisons."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(value > hi, hi, Mux(value < lo, lo, value))
