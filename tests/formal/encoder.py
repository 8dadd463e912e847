"""Encoder: the spike words of a step come out once each, in order, while ``busy``.

The encoder's output has no back-pressure (``spk_valid`` with no ``ready``: the
consumer must take every word), so Amaranth's stream rules reduce to the order and
count of the words; those are what is proved, with any pixels, keep mask and
``start``/``first`` pattern. The keep mask is a free constant (``AnyConst``): the
encoder samples it while a step runs, and the accelerator holds it still for a sample.
"""

from __future__ import annotations

from amaranth.asserts import AnyConst
from amaranth.hdl import Assume, Cat, Const, Cover, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from rtl.encoder import PIXEL_BITS, Encoder
from tests.formal.props import Checks, no_reset

__all__ = ["EncoderHarness"]


class EncoderHarness(wiring.Component):
    """Checks an ``Encoder(n, lanes)``; ``block``: the class to check (a mutant).

    Properties:

    * ``words in order, once per step``: every ``spk_valid`` belongs to an accepted
      ``start`` (one while not ``busy``) and carries the next word, 0 to ``words - 1``,
      and a step ends after its last word;
    * ``busy from start to the last word``: ``busy`` is high exactly from the cycle
      after an accepted ``start`` to the cycle of its last word;
    * ``no spike from a dropped or padding pixel``;
    * cover: a spike in the last word.
    """

    def __init__(
        self, n: int, lanes: int, *, block: type[Encoder] = Encoder, only: str | None = None
    ) -> None:
        self._dut = block(n, lanes)
        self._only = only
        super().__init__(
            {
                "pix_word": In(self._dut.pix_word.shape()),
                "pix_lane": In(self._dut.pix_lane.shape()),
                "pix_data": In(PIXEL_BITS),
                "pix_we": In(1),
                "start": In(1),
                "first": In(1),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.dut = dut = self._dut
        checks = Checks(m, self._only)
        no_reset(m)
        n, p, words = dut.n, dut.lanes, dut.words
        keep = AnyConst(n)
        m.d.comb += [
            dut.pix_word.eq(self.pix_word),
            dut.pix_lane.eq(self.pix_lane),
            dut.pix_data.eq(self.pix_data),
            dut.pix_we.eq(self.pix_we),
            dut.start.eq(self.start),
            dut.first.eq(self.first),
            dut.keep.eq(keep),
        ]
        m.d.comb += Assume(~(self.pix_we & dut.busy))  # "write only while not busy"

        pending = Signal()  # a step was accepted and its last word is not out yet
        next_word = Signal(range(words))
        with m.If(dut.spk_valid):
            m.d.sync += next_word.eq(next_word + 1)
            with m.If(next_word == words - 1):
                m.d.sync += [pending.eq(0), next_word.eq(0)]
        with m.If(self.start & ~dut.busy):
            m.d.sync += pending.eq(1)
        in_order = ~dut.spk_valid | (pending & (dut.spk_word == next_word))
        checks.check("words in order, once per step", in_order)
        checks.check("busy from start to the last word", dut.busy == pending)
        allowed = Cat(keep, Const(0, words * p - n)).word_select(dut.spk_word, p)
        silent = ~dut.spk_valid | ((dut.spk_bits & ~allowed) == 0)
        checks.check("no spike from a dropped or padding pixel", silent)
        m.d.comb += Cover(dut.spk_valid & (dut.spk_word == words - 1) & (dut.spk_bits != 0))
        checks.close()
        return m
