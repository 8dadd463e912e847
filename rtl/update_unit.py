"""Update unit: ternary desire-gated STDP on one weight word per cycle (docs/fixed-point.md, 6).

Mirrors :mod:`golden.update_unit`. The accelerator stores spike *trains*
(``T`` bits per neuron), not traces, and this unit re-derives the traces:

* ``row_load`` (once per input row ``i``): takes the row's input train, as
  the layer saw it, and the rounding-stream draw ``A_i`` (the Weyl base of
  lane 0), and registers the train. The trace sequence ``r_i[0..T-1]``
  (decay-by-shift, add, clamp on ``trace_bits`` bits) is then built
  :attr:`TRACE_STEPS_PER_CYCLE` steps per cycle: words may follow after
  :attr:`UpdateUnit.load_cycles` cycles. (A row that never spiked has all
  accumulators 0 and changes nothing: the accelerator skips it.)
* ``word_valid`` (once per block ``b`` of the row, in order): for each lane
  ``j`` (output ``o = b*P + j``), ``acc = sum_t post_o[t] * r_i[t]`` (a
  ``T``-input masked adder tree), ``mag = (lr_int * acc + rnd) >> lr_shift``
  (shift and add: one ``lr_int << b`` per set bit of ``acc``, in a registered
  adder tree; no multiplier block), ``w_new = sat(w_old + gate_o * mag)``. The Weyl base then
  advances by ``P * 0x9E3779B9``, and lane ``j`` adds the constant
  ``j * 0x9E3779B9``: the offsets of a whole row come from adders, never from
  a second generator. The result comes :attr:`UpdateUnit.latency` cycles later
  with ``out_valid``, in order, one carry chain per cycle on the way. The
  inputs must come from registers (the accelerator registers every memory
  output once, next to the memory).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from desire.config import ROUNDINGS, Config
from golden.fixed import WEYL_STEP, constants
from rtl import check_int
from rtl.desire_unit import q_shape
from rtl.pipeline import adder_tree, clamp, delay, tree_stages
from rtl.prng import MASK32

__all__ = ["UpdateUnit"]


class UpdateUnit(wiring.Component):
    """STDP update datapath for ``lanes`` weights of one input row per cycle.

    Ports
    -----
    row_load : In(1)
        Strobe: latch ``row_train`` and the Weyl base ``row_rand``; the traces
        are ready :attr:`load_cycles` cycles later.
        It may come as early as one cycle before the previous row's last
        ``word_valid`` (the traces are read in the ``word_valid`` cycle, and the
        Weyl base waits for the row's first word).
    row_train : In(T)
        Input spike train of the row, bit ``t`` = step ``t`` as the layer saw it.
    row_rand : In(32)
        Rounding-stream draw ``A_i`` of the row (stochastic rounding only).
    word_valid : In(1)
        ``post``, ``gate`` and ``w_old`` of the next block of the row are on the
        inputs (at least :attr:`load_cycles` cycles after ``row_load``).
    word_first : In(1)
        With ``word_valid``: the row's first word (block 0), which starts from
        the row's Weyl base.
    post : In(ArrayLayout(unsigned(T), lanes))
        Output spike trains of the block's neurons.
    gate : In(ArrayLayout(signed(2), lanes))
        Ternary desire ``sign * active * keep`` of the block's neurons.
    w_old : In(ArrayLayout(signed(weight_bits), lanes))
    lr_int : In(32)
        Learning-rate register; it must hold still ``lanes`` cycles before a word
        (every lane uses its own copy, passed down a chain of registers).
    out_valid : Out(1)
        ``w_new`` holds the updated word of the ``word_valid`` of
        :attr:`latency` cycles before.
    w_new : Out(ArrayLayout(signed(weight_bits), lanes))
    """

    #: Trace steps computed per cycle after ``row_load`` (each: subtract, add).
    TRACE_STEPS_PER_CYCLE = 2
    #: Levels of the STDP adder tree per cycle (its inputs are multiplexed by layer).
    TREE_LEVELS_PER_CYCLE = 1
    #: Levels of the (wider, 45-bit) shift-and-add product tree per cycle.
    PRODUCT_LEVELS_PER_CYCLE = 1

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
                "word_first": In(1),
                "post": In(data.ArrayLayout(unsigned(tsteps), lanes)),
                "gate": In(data.ArrayLayout(q_shape(), lanes)),
                "w_old": In(data.ArrayLayout(signed(weight_bits), lanes)),
                "lr_int": In(32),
                "out_valid": Out(1),
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

    @property
    def load_cycles(self) -> int:
        """Cycles from ``row_load`` to the first ``word_valid`` of the row: the train
        register, then the trace steps."""
        return 1 + -(-self._tsteps // self.TRACE_STEPS_PER_CYCLE)

    def tightest_schedule(
        self, n_rows: int, blocks: int
    ) -> tuple[dict[int, int], dict[int, tuple[int, int]]]:
        """Cycles of every ``row_load`` (-> row) and ``word_valid`` (-> (row, block)) on
        the tightest schedule the ports allow, the one the accelerator's sequencer runs:
        a row's words back to back :attr:`load_cycles` after its load, and the next
        row's load one cycle before this row's last word. Testbenches drive it."""
        period = self.load_cycles + blocks - 2
        loads = {i * period: i for i in range(n_rows)}
        words = {
            i * period + self.load_cycles + b: (i, b) for i in range(n_rows) for b in range(blocks)
        }
        return loads, words

    @property
    def latency(self) -> int:
        """Cycles from ``word_valid`` to ``out_valid``: the tree, the product, the sums
        ``w_old +- mag``, the gated and saturated pick (registered, so the write-back
        starts at a register)."""
        tree = tree_stages(self._tsteps, self.TREE_LEVELS_PER_CYCLE)
        return tree + self.multiply_cycles + 2

    @property
    def multiply_cycles(self) -> int:
        """Cycles of ``(lr_int * acc + rnd) >> lr_shift``: the shift-and-add tree, + rnd."""
        return tree_stages(self.acc_bits, self.PRODUCT_LEVELS_PER_CYCLE) + 1

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p = self._lanes
        traces = self._traces(m)
        # the row's Weyl base waits in ``row_base`` for the row's first word, so that a
        # row may be loaded while the last words of the one before are still coming in;
        # it lands there one cycle after ``row_load``, like the first traces, so that a
        # row of one word, loaded one cycle before that word, keeps its own base
        row_base, weyl = Signal(32), Signal(32)
        base = Mux(self.word_first, row_base, weyl)  # this word's base
        with m.If(self.word_valid):
            m.d.sync += weyl.eq((base + (p * WEYL_STEP & MASK32))[:32])
        base_load = delay(m, self.row_load, 1, "base_load")
        row_rand = delay(m, self.row_rand, 1, "row_rand")
        with m.If(base_load):
            m.d.sync += row_base.eq(row_rand)

        # lr_int, copied lane to lane down a chain: each copy feeds one lane's acc_bits
        # terms instead of one register feeding them all (and a chain, unlike parallel
        # copies, cannot be merged back into one register by synthesis)
        lr_copies = []
        prev = self.lr_int
        for j in range(p):
            copy = Signal(32, name=f"lr_int{j}")
            m.d.sync += copy.eq(prev)
            lr_copies.append(prev := copy)

        # from the word_valid cycle: the tree of T masked traces, then the product
        post = self.post
        tree = tree_stages(self._tsteps, self.TREE_LEVELS_PER_CYCLE)
        weyl_m1 = delay(m, base, tree, "weyl")  # the word's Weyl base, at the multiply
        gate = delay(m, self.gate, self.latency - 2, "gate")
        w_old = delay(m, self.w_old, self.latency - 2, "w_old")
        m.d.comb += self.out_valid.eq(delay(m, self.word_valid, self.latency, "valid"))
        for j in range(p):
            terms = [Mux(post[j][t], traces[t], 0) for t in range(self._tsteps)]
            acc = adder_tree(m, terms, self.TREE_LEVELS_PER_CYCLE, f"acc{j}")
            mag = self._multiply(m, j, acc, weyl_m1, lr_copies[j])
            # both sums side by side, registered with the gate and w_old; then the pick
            up, down = (
                Signal.like(w_old[j] + mag, name=f"up{j}"),
                Signal.like(w_old[j] - mag, name=f"down{j}"),
            )
            m.d.sync += [up.eq(w_old[j] + mag), down.eq(w_old[j] - mag)]
            g, w = delay(m, gate[j], 1, f"gate{j}"), delay(m, w_old[j], 1, f"w_old{j}")
            new = Mux(g == 0, w, Mux(g < 0, down, up))
            m.d.sync += self.w_new[j].eq(clamp(new, self._weight_bits))
        return m

    def _traces(self, m: Module) -> data.View:
        """Trace register r[0..T-1] of the latched row, built ``TRACE_STEPS_PER_CYCLE``
        steps per cycle: r <- min(r - (r >> k) + one * s, r_max).

        The train register only changes at the next ``row_load``, which comes
        after :attr:`load_cycles` cycles for any row with a spike.
        """
        tb, k, steps = self._trace_bits, self._decay_shift, self.TRACE_STEPS_PER_CYCLE
        r_max, one = (1 << tb) - 1, 1 << self._trace_frac
        can_clamp = r_max - (r_max >> k) + one > r_max
        train = Signal(self._tsteps)
        with m.If(self.row_load):
            m.d.sync += train.eq(self.row_train)
        traces = Signal(data.ArrayLayout(unsigned(tb), self._tsteps))
        r, strobe = Const(0, tb), self.row_load
        for stage in range(self.load_cycles - 1):
            strobe = delay(m, strobe, 1, f"trace_stage{stage}")  # row_load, stage + 1 late
            for t in range(stage * steps, min(self._tsteps, (stage + 1) * steps)):
                nxt = r - (r >> k) + Mux(train[t], one, 0)
                step = Signal(unsigned(tb), name=f"trace{t}")
                m.d.comb += step.eq(Mux(nxt > r_max, r_max, nxt) if can_clamp else nxt)
                with m.If(strobe):
                    m.d.sync += traces[t].eq(step)
                r = step
            if stage + 2 < self.load_cycles:
                carry = Signal(unsigned(tb), name=f"trace_carry{stage + 1}")
                with m.If(strobe):
                    m.d.sync += carry.eq(r)
                r = carry
        return traces

    def _multiply(self, m: Module, j: int, acc: Signal, weyl: Signal, lr: Signal) -> Signal:
        """``(lr_int * acc + rnd) >> lr_shift`` of lane ``j`` in :attr:`multiply_cycles`
        registered cycles, shift and add: ``lr << b`` (``lr``: the lane's copy of
        ``lr_int``) for every set bit ``b`` of ``acc`` in a registered adder tree, then
        ``+ rnd`` and the shift."""
        shift = self._lr_shift
        if self._rounding == "stochastic":
            rnd = (weyl + (j * WEYL_STEP & MASK32))[:32] >> (32 - shift)
        elif self._rounding == "nearest":
            rnd = 1 << (shift - 1)
        else:
            rnd = 0
        terms = [Mux(acc[b], lr << b, 0) for b in range(self.acc_bits)]
        prod = adder_tree(m, terms, self.PRODUCT_LEVELS_PER_CYCLE, f"prod{j}")
        tree = tree_stages(self.acc_bits, self.PRODUCT_LEVELS_PER_CYCLE)
        rnd_reg = delay(m, Const(0, shift) + rnd, tree, f"rnd{j}")
        mag = Signal(unsigned(32 + self.acc_bits + 1 - shift), name=f"mag{j}")
        m.d.sync += mag.eq((prod + rnd_reg) >> shift)
        return mag
