"""Update unit: ternary desire-gated STDP on one weight word per cycle (docs/fixed-point.md, 6).

Mirrors :mod:`golden.update_unit`. The accelerator stores spike *trains*
(``T`` bits per neuron), not traces, and this unit re-derives the traces:

* ``row_load`` (once per input row ``i``): the row's input train, as the layer
  saw it, becomes the trace sequence ``r_i[0..T-1]`` (``T`` chained stages of
  decay-by-shift, add and clamp on ``trace_bits`` bits, registered) and the
  rounding-stream draw ``A_i`` is latched as the Weyl base of lane 0.
* ``word_valid`` (once per block ``b`` of the row, in order): for each lane
  ``j`` (output ``o = b*P + j``), ``acc = sum_t post_o[t] * r_i[t]`` (a
  ``T``-input masked adder tree), ``mag = (lr_int * acc + rnd) >> lr_shift``
  (one ``32 x bits(acc)`` multiplier per lane: the unit's only multipliers),
  ``w_new = sat(w_old + gate_o * mag)``. The Weyl base then advances by
  ``P * 0x9E3779B9``, and lane ``j`` adds the constant ``j * 0x9E3779B9``: the
  offsets of a whole row come from adders, never from a second generator.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from desire.config import ROUNDINGS, Config
from golden.fixed import WEYL_STEP, constants, signed_range
from rtl import check_int
from rtl.desire_unit import q_shape
from rtl.prng import MASK32

__all__ = ["UpdateUnit"]


class UpdateUnit(wiring.Component):
    """STDP update datapath for ``lanes`` weights of one input row per cycle.

    Ports
    -----
    row_load : In(1)
        Strobe: latch the traces of ``row_train`` and the Weyl base ``row_rand``.
    row_train : In(T)
        Input spikes of the row, bit ``t`` = step ``t`` as the layer saw it.
    row_rand : In(32)
        Rounding-stream draw ``A_i`` of the row (stochastic rounding only).
    word_valid : In(1)
        ``w_new`` is being written back this cycle: advance to the next block.
    post : In(ArrayLayout(unsigned(T), lanes))
        Output spike trains of the block's neurons.
    gate : In(ArrayLayout(signed(2), lanes))
        Ternary desire ``sign * active * keep`` of the block's neurons.
    w_old : In(ArrayLayout(signed(weight_bits), lanes))
    lr_int : In(32)
        Learning-rate register.
    w_new : Out(ArrayLayout(signed(weight_bits), lanes))
        Updated weights (combinational).
    """

    def __init__(
        self,
        lanes: int,
        *,
        tsteps: int,
        weight_bits: int,
        trace_bits: int,
        trace_frac: int,
        decay_shift: int,
        lr_shift: int,
        rounding: str,
    ) -> None:
        self._lanes = check_int("lanes", lanes, 1)
        self._tsteps = check_int("tsteps", tsteps, 1)
        self._weight_bits = check_int("weight_bits", weight_bits, 2)
        self._trace_bits = check_int("trace_bits", trace_bits, 2)
        self._trace_frac = check_int("trace_frac", trace_frac, 0, trace_bits - 1)
        self._decay_shift = check_int("decay_shift", decay_shift, 1)
        self._lr_shift = check_int("lr_shift", lr_shift, 1, 32)
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, not {rounding!r}")
        self._rounding = rounding
        super().__init__(
            {
                "row_load": In(1),
                "row_train": In(tsteps),
                "row_rand": In(32),
                "word_valid": In(1),
                "post": In(data.ArrayLayout(unsigned(tsteps), lanes)),
                "gate": In(data.ArrayLayout(q_shape(), lanes)),
                "w_old": In(data.ArrayLayout(signed(weight_bits), lanes)),
                "lr_int": In(32),
                "w_new": Out(data.ArrayLayout(signed(weight_bits), lanes)),
            }
        )

    @classmethod
    def for_config(cls, cfg: Config) -> UpdateUnit:
        c = constants(cfg)
        return cls(
            cfg.hardware.lanes,
            tsteps=c.tsteps,
            weight_bits=c.weight_bits,
            trace_bits=c.trace_bits,
            trace_frac=c.trace_frac,
            decay_shift=c.decay_shift,
            lr_shift=c.lr_shift,
            rounding=c.rounding,
        )

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def acc_bits(self) -> int:
        """Width of the STDP accumulator: T traces of at most 2^trace_bits - 1, exact."""
        return (self._tsteps * ((1 << self._trace_bits) - 1)).bit_length()

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p, tb, k = self._lanes, self._trace_bits, self._decay_shift
        r_max = (1 << tb) - 1
        traces = Signal(data.ArrayLayout(unsigned(tb), self._tsteps))
        weyl = Signal(32)

        # the trace sequence of the row: r <- min(r - (r >> k) + one * s, r_max)
        one = 1 << self._trace_frac  # < r_max: the first step cannot clamp
        chain = [Signal(unsigned(tb), name="trace0")]
        m.d.comb += chain[0].eq(Mux(self.row_train[0], one, 0))
        for t in range(1, self._tsteps):
            prev = chain[-1]
            nxt = prev - (prev >> k) + Mux(self.row_train[t], one, 0)
            r = Signal(unsigned(tb), name=f"trace{t}")
            m.d.comb += r.eq(Mux(nxt > r_max, r_max, nxt))
            chain.append(r)
        with m.If(self.row_load):
            m.d.sync += [traces[t].eq(v) for t, v in enumerate(chain)]
            m.d.sync += weyl.eq(self.row_rand)
        with m.Elif(self.word_valid):
            m.d.sync += weyl.eq((weyl + (p * WEYL_STEP & MASK32))[:32])

        lo, hi = signed_range(self._weight_bits)
        shift = self._lr_shift
        for j in range(p):
            acc = 0
            for t in range(self._tsteps):
                acc = acc + Mux(self.post[j][t], traces[t], 0)
            if self._rounding == "stochastic":
                rnd = (weyl + (j * WEYL_STEP & MASK32))[:32] >> (32 - shift)
            elif self._rounding == "nearest":
                rnd = 1 << (shift - 1)
            else:
                rnd = 0
            mag = Signal(unsigned(32 + self.acc_bits + 1 - shift), name=f"mag{j}")
            m.d.comb += mag.eq((self.lr_int * acc + rnd) >> shift)
            gate = self.gate[j]
            delta = Mux(gate > 0, mag, Mux(gate < 0, -mag, 0))
            new = self.w_old[j] + delta
            m.d.comb += self.w_new[j].eq(Mux(new > hi, hi, Mux(new < lo, lo, new)))
        return m
