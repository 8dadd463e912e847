"""Desire unit: ternary desire of every neuron, from the output down (docs/fixed-point.md, 5).

Mirrors :mod:`golden.desire_unit`. A datapath over one block of ``lanes``
neurons per cycle; the accelerator's training sequencer walks the memories.

* **Spike counts**: the unit takes the block's spike *trains* (``T`` bits per
  lane, as stored) and counts them itself (a popcount tree).
* **Output layer** (``out_req``): from the block's spike counts and a
  one-hot ``label_lane``, ``active`` and ``sign`` of every lane
  (``c < out_label_below`` for the label, ``c > out_other_above`` otherwise).
* **Error term**: ``eq = E * q`` of a block of the layer above
  from its counts and its stored ternary desire ``q`` (sign, active and keep in
  one value in {-1, 0, +1}). Since ``q != 0`` carries the sign, ``eq`` is
  ``|R - c|`` for ``q = +1``, ``-c`` for ``q = -1`` and 0 otherwise: a value in
  ``[-T, T]``, ``bits(T) + 1`` bits signed.
* **Hidden layer** (one MAC pass per neuron ``g`` of the layer below):
  ``S_g = sum_h w[h, g] * eq_h``. The weight memory is in-major, so word
  ``g * B + b`` holds ``w[b*P + j, g]`` for the ``P`` lanes ``j``: exactly the
  ``P`` terms of block ``b`` for one ``g``. Each cycle therefore takes one
  weight word and the matching ``eq`` block and adds a ``P``-wide dot product
  (``P`` multipliers of ``weight_bits x (bits(T) + 1)`` bits and a ``P``-input
  adder tree) to one accumulator; ``S_g`` is complete after ``B`` cycles. The
  other order (one ``h`` against ``P`` values of ``g``) would need the
  out-major transpose of the weights, which the forward pass does not store.
  ``active = |S| >= hid_thr``, ``sign = +1`` iff ``S > 0``.

Pipelined for timing, one carry chain per cycle: popcount, ``eq`` and the
output desire, the products, the dot-product tree, the accumulator. The
inputs must come from registers (the accelerator registers every memory
output once, next to the memory, and fans out from there).
:attr:`DesireUnit.out_latency` and :attr:`DesireUnit.hid_latency` give the
cycles from the strobe to the result; strobes may come every cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from desire.config import Config
from golden.fixed import constants
from rtl import check_int
from rtl.pipeline import adder_tree, delay, tree_stages

__all__ = ["DesireUnit", "q_shape", "ternary"]


def q_shape() -> signed:
    """Shape of a ternary desire value q in {-1, 0, +1}."""
    return signed(2)


class DesireUnit(wiring.Component):
    """Desire datapath for ``lanes`` neurons per cycle.

    Ports
    -----
    trains : In(ArrayLayout(unsigned(T), lanes))
        Spike trains of the block (bit t = step t); the unit counts them.
    label_lane : In(lanes)
        One-hot: the lane of the block that is the label (0 if none).
    out_req : In(1)
        Strobe: output-layer desire of the block (``trains``, ``label_lane``).
    out_valid : Out(1)
        :attr:`out_latency` cycles after ``out_req``: ``out_*`` and ``eq`` hold it.
    out_active, out_sign : Out(lanes)
        Output-layer desire of the block (sign 1 = +1, 0 = -1).
    q : In(ArrayLayout(signed(2), lanes))
        Ternary desire of the block of the layer above (for ``eq``).
    eq : Out(ArrayLayout(signed(bits(T) + 1), lanes))
        ``E * q`` of the block of :attr:`out_latency` cycles before.
    weights : In(ArrayLayout(signed(weight_bits), lanes))
        Weight word ``g * B + b``: the ``w[h, g]`` of block ``b``.
    mac_valid, mac_first, mac_last : In(1)
        Add ``sum_j weights[j] * eq[j]`` to the accumulator (restarted from 0
        on ``mac_first``); ``mac_last`` marks the last block of one ``g``.
    hid_valid : Out(1)
        :attr:`hid_latency` cycles after a ``mac_last``: ``hid_*`` hold the desire
        of that ``g``.
    hid_active, hid_sign : Out(1)
    hid_sum : Out(signed(acc_bits))
        ``S_g``, exact (``golden.fixed.Constants.hidden_acc_bits(fan_out)`` bits).
    """

    #: Levels of the popcount tree per cycle.
    COUNT_LEVELS_PER_CYCLE = 3
    #: Levels of the dot-product adder tree per cycle.
    TREE_LEVELS_PER_CYCLE = 2

    def __init__(
        self,
        lanes: int,
        *,
        tsteps: int,
        target_count: int,
        out_label_below: int,
        out_other_above: int,
        hid_thr: int,
        weight_bits: int,
        acc_bits: int,
    ) -> None:
        self._lanes = check_int("lanes", lanes, 1)
        self._tsteps = check_int("tsteps", tsteps, 1)
        self._target = check_int("target_count", target_count, 0, tsteps)
        self._label_below = check_int("out_label_below", out_label_below, 0)
        self._other_above = check_int("out_other_above", out_other_above, 0)
        self._hid_thr = check_int("hid_thr", hid_thr, 0)
        self._weight_bits = check_int("weight_bits", weight_bits, 2)
        self._acc_bits = check_int("acc_bits", acc_bits, weight_bits + 1)
        cb = tsteps.bit_length()
        super().__init__(
            {
                "trains": In(data.ArrayLayout(unsigned(tsteps), lanes)),
                "label_lane": In(lanes),
                "out_req": In(1),
                "out_valid": Out(1),
                "out_active": Out(lanes),
                "out_sign": Out(lanes),
                "q": In(data.ArrayLayout(q_shape(), lanes)),
                "eq": Out(data.ArrayLayout(signed(cb + 1), lanes)),
                "weights": In(data.ArrayLayout(signed(weight_bits), lanes)),
                "mac_valid": In(1),
                "mac_first": In(1),
                "mac_last": In(1),
                "hid_valid": Out(1),
                "hid_active": Out(1),
                "hid_sign": Out(1),
                "hid_sum": Out(signed(acc_bits)),
            }
        )

    @classmethod
    def for_config(cls, cfg: Config) -> DesireUnit:
        """The unit of ``cfg``: accumulator sized for the widest layer above a hidden layer."""
        c = constants(cfg)
        fan_out = max(c.layers[2:], default=c.layers[-1])
        return cls(
            cfg.hardware.lanes,
            tsteps=c.tsteps,
            target_count=c.target_count,
            out_label_below=c.out_label_below,
            out_other_above=c.out_other_above,
            hid_thr=c.hid_thr,
            weight_bits=c.weight_bits,
            acc_bits=c.hidden_acc_bits(fan_out),
        )

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def out_latency(self) -> int:
        """Cycles from ``out_req`` (or any strobe) to ``out_*`` and ``eq``: popcount,
        then the registered desire and ``eq``."""
        return 1 + tree_stages(self._tsteps, self.COUNT_LEVELS_PER_CYCLE)

    @property
    def hid_latency(self) -> int:
        """Cycles from ``mac_last`` to ``hid_valid``: ``eq``, the shift-and-add products,
        the dot-product tree, the accumulator, the registered desire."""
        products = tree_stages(self._tsteps.bit_length(), self.TREE_LEVELS_PER_CYCLE)
        dot = tree_stages(2 * self._lanes, self.TREE_LEVELS_PER_CYCLE)
        return self.out_latency + products + dot + 2

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p, tsteps = self._lanes, self._tsteps
        trains = self.trains
        counts_at = self.out_latency - 1  # cycle of the registered counts
        label = delay(m, self.label_lane, counts_at, "label")
        q = delay(m, self.q, counts_at, "q")
        out_active, out_sign = Signal(p), Signal(p)
        mags = [Signal(range(tsteps + 1), name=f"mag{j}") for j in range(p)]  # |E * q|
        negs = [Signal(name=f"neg{j}") for j in range(p)]  # E * q < 0
        for j in range(p):
            bits = [trains[j][t] for t in range(tsteps)]
            cnt = adder_tree(m, bits, self.COUNT_LEVELS_PER_CYCLE, f"count{j}")
            dist = Mux(cnt > self._target, cnt - self._target, self._target - cnt)
            m.d.sync += [
                mags[j].eq(Mux(q[j] > 0, dist, Mux(q[j] < 0, cnt, 0))),
                negs[j].eq(q[j] < 0),
            ]
            m.d.sync += [
                out_sign[j].eq(label[j]),
                out_active[j].eq(Mux(label[j], cnt < self._label_below, cnt > self._other_above)),
                self.eq[j].eq(Mux(q[j] > 0, dist, Mux(q[j] < 0, -cnt, 0))),
            ]
        m.d.comb += [
            self.out_active.eq(out_active),
            self.out_sign.eq(out_sign),
            self.out_valid.eq(delay(m, self.out_req, self.out_latency, "out_req")),
        ]

        # w * E * q as shift and add: |E * q| (bits(T) bits) picks shifted copies of w; the
        # sign joins in the dot-product tree as ~t + 1, so no stage negates
        weights = delay(m, self.weights, self.out_latency, "weights")
        stages = tree_stages(len(mags[0]), self.TREE_LEVELS_PER_CYCLE)
        terms = []
        for j in range(p):
            shifted = [Mux(mags[j][b], weights[j] << b, 0) for b in range(len(mags[j]))]
            t = adder_tree(m, shifted, self.TREE_LEVELS_PER_CYCLE, f"prod{j}")
            neg = delay(m, negs[j], stages, f"neg{j}")
            terms += [Mux(neg, ~t, t), neg]
        dot = adder_tree(m, terms, self.TREE_LEVELS_PER_CYCLE, "dot")
        at_acc = self.hid_latency - 2
        valid, first = (
            delay(m, x, at_acc, n)
            for x, n in ((self.mac_valid, "mac_valid"), (self.mac_first, "mac_first"))
        )
        acc = Signal(signed(self._acc_bits))
        with m.If(valid):
            m.d.sync += acc.eq(Mux(first, 0, acc) + dot)
        m.d.comb += self.hid_valid.eq(
            delay(m, self.mac_valid & self.mac_last, self.hid_latency, "mac_last")
        )
        m.d.sync += [
            self.hid_sum.eq(acc),
            self.hid_active.eq((acc >= self._hid_thr) | (acc <= -self._hid_thr)),
            self.hid_sign.eq(acc > 0),
        ]
        return m


def ternary(active: Signal, sign: Signal, keep: Signal) -> Cat:
    """q = sign * active * keep as a 2-bit two's-complement value (01 = +1, 11 = -1, 00 = 0)."""
    on = active & keep
    return Cat(on, on & ~sign)
