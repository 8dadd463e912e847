"""Per-class spike counters of the output layer and their strict arg-max.

Mirrors :func:`golden.network.strict_argmax`: the class with strictly the most
spikes, or no class on a tie. The arg-max walks the counters one class per cycle
(``classes`` cycles, no comparator tree), which costs nothing next to a sample's
thousands of cycles.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl import check_int, index_shape

__all__ = ["ClassCounter"]


class ClassCounter(wiring.Component):
    """Counters of ``classes`` output neurons over ``tsteps`` steps, fed ``lanes`` at a time.

    Ports
    -----
    clear : In(1)
        Strobe: every counter to 0 (a sample starts); wins over a count in the
        same cycle.
    spk_valid, spk_block, spk_bits : In
        The output layer's fire pass: ``spk_bits[j]`` is the spike of class
        ``spk_block * lanes + j`` (the neuron core's ``out_*``).
    step : In(1)
        One arg-max step: compare class ``k`` (0, 1, ... in consecutive steps)
        with the best so far. The step of the last class ends the arg-max (the
        next step starts over at class 0); ``result`` holds it from the next cycle.
    last : Out(1)
        The next step is the one of the last class.
    result : Out(result_layout)
        ``counts`` (the counters), ``cls`` (the arg-max, :attr:`no_class` on a tie)
        and ``valid_class`` (0 on a tie).
    """

    def __init__(self, classes: int, lanes: int, tsteps: int) -> None:
        self._classes = check_int("classes", classes, 1)
        self._lanes = check_int("lanes", lanes, 1)
        self._tsteps = check_int("tsteps", tsteps, 1)
        self._blocks = -(-classes // lanes)
        self.result_layout = data.StructLayout(
            {
                "counts": data.ArrayLayout(unsigned(tsteps.bit_length()), classes),
                "cls": unsigned(classes.bit_length()),
                "valid_class": 1,
            }
        )
        super().__init__(
            {
                "clear": In(1),
                "spk_valid": In(1),
                "spk_block": In(index_shape(self._blocks)),
                "spk_bits": In(lanes),
                "step": In(1),
                "last": Out(1),
                "result": Out(self.result_layout),
            }
        )

    @property
    def classes(self) -> int:
        return self._classes

    @property
    def no_class(self) -> int:
        """``cls`` of a tie: all ones, never a class index."""
        return (1 << self._classes.bit_length()) - 1

    def elaborate(self, platform: object) -> Module:
        m = Module()
        n_cls, p = self._classes, self._lanes
        counts = [Signal(self._tsteps.bit_length(), name=f"count{n}") for n in range(n_cls)]
        for n, cnt in enumerate(counts):
            block, lane = divmod(n, p)
            with m.If(self.spk_valid & (self.spk_block == block) & self.spk_bits[lane]):
                m.d.sync += cnt.eq(cnt + 1)
        with m.If(self.clear):
            m.d.sync += [cnt.eq(0) for cnt in counts]

        k = Signal(range(n_cls))
        best = Signal.like(counts[0])
        best_idx = Signal(range(n_cls))
        tie = Signal()
        m.d.comb += self.last.eq(k == n_cls - 1)
        with m.If(self.step):
            m.d.sync += k.eq(Mux(self.last, 0, k + 1))
            cur = Array(counts)[k]
            with m.If(k == 0):
                m.d.sync += [best.eq(cur), best_idx.eq(0), tie.eq(0)]
            with m.Elif(cur > best):
                m.d.sync += [best.eq(cur), best_idx.eq(k), tie.eq(0)]
            with m.Elif(cur == best):
                m.d.sync += tie.eq(1)
        m.d.comb += [self.result.counts[n].eq(cnt) for n, cnt in enumerate(counts)]
        m.d.comb += [
            self.result.cls.eq(Mux(tie, self.no_class, best_idx)),
            self.result.valid_class.eq(~tie),
        ]
        return m
