"""SpikeScanner: every set bit once, lowest first, under any back-pressure.

The harness latches the vector at ``start`` and keeps the set of indices not yet
taken (``remaining``). Nothing is assumed about ``events.ready``; the vector is held
still from ``start`` until ``done``, as the port documentation requires.
"""

from __future__ import annotations

from amaranth.hdl import Assume, Cover, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from rtl.spike_scanner import SpikeScanner
from tests.formal.props import Checks, no_reset, popcount, stream_rules

__all__ = ["ScannerHarness"]


class ScannerHarness(wiring.Component):
    """Checks a ``SpikeScanner(words, width)``; ``block``: the class to check (a mutant in
    the tests that show each property can fail).

    Properties (assertion names; ``only`` keeps one, :class:`~tests.formal.props.Checks`):

    * ``offer is the lowest index not yet taken``: whenever ``events.valid`` (outside
      the ``start`` cycle), the payload is a set bit of the vector that was not taken
      before, and no lower one is left: each set bit comes out once, in increasing order,
      and no index comes out of a cleared bit or outside a scan;
    * ``done only after every set bit``;
    * ``scan keeps going``: at most ``words + 1`` cycles in a row with a scan running,
      nothing offered and not done (one per silent word, as the docstring says), so with
      ``ready`` high the scan ends and every set bit comes out;
    * the stream rules on ``events`` (:func:`~tests.formal.props.stream_rules`), except
      after ``start``, which abandons an offered index by design;
    * cover: a scan of two or more bits that met back-pressure reaches ``done``.
    """

    def __init__(
        self,
        words: int,
        width: int,
        *,
        block: type[SpikeScanner] = SpikeScanner,
        only: str | None = None,
    ) -> None:
        self._dut = block(words, width)
        self._only = only
        n = words * width
        super().__init__({"vector": In(n), "start": In(1), "ready": In(1)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.dut = dut = self._dut
        checks = Checks(m, self._only)
        n, ev = len(self.vector), dut.events
        no_reset(m)
        m.d.comb += [
            dut.vector.eq(self.vector),
            dut.start.eq(self.start),
            ev.ready.eq(self.ready),
        ]
        vec, remaining = Signal(n), Signal(n)
        active = Signal()  # a scan runs: from the cycle after start until done
        stalled = Signal()  # this scan met back-pressure
        quiet = Signal(range(dut.words + 3))
        taken = ev.valid & ev.ready
        with m.If(self.start):
            m.d.sync += [vec.eq(self.vector), remaining.eq(self.vector), active.eq(1)]
            m.d.sync += stalled.eq(0)
        with m.Else():
            with m.If(dut.done):
                m.d.sync += active.eq(0)
            with m.If(taken):
                m.d.sync += remaining.eq(remaining & ~(1 << ev.payload)[:n])
            with m.If(ev.valid & ~ev.ready):
                m.d.sync += stalled.eq(1)
        m.d.comb += Assume(~active | self.start | (self.vector == vec))

        lowest = remaining & ~(remaining - 1)  # the lowest index not yet taken, one-hot
        offer = ~ev.valid | self.start
        offer |= active & (ev.payload < n) & ((1 << ev.payload)[:n] == lowest)
        checks.check("offer is the lowest index not yet taken", offer)
        early = active & dut.done & ~self.start & (remaining != 0)
        checks.check("done only after every set bit", ~early)
        with m.If(active & ~ev.valid & ~dut.done & ~self.start):
            m.d.sync += quiet.eq(quiet + 1)
        with m.Else():
            m.d.sync += quiet.eq(0)
        checks.check("scan keeps going", quiet <= dut.words + 1)
        stream_rules(m, ev, checks.check, exempt=self.start)
        m.d.comb += Cover(active & dut.done & stalled & (popcount(vec) >= 2))
        checks.close()
        return m
