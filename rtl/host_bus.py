"""The host's memory-mapped port: register file, performance counters and weight port.

Every register of :class:`rtl.register_map.RegisterMap` lives here, so that the
sequencers only say what happens (busy, a backward cycle, an input event) and
one place owns what the host sees. Writes while a sample runs are ignored and set
``STATUS.ERR_BUSY``; writes to a bad address or of a bad value are ignored and set
``STATUS.ERR_WRITE``. Weight accesses are decoded into a word, a lane and a
per-layer write strobe for the neuron cores' host ports.
"""

from __future__ import annotations

from typing import NamedTuple

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from desire.config import Config
from golden.fixed import constants
from rtl import check_int, index_shape
from rtl.neuron_core import NeuronCore
from rtl.pipeline import delay
from rtl.register_map import DATA_BITS, AddressMap, Mode, Status

__all__ = ["READ_LATENCY", "HostBus", "MmioSignature", "threshold_range"]


class MmioSignature(wiring.Signature):
    """Simple memory-mapped port, from the host's side.

    Members
    -------
    addr : Out(addr_width)
        Word address; MSB set selects the weights (see
        :meth:`Accelerator.weight_address`), clear the registers.
    wdata : Out(32)
        Write data, taken when ``we`` is high.
    we : Out(1)
    rdata : In(32)
        Data at the ``addr`` of :data:`READ_LATENCY` cycles before (reads have
        no strobe and no side effects; a new address may follow every cycle).
        Weights read 0 while a sample runs.
    """

    def __init__(self, addr_width: int) -> None:
        self.addr_width = check_int("addr_width", addr_width, 1)
        super().__init__(
            {
                "addr": Out(addr_width),
                "wdata": Out(DATA_BITS),
                "we": Out(1),
                "rdata": In(DATA_BITS),
            }
        )


def threshold_range(membrane_bits: int) -> tuple[int, int]:
    """The values a ``THRESHOLD`` write takes, inclusive: positive, and held by both a
    membrane and a bus word; any other value is refused with ``ERR_WRITE``."""
    return 1, min((1 << (membrane_bits - 1)) - 1, (1 << (DATA_BITS - 1)) - 1)


