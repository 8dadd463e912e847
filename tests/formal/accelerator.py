"""Accelerator: its result stream, and the input rules its blocks rely on, with any host.

The host is free: pixels (the harness keeps the stream rules as their producer), the
result's ``ready`` and every bus access, weights and registers included. The whole
accelerator is elaborated at a tiny config, so the proof covers the sequencer, the
class counter and everything that could touch the counts while a result waits.

The block harnesses assume what each block's documentation asks of its environment
(the neuron core: events that keep the stream rules, ``clear``, ``fire`` and weight
writes only while idle, a threshold held during a pass; the encoder: pixel writes only
while not busy). Here those assumptions are proved for the blocks as the accelerator
wires them, which closes the argument: the host bus refuses weight and threshold
writes while busy (:mod:`tests.formal.host_bus`), and no core is busy unless the
accelerator is. The harness elaborates the accelerator itself to reach the encoder and
the cores (its submodules ``encoder`` and ``core<l>``).
"""

from __future__ import annotations

from amaranth.asserts import Initial
from amaranth.hdl import Cover, Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from desire.config import Config
from rtl.accelerator import Accelerator
from rtl.encoder import PIXEL_BITS
from rtl.host_bus import MmioSignature
from rtl.neuron_core import NeuronCore
from tests.formal.props import Checks, no_reset, past, stream_rules

__all__ = ["AcceleratorHarness", "tiny_config"]


def tiny_config(*, training: bool, architecture: str = "per-layer") -> Config:
    """2-2-2 neurons, one time step, one lane: every block of the accelerator, as small
    as the config allows."""
    return Config().replace(
        network={"layers": (2, 2, 2), "tsteps": 1, "error_margin": 0},
        hardware={"lanes": 1, "training": training, "architecture": architecture},
    )


class AcceleratorHarness(wiring.Component):
    """Checks an ``Accelerator`` (``block``: the class, a mutant in the tests) for ``cfg``.

    Properties:

    * ``stream valid held`` and ``stream payload held`` on ``result``;
    * ``core events keep the stream rules``: what each core's ``events`` port gets from
      its scanner (no ``start`` abandons an index the core was offered);
    * ``core driven only while idle``: ``clear``, ``fire`` (a per-layer core's; the
      shared pool's tagged core takes its fire passes when ``fire_ready``), ``w_we`` and ``u_we`` of
      every core only while it is idle, and its threshold unchanged while it is not;
    * ``pixels written only while the encoder is idle``;
    * cover: a result that waited a cycle for ``ready``.
    """

    def __init__(
        self, cfg: Config, *, block: type[Accelerator] = Accelerator, only: str | None = None
    ) -> None:
        self._dut = block(cfg)
        self._only = only
        super().__init__(
            {
                "pix_valid": In(1),
                "pix_payload": In(PIXEL_BITS),
                "result_ready": In(1),
                "bus": In(MmioSignature(self._dut.addr_bits)),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        dut = self._dut
        m.submodules.dut = top = dut.elaborate(platform)
        checks = Checks(m, self._only)
        no_reset(m)
        wiring.connect(m, wiring.flipped(self.bus), dut.bus)
        m.d.comb += [
            dut.pixels.valid.eq(self.pix_valid),
            dut.pixels.payload.eq(self.pix_payload),
            dut.result.ready.eq(self.result_ready),
        ]
        stream_rules(m, dut.pixels, None)
        stream_rules(m, dut.result, checks.check)
        if dut.config.hardware.architecture == "shared":
            cores = [top.submodules.core]
        else:
            n_layers = len(dut.config.network.layers) - 1
            cores = [top.submodules[f"core{l}"] for l in range(n_layers)]
        for core in cores:
            assert isinstance(core, NeuronCore)
            self._core_inputs(m, checks, core)
        encoder = top.submodules.encoder
        checks.check(
            "pixels written only while the encoder is idle", ~(encoder.pix_we & encoder.busy)
        )
        waited = past(m, dut.result.valid & ~dut.result.ready, "waited")
        m.d.comb += Cover(waited & dut.result.valid & dut.result.ready)
        checks.close()
        return m

    @staticmethod
    def _core_inputs(m: Module, checks: Checks, core: NeuronCore) -> None:
        """The rules of the core's port documentation, as assertions on what it gets."""
        events = core.events
        offered = past(m, events.valid & ~events.ready, "offered") & ~Initial()
        payload = Value.cast(events.payload)
        held = events.valid & (payload == past(m, payload, "payload"))
        checks.check("core events keep the stream rules", ~offered | held)
        # a tagged core takes a fire pass whenever fire_ready says (not only while idle)
        driven = core.clear | core.w_we | core.u_we | (core.fire if not core.tagged else 0)
        busy = ~past(m, core.idle, "idle") & ~Initial()
        threshold = Value.cast(core.threshold)
        steady = threshold == past(m, threshold, "threshold")
        checks.check("core driven only while idle", (~driven | core.idle) & (~busy | steady))
