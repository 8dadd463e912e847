"""NeuronCore: no membrane read/write hazard, and no event taken during a pass.

The hazard rule of rtl/neuron_core.py: an operation's write-back lands
``WRITE_DISTANCE`` cycles after its membrane read, and the read port is transparent
for the write port, so a read sees every write-back presented in the same cycle or
before. A read of a word therefore never returns a value whose write-back is still in
flight if, and only if, two write-backs to one word are at least ``WRITE_DISTANCE``
cycles apart (their reads are as far apart as they are). The harness watches the
membrane memory's two ports, which it reaches by elaborating the core itself (the
core is unchanged; only its ports and that memory's ports are looked at).

The environment keeps the core's documented input rules: the stream rules on
``events`` (a rule-abiding producer), indices below their layer's ``n_in``, ``clear``
(and, untagged, ``fire``) only while ``idle``, weight writes only while ``idle``,
thresholds above 0. ``WRITE_DISTANCE`` is the documented constant of the unmutated
class, so that a mutant that changes its own copy is judged by the documentation.
"""

from __future__ import annotations

from amaranth.hdl import Assume, Cover, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from rtl.neuron_core import NeuronCore
from tests.formal.props import Checks, delayed, no_reset, stream_rules

__all__ = ["CoreHarness"]

#: The documented distance from a membrane read to its write-back.
WRITE_DISTANCE = NeuronCore.WRITE_DISTANCE
#: Number formats of the harness's core: small, since the data never matters here.
WEIGHT_BITS, MEMBRANE_BITS, DECAY_SHIFT = 2, 4, 1


class CoreHarness(wiring.Component):
    """Checks a core of ``layers`` ((n_in, n_out) pairs) on ``lanes`` lanes: untagged
    (``NeuronCore(n_in, n_out, lanes)``) for one pair with ``tagged=False``, else
    tagged (``NeuronCore(layers=...)``); ``block``: the class to check (a mutant).

    Properties:

    * ``write-back WRITE_DISTANCE after its read``: the membrane write port's address
      was on the read port ``WRITE_DISTANCE`` cycles before;
    * ``no write-back to a word within WRITE_DISTANCE of the last``;
    * ``events not ready during a pass``: from the cycle after a fire or clear pass is
      taken until the core is idle again (tagged: a clear pass only; a fire pass of one
      layer lets events of others through);
    * cover: an event taken ``WRITE_DISTANCE`` cycles after the operation before it.
    """

    def __init__(
        self,
        layers: tuple[tuple[int, int], ...],
        lanes: int,
        *,
        tagged: bool,
        block: type[NeuronCore] = NeuronCore,
        only: str | None = None,
    ) -> None:
        formats = {
            "weight_bits": WEIGHT_BITS,
            "membrane_bits": MEMBRANE_BITS,
            "decay_shift": DECAY_SHIFT,
        }
        if tagged:
            self._dut = block(layers=layers, lanes=lanes, **formats)
        elif len(layers) == 1:
            self._dut = block(*layers[0], lanes, **formats)
        else:
            raise ValueError("an untagged core has one layer")
        self._only = only
        dut = self._dut
        ports = {
            "valid": In(1),
            "payload": In(dut.events.payload.shape()),
            "fire": In(1),
            "clear": In(1),
            "threshold": In(dut.threshold.shape()),
            "keep": In(len(dut.keep)),
            "w_word": In(dut.w_word.shape()),
            "w_lane": In(dut.w_lane.shape()),
            "w_data": In(signed(WEIGHT_BITS)),
            "w_we": In(1),
            "u_we": In(1),
            "u_addr": In(dut.u_addr.shape()),
            "u_data": In(dut.u_data.shape()),
        }
        if tagged:
            ports["fire_layer"] = In(dut.fire_layer.shape())
        super().__init__(ports)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        dut = self._dut
        # elaborated here, so that the membrane memory's ports can be watched
        m.submodules.dut = core = dut.elaborate(platform)
        membranes = core.submodules.membranes
        assert isinstance(membranes, Memory)
        (rd,), (wr,) = membranes.read_ports, membranes.write_ports
        if wr not in rd.transparent_for:
            raise AssertionError("the membrane read port is not transparent for the write port")
        checks = Checks(m, self._only)
        no_reset(m)
        ev = dut.events
        m.d.comb += [
            ev.valid.eq(self.valid),
            ev.payload.eq(self.payload),
            dut.fire.eq(self.fire),
            dut.clear.eq(self.clear),
            dut.threshold.eq(self.threshold),
            dut.keep.eq(self.keep),
            dut.w_word.eq(self.w_word),
            dut.w_lane.eq(self.w_lane),
            dut.w_data.eq(self.w_data),
            dut.w_we.eq(self.w_we),
            dut.u_we.eq(self.u_we),
            dut.u_addr.eq(self.u_addr),
            dut.u_data.eq(self.u_data),
        ]
        self._environment(m)

        take_event = ev.valid & ev.ready
        if dut.tagged:
            m.d.comb += dut.fire_layer.eq(self.fire_layer)
            take_fire = self.fire & dut.fire_ready
            takes_pass = self.clear & dut.idle & ~take_event & ~take_fire
        else:
            take_fire = self.fire & dut.idle & ~take_event
            takes_pass = take_fire | (self.clear & dut.idle & ~take_event)
        in_pass = Signal()
        with m.If(takes_pass):
            m.d.sync += in_pass.eq(1)
        with m.Elif(dut.idle):
            m.d.sync += in_pass.eq(0)
        checks.check("events not ready during a pass", ~(in_pass & ~dut.idle & ev.ready))

        distance = WRITE_DISTANCE
        age = Signal(range(distance + 1))  # cycles since the start, up to the distance
        with m.If(age != distance):
            m.d.sync += age.eq(age + 1)
        read_then = delayed(m, rd.addr, distance, "read_addr")
        checks.check(
            "write-back WRITE_DISTANCE after its read",
            ~wr.en.any() | (age != distance) | (read_then == wr.addr),
        )
        close = Signal()
        en, addr = wr.en.any(), wr.addr
        for k in range(1, distance):
            en_k = delayed(m, en, k, f"write_en_{k}")
            addr_k = delayed(m, addr, k, f"write_addr_{k}")
            close |= en_k & (addr_k == addr)
        checks.check("no write-back to a word within WRITE_DISTANCE of the last", ~(en & close))

        start = take_event | take_fire
        since = Signal(range(distance + 2))  # cycles since the last operation started
        with m.If(start):
            m.d.sync += since.eq(1)
        with m.Elif(since != distance + 1):
            m.d.sync += since.eq(since + 1)
        m.d.comb += Cover(take_event & (since == distance))
        checks.close()
        return m

    def _environment(self, m: Module) -> None:
        """The core's documented input rules (module docstring)."""
        dut, ev = self._dut, self._dut.events
        stream_rules(m, ev, None)
        if dut.tagged:
            layer, index = ev.payload.layer, ev.payload.index
            m.d.comb += Assume(layer < len(dut.layers))
            for l, (n_in, _) in enumerate(dut.layers):
                m.d.comb += Assume((layer != l) | (index < n_in))
            m.d.comb += Assume(self.fire_layer < len(dut.layers))
            m.d.comb += [Assume(self.threshold[l] > 0) for l in range(len(dut.layers))]
        else:
            m.d.comb += Assume(ev.payload < dut.n_in)
            m.d.comb += Assume(~self.fire | dut.idle)
            m.d.comb += Assume(self.threshold > 0)
        m.d.comb += Assume(~(self.clear | self.w_we | self.u_we) | dut.idle)
