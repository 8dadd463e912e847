"""StepScanner: per layer every set bit once, lowest first, then the layer's fire operation.

The harness latches the vectors at ``start`` and keeps what is not yet taken: the set
bits (``remaining``, packed like the ``vectors`` port) and the layers whose fire
operation is still due (``unfired``). The operation the scanner must offer next follows
from them alone: the first layer with something left, its lowest remaining bit, or its
fire operation once no bit is left. Nothing is assumed about ``ops.ready``; the vectors
hold still from ``start`` until ``done`` and their padding bits are 0, as the port
documentation requires. With ``memory`` (``hardware.spike_vectors = "memory"``) the
scanner reads the vectors through the harness's model of a synchronous read port: the
word it names on ``read_word`` arrives on ``read_data`` one cycle later.
"""

from __future__ import annotations

from amaranth.hdl import Assume, Const, Cover, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from rtl.step_scanner import StepScanner
from tests.formal.props import Checks, no_reset, popcount, stream_rules

__all__ = ["StepScannerHarness"]


class StepScannerHarness(wiring.Component):
    """Checks a ``StepScanner(inputs, width)``; ``block``: the class to check (a mutant in
    the tests that show each property can fail).

    Properties:

    * ``offer is the next operation``: whenever ``ops.valid`` (outside the ``start``
      cycle), the payload is the first layer with a bit or its fire left: its lowest
      remaining bit (``fire = 0``), or its fire operation when no bit is left;
    * ``done only after everything``: no ``done`` while a bit or a fire is left;
    * ``scan keeps going``: at most ``words + layers + 1`` cycles in a row with a scan
      running, nothing offered and not done;
    * the stream rules on ``ops``, except after ``start``;
    * cover: a step with a spike in two layers that met back-pressure reaches ``done``.
    """

    def __init__(
        self,
        inputs: tuple[int, ...],
        width: int,
        *,
        block: type[StepScanner] = StepScanner,
        only: str | None = None,
        memory: bool = False,
    ) -> None:
        self._dut = block(list(inputs), width, memory=memory)
        self._only = only
        bits = sum(self._dut.layer_words) * width
        super().__init__({"vectors": In(bits), "start": In(1), "ready": In(1)})

    def _slices(self) -> list[tuple[int, int, int]]:
        """(first bit, bits, inputs) of each layer's part of ``vectors``."""
        out, base = [], 0
        for n, words in zip(self._dut.inputs, self._dut.layer_words, strict=True):
            out.append((base, words * self._dut.width, n))
            base += words * self._dut.width
        return out

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.dut = dut = self._dut
        checks = Checks(m, self._only)
        n, ops, n_layers = len(self.vectors), dut.ops, len(dut.inputs)
        no_reset(m)
        if dut.memory:  # a synchronous read port over the vectors
            m.d.sync += dut.read_data.eq(self.vectors.word_select(dut.read_word, dut.width))
        else:
            m.d.comb += dut.vectors.eq(self.vectors)
        m.d.comb += dut.start.eq(self.start)
        m.d.comb += ops.ready.eq(self.ready)
        vec, remaining, unfired = Signal(n), Signal(n), Signal(n_layers)
        active, stalled = Signal(), Signal()
        total_words = sum(dut.layer_words)
        quiet = Signal(range(total_words + n_layers + 3))
        taken = ops.valid & ops.ready
        slices = self._slices()
        for base, bits, inputs in slices:  # padding bits are 0
            if bits > inputs:
                m.d.comb += Assume(self.vectors[base + inputs : base + bits] == 0)

        # the expected offer: the first layer with a bit or its fire left
        want_layer = Signal(range(n_layers))
        want_fire, want_onehot = Signal(), Signal(max(bits for _, bits, _ in slices))
        for l in reversed(range(n_layers)):  # the last assignment (lowest l) wins
            base, bits, _ = slices[l]
            part = remaining[base : base + bits]
            with m.If((part != 0) | unfired[l]):
                m.d.comb += [
                    want_layer.eq(l),
                    want_fire.eq(part == 0),
                    want_onehot.eq(part & ~(part - 1)),
                ]
        one = (Const(1, len(want_onehot)) << ops.payload.index)[: len(want_onehot)]
        right = (ops.payload.layer == want_layer) & (ops.payload.fire == want_fire)
        right &= want_fire | (one == want_onehot)
        right &= ~want_fire | (ops.payload.index == 0)
        anything_left = (remaining != 0) | (unfired != 0)
        checks.check(
            "offer is the next operation",
            ~ops.valid | self.start | (active & anything_left & right),
        )

        with m.If(self.start):
            m.d.sync += [vec.eq(self.vectors), remaining.eq(self.vectors), active.eq(1)]
            m.d.sync += [unfired.eq((1 << n_layers) - 1), stalled.eq(0)]
        with m.Else():
            with m.If(dut.done):
                m.d.sync += active.eq(0)
            with m.If(taken & ops.payload.fire):
                m.d.sync += unfired.eq(unfired & ~(1 << ops.payload.layer)[:n_layers])
            with m.If(taken & ~ops.payload.fire):
                bit = Signal(range(n), name="taken_bit")
                for l, (base, _, _) in enumerate(slices):
                    with m.If(ops.payload.layer == l):
                        m.d.comb += bit.eq(base + ops.payload.index)
                m.d.sync += remaining.eq(remaining & ~(Const(1, n) << bit)[:n])
            with m.If(ops.valid & ~ops.ready):
                m.d.sync += stalled.eq(1)
        m.d.comb += Assume(~active | self.start | (self.vectors == vec))

        checks.check(
            "done only after everything", ~(active & dut.done & ~self.start & anything_left)
        )
        with m.If(active & ~ops.valid & ~dut.done & ~self.start):
            m.d.sync += quiet.eq(quiet + 1)
        with m.Else():
            m.d.sync += quiet.eq(0)
        checks.check("scan keeps going", quiet <= total_words + n_layers + 1)
        stream_rules(m, ops, checks.check, exempt=self.start)
        spikes: list[Value] = [vec[base : base + bits] != 0 for base, bits, _ in slices[:2]]
        both = spikes[0] & spikes[1] if len(spikes) > 1 else spikes[0]
        m.d.comb += Cover(active & dut.done & stalled & both & (popcount(vec) >= 2))
        checks.close()
        return m