class HostBus(wiring.Component):
    """Register file and weight port for the layout ``addresses``.

    Parameters: ``weight_bits`` and ``membrane_bits`` (widths of a weight and of a
    threshold), ``thr_init`` (the thresholds' reset value), ``training`` (whether
    ``MODE = TRAINING`` is accepted), ``weight_latency`` (cycles from
    ``weight_word`` to ``weight_rdata``) and ``on_chip_weights`` (false: the weights
    live in external memory, the weight window reads 0 and refuses writes with
    ``ERR_WRITE``, and ``WEIGHT_BASE`` places the table).

    Ports
    -----
    bus : In(MmioSignature(addr_bits))
        The host's port. A write takes effect at the clock edge that samples it;
        ``rdata`` follows the address by :attr:`read_latency` cycles.
    busy : In(1)
        A sample runs: writes of weights, ``THRESHOLD``, ``MODE`` and ``LR_INT``
        are refused (``ERR_BUSY``), ``CYCLES`` counts the cycle, and a weight read
        returns 0 (the memories belong to the sample).
    result : In(1)
        A result waits on the result stream (``STATUS.RESULT``).
    stall : In(1)
        The host offered a pixel that was not taken: ``STALLS`` counts the cycle.
    sample_start : In(1)
        Strobe: a sample starts; ``CYCLES``, ``CYCLES_BACKWARD``, ``CYCLES_UPDATE``
        and every ``EVENTS`` restart from 0 (this wins over a count in the same cycle).
    backward, update : In(1)
        The cycle belongs to the backward / update pass (``CYCLES_BACKWARD``,
        ``CYCLES_UPDATE``).
    events : In(n_layers)
        Bit ``l``: core ``l`` took an input spike (``EVENTS + l``).
    memory_error : In(1)
        The external weight memory answered with an error (sticky at its source):
        ``STATUS.ERR_MEMORY``.
    weight_base : Out(32)
        ``WEIGHT_BASE`` (register; refused while busy): where the external weight
        table starts.
    dropout_state, rounding_state : In(32)
        The PRNG states, read as ``DROPOUT_STATE`` and ``ROUNDING_STATE``.
    threshold : Out(signed(membrane_bits)).array(n_layers)
        ``THRESHOLD + l`` (registers, reset to ``thr_init``).
    mode : Out(1)
        ``MODE`` (register).
    lr_int : Out(32)
        ``LR_INT`` (register).
    weight_word, weight_lane, weight_layer : Out
        The word, lane and layer fields of ``bus.addr``, every cycle (reads and writes;
        the layer lets one memory of all layers place the word).
    weight_data : Out(signed(weight_bits))
        ``bus.wdata``, truncated.
    weight_we : Out(n_layers)
        Bit ``l``: write ``weight_data`` to lane ``weight_lane`` of word
        ``weight_word`` of layer ``l``; only for an address inside the layer, and
        never while busy.
    weight_rdata : In(ArrayLayout(signed(weight_bits), lanes)).array(n_layers)
        Word ``weight_word`` of layer ``l``, of ``weight_latency`` cycles before.
    """

    #: Registered picks after the weight word: the lane, then the layer.
    PICK_CYCLES = 2

    def __init__(
        self,
        addresses: AddressMap,
        *,
        weight_bits: int,
        membrane_bits: int,
        thr_init: int,
        training: bool,
        weight_latency: int,
        on_chip_weights: bool = True,
    ) -> None:
        if not isinstance(addresses, AddressMap):
            raise TypeError(f"addresses must be an rtl.register_map.AddressMap, not {addresses!r}")
        self._map = addresses
        check_int("weight_bits", weight_bits, 2, DATA_BITS)
        check_int("membrane_bits", membrane_bits, 2)
        self._thr_hi = threshold_range(membrane_bits)[1]
        check_int("thr_init", thr_init, 1, self._thr_hi)
        if not isinstance(training, bool):
            raise TypeError(f"training must be a bool, not {training!r}")
        if not isinstance(on_chip_weights, bool):
            raise TypeError(f"on_chip_weights must be a bool, not {on_chip_weights!r}")
        self._training, self._on_chip = training, on_chip_weights
        self._weight_latency = check_int("weight_latency", weight_latency, 0)
        n, lanes = len(addresses.depths), addresses.lanes
        super().__init__(
            {
                "bus": In(MmioSignature(addresses.addr_bits)),
                "busy": In(1),
                "result": In(1),
                "stall": In(1),
                "sample_start": In(1),
                "backward": In(1),
                "update": In(1),
                "events": In(n),
                "memory_error": In(1),
                "weight_base": Out(DATA_BITS),
                "dropout_state": In(DATA_BITS),
                "rounding_state": In(DATA_BITS),
                "threshold": Out(signed(membrane_bits), init=thr_init).array(n),
                "mode": Out(1),
                "lr_int": Out(DATA_BITS),
                "weight_word": Out(index_shape(max(addresses.depths))),
                "weight_lane": Out(index_shape(lanes)),
                "weight_layer": Out(addresses.layer_bits),
                "weight_data": Out(signed(weight_bits)),
                "weight_we": Out(n),
                "weight_rdata": In(data.ArrayLayout(signed(weight_bits), lanes)).array(n),
            }
        )

    @classmethod
    def for_config(cls, cfg: Config, addresses: AddressMap) -> HostBus:
        """The register file of the accelerator for ``cfg`` (cores' read latency)."""
        c = constants(cfg)
        return cls(
            addresses,
            weight_bits=c.weight_bits,
            membrane_bits=c.membrane_bits,
            thr_init=c.thr_eval,
            training=cfg.hardware.training,
            weight_latency=NeuronCore.READ_LATENCY,
            on_chip_weights=cfg.hardware.weights == "on-chip",
        )

    @property
    def addresses(self) -> AddressMap:
        return self._map

    @property
    def read_latency(self) -> int:
        """Cycles from ``bus.addr`` to ``bus.rdata``, registers and weights alike."""
        return self._weight_latency + self.PICK_CYCLES

    def elaborate(self, platform: object) -> Module:
        m = Module()
        amap, regs, bus = self._map, self._map.regs, self.bus
        lb, wb, yb = amap.lane_bits, amap.word_bits, amap.layer_bits
        is_weight = bus.addr[-1]
        lane = bus.addr[:lb]
        word = bus.addr[lb : lb + wb]
        layer = bus.addr[lb + wb : lb + wb + yb]
        reg_addr = bus.addr[: amap.addr_bits - 1]

        counters = self._counters(m)
        m.d.comb += [
            self.weight_word.eq(word),
            self.weight_lane.eq(lane),
            self.weight_layer.eq(layer),
            self.weight_data.eq(bus.wdata),
        ]
        in_layer = [
            (word < depth) & (lane < amap.lanes) & (layer == l) & self._on_chip
            for l, depth in enumerate(amap.depths)
        ]
        m.d.comb += self.weight_we.eq(Mux(bus.we & is_weight & ~self.busy, Cat(*in_layer), 0))

        # writes: refused while busy (ERR_BUSY) or when the address or value is bad (ERR_WRITE)
        err_busy, err_write = Signal(), Signal()
        weight_ok = (layer < len(amap.depths)) & (lane < amap.lanes)
        weight_ok &= Array(Const(d, wb + 1) for d in amap.depths)[layer] > word
        weight_ok &= self._on_chip
        with m.If(bus.we & is_weight):
            with m.If(self.busy):
                m.d.sync += err_busy.eq(1)
            with m.Elif(~weight_ok):
                m.d.sync += err_write.eq(1)
        wdata = bus.wdata.as_signed()
        thr_ok = (wdata > 0) & (wdata <= self._thr_hi)
        mode_max = Mode.TRAINING if self._training else Mode.INFERENCE
        with m.If(bus.we & ~is_weight), m.Switch(reg_addr):
            with m.Case(regs.STATUS):
                with m.If(bus.wdata & Status.ERR_BUSY):
                    m.d.sync += err_busy.eq(0)
                with m.If(bus.wdata & Status.ERR_WRITE):
                    m.d.sync += err_write.eq(0)
            with m.Case(regs.STALLS):
                m.d.sync += counters.stalls.eq(0)
            for l, thr in enumerate(self.threshold):
                with m.Case(regs.THRESHOLD + l):
                    with m.If(self.busy):
                        m.d.sync += err_busy.eq(1)
                    with m.Elif(thr_ok):
                        m.d.sync += thr.eq(wdata)
                    with m.Else():
                        m.d.sync += err_write.eq(1)
            with m.Case(regs.MODE):
                with m.If(self.busy):
                    m.d.sync += err_busy.eq(1)
                with m.Elif(bus.wdata > mode_max):
                    m.d.sync += err_write.eq(1)
                with m.Else():
                    m.d.sync += self.mode.eq(bus.wdata)
            with m.Case(regs.WEIGHT_BASE):
                with m.If(self.busy):
                    m.d.sync += err_busy.eq(1)
                with m.Else():
                    m.d.sync += self.weight_base.eq(bus.wdata)
            with m.Case(regs.LR_INT):
                with m.If(self.busy):
                    m.d.sync += err_busy.eq(1)
                with m.Else():
                    m.d.sync += self.lr_int.eq(bus.wdata)
            with m.Default():
                m.d.sync += err_write.eq(1)

        # register reads: registered, then delayed to the weights' latency
        reg_rdata = Signal(DATA_BITS)
        values = {
            regs.STATUS: Cat(self.busy, self.result, err_busy, err_write, self.memory_error),
            regs.WEIGHT_BASE: self.weight_base,
            regs.CYCLES: counters.cycles,
            regs.STALLS: counters.stalls,
            regs.MODE: self.mode,
            regs.LR_INT: self.lr_int,
            regs.CYCLES_BACKWARD: counters.cycles_backward,
            regs.CYCLES_UPDATE: counters.cycles_update,
            regs.DROPOUT_STATE: self.dropout_state,
            regs.ROUNDING_STATE: self.rounding_state,
        }
        for l, thr in enumerate(self.threshold):
            values[regs.THRESHOLD + l] = thr.as_signed()
            values[regs.EVENTS + l] = counters.events[l]
        with m.Switch(Mux(is_weight, 0, reg_addr)):  # a weight address names no register
            for addr, value in values.items():
                with m.Case(addr):
                    m.d.sync += reg_rdata.eq(Mux(is_weight, 0, value))
            with m.Default():
                m.d.sync += reg_rdata.eq(0)
        # weights come out of the cores weight_latency cycles after the address; each
        # layer's lane is picked into a register, then the layer: the register data and
        # the selects wait for them
        lat = self._weight_latency
        was_lane = delay(m, lane, lat, "was_lane")
        picked = [
            delay(m, Array(rdata[j] for j in range(amap.lanes))[was_lane], 1, f"pick{l}")
            for l, rdata in enumerate(self.weight_rdata)
        ]
        was_weight = delay(m, is_weight & ~self.busy, lat + 1, "was_weight")
        was_layer = delay(m, layer, lat + 1, "was_layer")
        reg_late = delay(m, reg_rdata, lat, "reg_rdata")
        m.d.sync += bus.rdata.eq(Mux(was_weight, Array(picked)[was_layer], reg_late))  # sign-ext
        return m

    def _counters(self, m: Module) -> _Counters:
        """The counting registers; ``STALLS`` is cleared by a bus write (issued after this,
        so the write wins), the others by ``sample_start``."""
        n = len(self._map.depths)
        counters = _Counters(
            cycles=Signal(DATA_BITS, name="cycles"),
            stalls=Signal(DATA_BITS, name="stalls"),
            cycles_backward=Signal(DATA_BITS, name="cycles_backward"),
            cycles_update=Signal(DATA_BITS, name="cycles_update"),
            events=[Signal(DATA_BITS, name=f"events{l}") for l in range(n)],
        )
        strobes = [
            (self.busy, counters.cycles),
            (self.stall, counters.stalls),
            (self.backward, counters.cycles_backward),
            (self.update, counters.cycles_update),
            *zip(self.events, counters.events, strict=True),
        ]
        for strobe, counter in strobes:
            with m.If(strobe):
                m.d.sync += counter.eq(counter + 1)
        with m.If(self.sample_start):
            m.d.sync += [
                counters.cycles.eq(0),
                counters.cycles_backward.eq(0),
                counters.cycles_update.eq(0),
                *(e.eq(0) for e in counters.events),
            ]
        return counters


class _Counters(NamedTuple):
    """The counting registers of :class:`HostBus` (each ``DATA_BITS`` wide)."""

    cycles: Signal
    stalls: Signal
    cycles_backward: Signal
    cycles_update: Signal
    events: list[Signal]


#: Cycles from a bus address to its ``rdata`` on the accelerator: the weight memories'
#: read latency, then the lane and the layer picks (every bus read, registers too).
READ_LATENCY = NeuronCore.READ_LATENCY + HostBus.PICK_CYCLES
