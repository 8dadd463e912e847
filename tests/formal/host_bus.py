"""HostBus: what a busy accelerator refuses, the range checks, the sticky error bits.

Every input of the register file is free (the bus, ``busy`` and the other status
inputs, the weight read data): the properties hold for any host and any sequencer.
"""

from __future__ import annotations

from amaranth.asserts import Initial
from amaranth.hdl import Cat, Cover, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In

from rtl.host_bus import HostBus, MmioSignature
from rtl.neuron_core import NeuronCore
from rtl.register_map import DATA_BITS, AddressMap, Mode, Status
from tests.formal.props import Checks, delayed, no_reset, past

__all__ = ["HostBusHarness"]

#: The thresholds' reset value and the weight width: any legal value does.
THR_INIT, WEIGHT_BITS = 1, 4


class HostBusHarness(wiring.Component):
    """Checks a ``HostBus`` for weight layers of ``depths`` words of ``lanes`` lanes,
    ``membrane_bits``-bit thresholds, ``training`` or not; ``block``: the class to check
    (a mutant in the tests that show each property can fail).

    Properties:

    * ``no weight write while busy``: ``weight_we`` is 0 in every busy cycle;
    * ``THRESHOLD, MODE, LR_INT held while busy``: a busy cycle changes none of them;
    * ``THRESHOLD write in range or ignored``: after a write of ``THRESHOLD + l`` (not
      busy) the register holds the written value if it lies in (0, 2^(membrane_bits-1)),
      else its old value; without a write it holds still;
    * ``THRESHOLD in range``: every threshold is > 0 (the register's width keeps it
      below 2^(membrane_bits-1));
    * ``MODE write in range or ignored``: likewise for ``MODE`` and the modes the build
      accepts (``TRAINING`` only with ``training``);
    * ``ERR_BUSY sticky until W1C``, ``ERR_WRITE sticky until W1C``: once a ``STATUS``
      read returned the bit set, every later ``STATUS`` read returns it set until a
      ``STATUS`` write with that bit set (the reads are observed on ``rdata``,
      ``read_latency`` cycles after their address);
    * covers: a threshold write in range taken; each error bit read set twice in a row.
    """

    def __init__(
        self,
        depths: tuple[int, ...],
        lanes: int,
        *,
        membrane_bits: int,
        training: bool,
        block: type[HostBus] = HostBus,
        only: str | None = None,
    ) -> None:
        self._map = AddressMap(depths, lanes)
        self._membrane_bits, self._training = membrane_bits, training
        self._dut = block(
            self._map,
            weight_bits=WEIGHT_BITS,
            membrane_bits=membrane_bits,
            thr_init=THR_INIT,
            training=training,
            weight_latency=NeuronCore.READ_LATENCY,
        )
        self._only = only
        n = len(depths)
        super().__init__(
            {
                "bus": In(MmioSignature(self._map.addr_bits)),
                "busy": In(1),
                "result": In(1),
                "stall": In(1),
                "sample_start": In(1),
                "backward": In(1),
                "update": In(1),
                "events": In(n),
                "dropout_state": In(DATA_BITS),
                "rounding_state": In(DATA_BITS),
                "weight_rdata": In(data.ArrayLayout(signed(WEIGHT_BITS), lanes)).array(n),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.dut = dut = self._dut
        checks = Checks(m, self._only)
        no_reset(m)
        wiring.connect(m, wiring.flipped(self.bus), dut.bus)
        for name in ("busy", "result", "stall", "sample_start", "backward", "update", "events"):
            m.d.comb += getattr(dut, name).eq(getattr(self, name))
        m.d.comb += [
            dut.dropout_state.eq(self.dropout_state),
            dut.rounding_state.eq(self.rounding_state),
            *(d.eq(s) for d, s in zip(dut.weight_rdata, self.weight_rdata, strict=True)),
        ]
        regs, bus, busy = self._map.regs, self.bus, self.busy
        is_reg = ~bus.addr[-1]
        reg_addr = bus.addr[: self._map.addr_bits - 1]

        def writes(address: int) -> Signal:
            return bus.we & is_reg & (reg_addr == address)

        checks.check("no weight write while busy", ~busy | (dut.weight_we == 0))
        was_busy = past(m, busy, "busy") & ~Initial()
        held = Cat(*dut.threshold, dut.mode, dut.lr_int)
        unchanged = held == past(m, held, "held")
        checks.check("THRESHOLD, MODE, LR_INT held while busy", ~was_busy | unchanged)

        hi = (1 << (self._membrane_bits - 1)) - 1
        wdata = bus.wdata.as_signed()
        for l, thr in enumerate(dut.threshold):
            written = writes(regs.THRESHOLD + l) & ~busy
            want = Signal(signed(self._membrane_bits), init=THR_INIT, name=f"want_thr{l}")
            want_next = Mux(written & (wdata > 0) & (wdata <= hi), wdata, thr)
            m.d.sync += want.eq(want_next)
            checks.check("THRESHOLD write in range or ignored", thr == want)
            checks.check("THRESHOLD in range", thr > 0)
            m.d.comb += Cover(past(m, written, f"written{l}") & (thr != past(m, thr, f"thr{l}")))
        mode_max = Mode.TRAINING if self._training else Mode.INFERENCE
        want_mode = Signal()
        m.d.sync += want_mode.eq(
            Mux(writes(regs.MODE) & ~busy & (bus.wdata <= mode_max), bus.wdata, dut.mode)
        )
        checks.check("MODE write in range or ignored", dut.mode == want_mode)

        # STATUS reads, seen read_latency cycles later with the W1C writes of their cycle
        latency = dut.read_latency
        status_read = delayed(m, is_reg & (reg_addr == regs.STATUS), latency, "status_read")
        for bit in (Status.ERR_BUSY, Status.ERR_WRITE):
            index = bit.bit_length() - 1
            w1c = delayed(m, writes(regs.STATUS) & bus.wdata[index], latency, bit.name)
            seen = bus.rdata[index]
            armed = Signal(name=f"{bit.name.lower()}_seen_set")
            with m.If(status_read & seen):
                m.d.sync += armed.eq(~w1c)
            with m.Elif(w1c):
                m.d.sync += armed.eq(0)
            checks.check(f"{bit.name} sticky until W1C", ~(status_read & armed) | seen)
            m.d.comb += Cover(status_read & armed & seen)
        checks.close()
        return m
