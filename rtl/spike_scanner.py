"""Spike scanner: a spike bit vector in, the indices of its set bits out, lowest first.

Why a scanner rather than an index list written by the producer: the producers
(encoder, fire passes) emit ``lanes`` spikes per cycle, which would need
``lanes`` list writes per cycle; a bit vector takes them in one. The scanner
skips a silent word in one cycle while the core is still busy with the previous
event (``B`` cycles per event), so silent inputs cost no core cycles unless more
than ``B - 1`` silent words follow each other. :func:`rtl.cycle_model.cycle_model`
copies its handshake register by register.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtl import check_int, index_shape

__all__ = ["SpikeScanner"]


class SpikeScanner(wiring.Component):
    """Scanner of a vector of ``words`` words of ``width`` bits.

    Ports
    -----
    vector : In(words * width)
        Spike vector, bit ``i`` = input ``i``; must hold still from ``start``
        until ``done``.
    start : In(1)
        Strobe: scan from word 0 (abandons a scan in progress, and an index
        offered but not yet taken).
    events : Out(stream.Signature(range(words * width)))
        Indices of the set bits, ascending, each once, from an output register.
        A word is loaded in the cycle the previous word's last index goes into
        that register, and a silent word is skipped in one cycle.
    done : Out(1)
        Every index was taken (also high after reset, and low the cycle after
        ``start``).
    """

    def __init__(self, words: int, width: int) -> None:
        self._words = check_int("words", words, 1)
        self._width = check_int("width", width, 1)
        super().__init__(
            {
                "vector": In(words * width),
                "start": In(1),
                "events": Out(stream.Signature(index_shape(words * width))),
                "done": Out(1),
            }
        )

    @property
    def words(self) -> int:
        return self._words

    @property
    def width(self) -> int:
        return self._width

    def elaborate(self, platform: object) -> Module:
        m = Module()
        w = self._width
        ptr = Signal(range(self._words + 1), init=self._words)  # next word to load
        mask = Signal(w)  # bits of word ``base`` not yet sent
        base = Signal(index_shape(self._words))
        lowest = Signal(index_shape(w))
        for j in reversed(range(w)):  # priority encoder: the last assignment (lowest j) wins
            with m.If(mask[j]):
                m.d.comb += lowest.eq(j)
        take = ~self.events.valid | self.events.ready
        rest = Mux(take, mask & (mask - 1), mask)
        with m.If(take):
            m.d.sync += [
                self.events.valid.eq(mask != 0),
                self.events.payload.eq(base * w + lowest),
            ]
        with m.If((rest == 0) & (ptr != self._words)):
            m.d.sync += [mask.eq(self.vector.word_select(ptr, w)), base.eq(ptr), ptr.eq(ptr + 1)]
        with m.Else():
            m.d.sync += mask.eq(rest)
        with m.If(self.start):
            m.d.sync += [ptr.eq(0), mask.eq(0), self.events.valid.eq(0)]
        m.d.comb += self.done.eq((ptr == self._words) & (mask == 0) & ~self.events.valid)
        return m
