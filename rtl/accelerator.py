"""Top level: encoder and one neuron core per layer running a whole sample (inference).

Schedule (docs/architecture.md has the diagram). A sample is ``T + 1`` phases.
In phase ``s`` the encoder computes step ``s`` (if ``s < T``) while every core
computes its step ``s - 1`` (if ``s >= 1``) from the spike vector its producer
wrote in phase ``s - 1``. That is the spec's one-step delay for layers > 0, and
no delay for layer 0 because the encoder runs one phase ahead. Each producer
owns a spike vector (a register, one word = ``lanes`` bits) that it writes
during the phase, and its consumer scans a copy taken at the start of the
phase (``LAUNCH``); a phase ends when every block is done (a barrier). A
producer writes every word of its vector in every phase, so nothing needs
clearing but at the start of a sample.

Host interface:

- ``pixels``: stream of one 8-bit pixel per transfer, ``n_in`` transfers per
  sample in index order; the sample starts after the last one. ``ready`` is low
  while a sample runs or its result waits (the host's extra pixels stall, and
  the cycles are counted in ``STALLS``).
- ``result``: one transfer per sample: per-class spike counts, the class with
  strictly the most spikes and ``valid_class`` (0 on a tie; ``cls`` is then
  all ones, :attr:`Accelerator.no_class`).
- ``bus``: memory-mapped port (:class:`MmioSignature`) for weights and the
  registers of :class:`RegisterMap`. Writes while a sample runs are ignored and
  set ``STATUS.ERR_BUSY``; writes to a bad address or of a bad value are
  ignored and set ``STATUS.ERR_WRITE``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from desire.config import Config
from golden.fixed import constants
from rtl import check_int, index_shape
from rtl.desire_unit import DesireUnit, q_shape, ternary
from rtl.encoder import PIXEL_BITS, Encoder
from rtl.neuron_core import NeuronCore
from rtl.pipeline import delay
from rtl.prng import XorShift32
from rtl.update_unit import UpdateUnit

__all__ = [
    "DATA_BITS",
    "READ_LATENCY",
    "Accelerator",
    "CycleReport",
    "MmioSignature",
    "Mode",
    "RegisterMap",
    "SpikeScanner",
    "Status",
    "TrainingCycles",
    "cycle_model",
    "training_cycle_model",
]

#: Width of the memory-mapped data bus.
DATA_BITS = 32
#: Cycles from a bus address to its ``rdata``: the weight memories' read latency, the
#: lane pick and the layer pick (every bus read, registers too, takes as long).
READ_LATENCY = NeuronCore.READ_LATENCY + 2
#: Cycles from a memory read to the training units' inputs: the weight memories'
#: read latency; the small memories' outputs are registered as often.
_ISSUE_TO_UNIT = NeuronCore.READ_LATENCY
#: Cycles from an update row's ``row_load`` (state ``UPD_DECIDE``) to its first
#: ``word_valid`` without wait states: ``UPD_WORDS`` (issue), the reads.
_LOAD_TO_WORD = 1 + _ISSUE_TO_UNIT
# After a row's last word issue, UPD_ROW, UPD_LOAD and UPD_CHECK take 3 cycles and the next
# row_load comes in UPD_DECIDE: no earlier than one cycle before that word reaches the
# update unit, as the unit requires.
assert _ISSUE_TO_UNIT - 1 <= 4, "the update unit's row_load would overtake a word"


class Status(enum.IntFlag):
    """Bits of the ``STATUS`` register; the error bits are sticky, write 1 to clear."""

    BUSY = 1  # a sample is running
    RESULT = 2  # a result waits on the result stream
    ERR_BUSY = 4  # a weight or threshold write arrived while busy and was ignored
    ERR_WRITE = 8  # a write to a bad address or of a bad value was ignored


class RegisterMap:
    """Word addresses of the registers (bus address MSB = 0).

    ``STATUS`` (RW1C errors), ``CYCLES`` (R: cycles of the last sample, from the
    last pixel to the result), ``STALLS`` (R, any write clears: cycles the host
    offered a pixel that was not accepted), ``THRESHOLD + l`` (RW: threshold of
    layer l, > 0 and inside the membrane range, reset value ``thr_eval``),
    ``EVENTS + l`` (R: input spikes layer l processed in the last sample).
    Training (docs/architecture.md, "Training"): ``MODE`` (RW: bit 0 = train),
    ``LR_INT`` (RW: learning-rate register), ``CYCLES_BACKWARD`` and
    ``CYCLES_UPDATE`` (R: the parts of ``CYCLES`` spent in the desire and update
    passes of the last sample), ``DROPOUT_STATE`` and ``ROUNDING_STATE`` (R: the
    two xorshift32 states, for checking and replay).
    """

    STATUS = 0
    CYCLES = 1
    STALLS = 2
    THRESHOLD = 4

    def __init__(self, n_layers: int) -> None:
        self.n_layers = check_int("n_layers", n_layers, 1)
        self.EVENTS = self.THRESHOLD + n_layers
        self.MODE = self.EVENTS + n_layers
        self.LR_INT = self.MODE + 1
        self.CYCLES_BACKWARD = self.MODE + 2
        self.CYCLES_UPDATE = self.MODE + 3
        self.DROPOUT_STATE = self.MODE + 4
        self.ROUNDING_STATE = self.MODE + 5
        self.size = self.MODE + 6


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


class SpikeScanner(wiring.Component):
    """Turns a spike bit vector into a stream of indices of the set bits, lowest first.

    Why a scanner rather than an index list written by the producer: the
    producers emit ``lanes`` spikes per cycle, which would need ``lanes`` list
    writes per cycle; a bit vector takes them in one. The scanner skips a
    silent word in one cycle while the core is still busy with the previous
    event (``B`` cycles per event), so silent inputs cost no core cycles unless
    more than ``B - 1`` silent words follow each other.

    Ports
    -----
    vector : In(words * width)
        Spike vector; must hold still from ``start`` until ``done``.
    start : In(1)
        Strobe: scan from word 0.
    events : Out(stream.Signature(range(words * width)))
        Indices of the set bits.
    done : Out(1)
        Every index was accepted (also high after reset).
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


@dataclass
class _TrainSignals:
    """Registers the training states and the training datapath share."""

    label: Signal  # class index of the sample
    blk: Signal  # block within a row (hidden neuron g, or update row i)
    addr: Signal  # running weight-word address (g * B + b, or i * B + b)
    row_word: Signal  # g or i as (word, lane) of its spike-train / desire memory
    row_lane: Signal
    row_idx: Signal  # g or i
    drain: Signal  # cycles spent waiting for a unit's pipeline to drain
    issue_out: Signal  # this cycle's reads are for the output-layer desire
    issue_mac: list[Signal]  # ... for a MAC of layer l's hidden desire
    issue_upd: list[Signal]  # ... for an update word of layer l


class Mode(enum.IntEnum):
    """Values of the ``MODE`` register."""

    INFERENCE = 0
    TRAINING = 1


class Accelerator(wiring.Component):
    """The accelerator for ``cfg``; ``weights`` (optional) initialise the memories.

    In ``MODE = TRAINING`` a sample is ``n_in`` pixels and then one label
    transfer (the class index on the same stream); after the forward pass the
    desire unit and the update unit change the weights in place, then the
    result (the training forward pass's counts and class) is sent. With
    ``hardware.training = false`` none of the learning hardware is built:
    ``MODE = TRAINING`` is refused (``ERR_WRITE``) and the training registers
    read 0.

    Ports
    -----
    pixels : In(stream.Signature(8))
        Pixels of one sample, in index order (module docstring).
    result : Out(stream.Signature(result_layout))
        ``counts`` (ArrayLayout(unsigned(bits(T)), classes)), ``cls``, ``valid_class``.
    bus : In(MmioSignature(addr_width))
        Weights and registers (:class:`RegisterMap`).
    """

    def __init__(self, cfg: Config, weights: list[np.ndarray] | None = None) -> None:
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a desire.config.Config, not {cfg!r}")
        self._cfg = cfg
        self._c = c = constants(cfg)
        if weights is not None and len(weights) != c.n_linear:
            raise ValueError(f"expected {c.n_linear} weight layers, got {len(weights)}")
        self._lanes = cfg.hardware.lanes
        self._encoder = Encoder(c.layers[0], self._lanes)
        self._cores = [
            NeuronCore.for_layer(cfg, l, None if weights is None else weights[l])
            for l in range(c.n_linear)
        ]
        self._training = cfg.hardware.training
        if self._training:
            self._desire = DesireUnit.for_config(cfg)
            self._update = UpdateUnit.for_config(cfg)
            self._dropout_rng = XorShift32(c.dropout_seed)
            self._rounding_rng = XorShift32(c.rounding_seed)
        self.regs = RegisterMap(c.n_linear)
        self._lane_bits = ceil_log2(self._lanes)
        self._word_bits = max(ceil_log2(core.depth) for core in self._cores)
        self._layer_bits = ceil_log2(c.n_linear)
        field_bits = self._layer_bits + self._word_bits + self._lane_bits
        self._addr_bits = 1 + max(ceil_log2(self.regs.size), field_bits)
        n_cls = c.layers[-1]
        self.result_layout = data.StructLayout(
            {
                "counts": data.ArrayLayout(unsigned(c.tsteps.bit_length()), n_cls),
                "cls": unsigned(n_cls.bit_length()),
                "valid_class": 1,
            }
        )
        super().__init__(
            {
                "pixels": In(stream.Signature(PIXEL_BITS)),
                "result": Out(stream.Signature(self.result_layout)),
                "bus": In(MmioSignature(self._addr_bits)),
            }
        )

    @property
    def config(self) -> Config:
        return self._cfg

    @property
    def training(self) -> bool:
        """Whether the on-chip learning units are built (``hardware.training``)."""
        return self._training

    @property
    def addr_bits(self) -> int:
        return self._addr_bits

    @property
    def no_class(self) -> int:
        """``cls`` of a tie: all ones, never a class index."""
        return (1 << self._c.layers[-1].bit_length()) - 1

    def weight_address(self, layer: int, out: int, inp: int) -> int:
        """Bus address of weight ``w[out, inp]`` of weight layer ``layer``."""
        c = self._c
        check_int("layer", layer, 0, c.n_linear - 1)
        check_int("out", out, 0, c.layers[layer + 1] - 1)
        check_int("inp", inp, 0, c.layers[layer] - 1)
        block, lane = divmod(out, self._lanes)
        word = inp * self._cores[layer].blocks + block
        field = (((layer << self._word_bits) | word) << self._lane_bits) | lane
        return (1 << (self._addr_bits - 1)) | field

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p = self._lanes
        m.submodules.encoder = enc = self._encoder
        if self._training:
            m.submodules.desire = self._desire
            m.submodules.update = self._update
            m.submodules.dropout_rng = self._dropout_rng
            m.submodules.rounding_rng = self._rounding_rng
        for l, core in enumerate(self._cores):
            m.submodules[f"core{l}"] = core
        self._mode = Signal(1)
        self._lr_int = Signal(DATA_BITS)
        self._masks = self._keep_masks(m)

        # spike vectors: producer 0 is the encoder, l + 1 is core l; each written during a
        # phase, copied at the next LAUNCH for its consumer to scan (the scanners read a
        # register that holds still, behind no multiplexer)
        sizes = [enc.words] + [core.blocks for core in self._cores[:-1]]
        vectors = [
            (Signal(n * p, name=f"spikes{k}"), Signal(n * p, name=f"spikes{k}_scan"))
            for k, n in enumerate(sizes)
        ]
        scanners = []
        for l, core in enumerate(self._cores):
            m.submodules[f"scanner{l}"] = scan = SpikeScanner(sizes[l], p)
            m.d.comb += [
                scan.vector.eq(vectors[l][1]),
                core.events.payload.eq(scan.events.payload),
                core.events.valid.eq(scan.events.valid),
                scan.events.ready.eq(core.events.ready),
            ]
            scanners.append(scan)

        producers = [(enc.spk_valid, enc.spk_word, enc.spk_bits)] + [
            (core.out_valid, core.out_block, core.out_spikes) for core in self._cores[:-1]
        ]
        for (vec, _), (valid, word, bits) in zip(vectors, producers, strict=True):
            with m.If(valid):
                m.d.sync += vec.word_select(word, p).eq(bits)

        counts = self._class_counts(m)
        self._phase = Signal(range(self._c.tsteps + 1))
        if self._training:
            self._train_memories(m)
            self._training_datapath(m)
        self._train_word = [
            Signal.like(core.w_word, name=f"train_word{l}") for l, core in enumerate(self._cores)
        ]
        self._train_access = Signal()
        thresholds, busy = self._control(m, vectors, scanners, counts)
        for core, thr in zip(self._cores, thresholds, strict=True):
            m.d.comb += core.threshold.eq(thr)
        self._bus(m, thresholds, busy)
        return m

    def _keep_masks(self, m: Module) -> list[Signal | None]:
        """Dropout keep masks: a register per neuron layer with dropout, all ones in inference.

        Drawn by the ``MASK`` state, one bit per cycle shifted in from the top, so
        that draw ``j`` ends at bit ``j`` without any decoding.
        """
        c = self._c
        masks = [
            Signal(c.layers[j], name=f"keep{j}") if c.drop_p[j] > 0 and self._training else None
            for j in range(c.n_linear)
        ]
        ports = [self._encoder.keep] + [core.keep for core in self._cores]
        for j, port in enumerate(ports):
            ones = (1 << c.layers[j]) - 1
            mask = masks[j] if j < c.n_linear else None
            training = self._mode == Mode.TRAINING
            m.d.comb += port.eq(ones if mask is None else Mux(training, mask, ones))
        return masks

    def _train_memories(self, m: Module) -> None:
        """Spike-train memories (per neuron layer) and desire memories (per non-input layer).

        Train memory ``j``: word ``w`` holds ``T`` elements of ``lanes`` bits, element
        ``t`` = the spikes neuron layer ``j``'s word ``w`` emitted at step ``t``
        (write granularity ``lanes``: each fire pass or encoder step writes its
        element). Desire memory ``j``: word ``b`` holds the ternary desire ``q`` of
        the block's neurons (lane-granular writes, one hidden neuron at a time).
        """
        p, tsteps = self._lanes, self._c.tsteps
        enc, cores = self._encoder, self._cores
        step = Signal(range(tsteps + 1))  # the step the cores compute in this phase
        m.d.comb += step.eq(self._phase - 1)
        producers = [(enc.words, enc.spk_valid, enc.spk_word, enc.spk_bits, self._phase)] + [
            (core.blocks, core.out_valid, core.out_block, core.out_spikes, step) for core in cores
        ]
        self._train_rd = []
        for j, (words, valid, word, bits, when) in enumerate(producers):
            mem = Memory(shape=unsigned(tsteps * p), depth=max(words, 2), init=[])
            m.submodules[f"trains{j}"] = mem
            wr = mem.write_port(granularity=p)
            m.d.comb += [
                wr.addr.eq(word),
                wr.data.eq(Cat(*[bits] * tsteps)),
                wr.en.eq(Mux(valid, Const(1, tsteps) << when, 0)),
            ]
            self._train_rd.append(mem.read_port())
        self._train_q = [  # registered right behind the memory
            delay(m, rd.data, 1, f"trains_q{j}") for j, rd in enumerate(self._train_rd)
        ]
        self._desire_wr: list = [None]
        self._desire_rd: list = [None]
        for j, core in enumerate(cores, start=1):
            mem = Memory(shape=data.ArrayLayout(q_shape(), p), depth=max(core.blocks, 2), init=[])
            m.submodules[f"desire{j}"] = mem
            self._desire_wr.append(mem.write_port(granularity=1))
            self._desire_rd.append(mem.read_port())

    def _lane_train(self, word: Value, lane: Value | int) -> Value:
        """The ``T``-bit spike train (bit t = step t) of ``lane`` in a train-memory word."""
        p = self._lanes
        return Cat(*(word[t * p : (t + 1) * p].bit_select(lane, 1) for t in range(self._c.tsteps)))

    def _training_datapath(self, m: Module) -> None:
        """Feed the desire and update units from the states' reads, write their results back.

        A state issues memory reads in cycle k and sets ``issue_*``; the data is
        out of the small memories in cycle k + 1 (``s1_*``), in a register right
        behind each in k + 2, and meets the weight word (the cores'
        ``READ_LATENCY``) in cycle k + :data:`_ISSUE_TO_UNIT` (``su_*``), where
        the units take it. Their results come a fixed number of cycles
        later (``out_latency``, ``hid_latency``, ``latency``): the write
        addresses travel along in delay lines.
        """
        c, p, n_layers = self._c, self._lanes, self._c.n_linear
        du, uu, cores = self._desire, self._update, self._cores
        depth = max(core.depth for core in cores)
        rows = max(c.layers[:-1])
        drain = max(du.out_latency, du.hid_latency, uu.latency) + _ISSUE_TO_UNIT
        t = self._ts = _TrainSignals(
            label=Signal(PIXEL_BITS),
            blk=Signal(range(max(core.blocks for core in cores) + 1)),
            addr=Signal(range(depth + 1)),
            row_word=Signal(range(-(-rows // p) + 1)),
            row_lane=Signal(index_shape(p)),
            row_idx=Signal(range(rows + 1)),
            drain=Signal(range(drain + 1)),
            issue_out=Signal(),
            issue_mac=[Signal(name=f"issue_mac{l}") for l in range(n_layers)],
            issue_upd=[Signal(name=f"issue_upd{l}") for l in range(n_layers)],
        )
        s1_out, s1_blk = Signal(), Signal.like(t.blk)
        s1_mac = [Signal(name=f"s1_mac{l}") for l in range(n_layers)]
        s1_upd = [Signal(name=f"s1_upd{l}") for l in range(n_layers)]
        s1_first, s1_last, s1_addr = Signal(), Signal(), Signal.like(t.addr)
        s1_g = Cat(Signal.like(t.row_word), Signal.like(t.row_lane), Signal.like(t.row_idx))
        m.d.sync += [s1_out.eq(t.issue_out), s1_blk.eq(t.blk), s1_addr.eq(t.addr)]
        m.d.sync += [s1_first.eq(t.blk == 0), s1_g.eq(Cat(t.row_word, t.row_lane, t.row_idx))]
        for l in range(n_layers):
            m.d.sync += [s1_mac[l].eq(t.issue_mac[l]), s1_upd[l].eq(t.issue_upd[l])]
        m.d.comb += uu.lr_int.eq(self._lr_int)
        # su_*: the cycle the units take the data, _ISSUE_TO_UNIT after the read
        at_unit = _ISSUE_TO_UNIT - 1
        su_out, su_blk, su_first, su_addr, su_g = (
            delay(m, x, at_unit, n)
            for x, n in (
                (s1_out, "su_out"),
                (s1_blk, "su_blk"),
                (s1_first, "su_first"),
                (s1_addr, "su_addr"),
                (s1_g, "su_g"),
            )
        )
        su_last = delay(m, s1_last, at_unit, "su_last")
        # per layer: the update row's train (as the layer saw it: layer l > 0 saw neuron layer
        # l's step t - 1 at its step t) and whether it never spiked, selected from the train
        # register and registered, so that the sequencer and the unit start from registers
        self._row_train, self._row_silent = [], []
        for l in range(n_layers):
            trains = [self._lane_train(self._train_q[l], j) for j in range(p)]
            if l > 0:
                trains = [Cat(Const(0, 1), x[:-1]) for x in trains]
            train = Cat(*trains).word_select(t.row_lane, c.tsteps)
            spiked = Cat(*(x.any() for x in trains))  # per lane first, then the lane pick
            self._row_train.append(delay(m, train, 1, f"row_train{l}"))
            self._row_silent.append(delay(m, ~spiked.bit_select(t.row_lane, 1), 1, f"silent{l}"))
        su_mac = [delay(m, x, at_unit, f"su_mac{l}") for l, x in enumerate(s1_mac)]
        su_upd = [delay(m, x, at_unit, f"su_upd{l}") for l, x in enumerate(s1_upd)]
        trains = [delay(m, q, at_unit - 1, f"trains_u{j}") for j, q in enumerate(self._train_q)]
        desires = [None] + [
            delay(m, rd.data, at_unit, f"desire_u{j}")
            for j, rd in enumerate(self._desire_rd)
            if rd is not None
        ]

        # output-layer desire, written out_latency cycles after the read
        top = trains[n_layers]
        with m.If(su_out):
            m.d.comb += du.out_req.eq(1)
            m.d.comb += [du.trains[j].eq(self._lane_train(top, j)) for j in range(p)]
            m.d.comb += [du.label_lane[j].eq(t.label == su_blk * p + j) for j in range(p)]
        out, out_blk = self._desire_wr[n_layers], delay(m, su_blk, du.out_latency, "out_blk")
        with m.If(du.out_valid):
            m.d.comb += [out.addr.eq(out_blk), out.en.eq(-1)]
            m.d.comb += [
                out.data[j].eq(ternary(du.out_active[j], du.out_sign[j], Const(1)))
                for j in range(p)
            ]
        # hidden desire: MACs of one g, its desire written hid_latency cycles after the last
        g = delay(m, su_g, du.hid_latency, "g")
        g_word, g_lane = (
            g[: len(t.row_word)],
            g[len(t.row_word) : len(t.row_word) + len(t.row_lane)],
        )
        g_idx = g[len(t.row_word) + len(t.row_lane) :]
        upd_addr = delay(m, su_addr, uu.latency, "upd_addr")
        for l in range(n_layers):
            above, q_above = trains[l + 1], desires[l + 1]
            with m.If(su_mac[l]):  # one block of S_g += w[h, g] * E_h * q_h
                m.d.comb += [
                    du.mac_valid.eq(1),
                    du.mac_first.eq(su_first),
                    du.mac_last.eq(su_last),
                    du.weights.eq(cores[l].w_rdata),
                    du.q.eq(q_above),
                ]
                m.d.comb += [du.trains[j].eq(self._lane_train(above, j)) for j in range(p)]
            if l > 0:
                hid = delay(m, su_mac[l] & su_last, du.hid_latency, f"hid{l}")
                with m.If(hid):  # desire of hidden neuron g of neuron layer l
                    dw, mask = self._desire_wr[l], self._masks[l]
                    keep = Const(1) if mask is None else mask.bit_select(g_idx, 1)
                    q = ternary(du.hid_active, du.hid_sign, keep)
                    m.d.comb += [dw.addr.eq(g_word), dw.en.eq(1 << g_lane)]
                    m.d.comb += [dw.data[j].eq(q) for j in range(p)]
            with m.If(su_upd[l]):  # one weight word into the update pipeline
                m.d.comb += [
                    uu.word_valid.eq(1),
                    uu.word_first.eq(su_first),
                    uu.gate.eq(q_above),
                    uu.w_old.eq(cores[l].w_rdata),
                ]
                m.d.comb += [uu.post[j].eq(self._lane_train(above, j)) for j in range(p)]
            with m.If(delay(m, su_upd[l], uu.latency, f"upd{l}")):  # ... and its write-back
                m.d.comb += [
                    cores[l].u_we.eq(1),
                    cores[l].u_addr.eq(upd_addr),
                    cores[l].u_data.eq(uu.w_new),
                ]
        self._s1_last = s1_last

    def _class_counts(self, m: Module) -> list[Signal]:
        """Spike counters of the output neurons, fed by the last core's fire pass."""
        last, p = self._cores[-1], self._lanes
        counts = [Signal(self._c.tsteps.bit_length(), name=f"count{n}") for n in range(last.n_out)]
        for n, cnt in enumerate(counts):
            block, lane = divmod(n, p)
            with m.If(last.out_valid & (last.out_block == block) & last.out_spikes[lane]):
                m.d.sync += cnt.eq(cnt + 1)
        return counts

    def _control(
        self,
        m: Module,
        vectors: list[tuple[Signal, Signal]],
        scanners: list[SpikeScanner],
        counts: list[Signal],
    ) -> tuple[list[Signal], Signal]:
        """Pixel intake, the phase sequencer, arg-max and result; returns (thresholds, busy)."""
        c, enc, cores = self._c, self._encoder, self._cores
        n_layers, n_cls = c.n_linear, c.layers[-1]
        self._cycles = cycles = Signal(DATA_BITS)
        self._events = events = [Signal(DATA_BITS, name=f"events{l}") for l in range(n_layers)]
        thresholds = [
            Signal(signed(c.membrane_bits), name=f"threshold{l}", init=c.thr_eval)
            for l in range(n_layers)
        ]
        busy = Signal()
        self._cycles_bwd = Signal(DATA_BITS)
        self._cycles_upd = Signal(DATA_BITS)
        pix_word = Signal(index_shape(enc.words))
        pix_lane = Signal(index_shape(self._lanes))
        # the pixel index, and whether it is the sample's last, kept in registers so that
        # the sample start (which clears counters) hangs off one flip-flop
        pix_next = Signal(range(c.layers[0] + 1))
        last_pixel = Signal(init=c.layers[0] == 1)
        phase = self._phase
        fired = Signal(n_layers)
        k = Signal(range(n_cls))
        best = Signal.like(counts[0])
        best_idx = Signal(range(n_cls))
        tie = Signal()

        m.d.comb += [
            enc.pix_word.eq(pix_word),
            enc.pix_lane.eq(pix_lane),
            enc.pix_data.eq(self.pixels.payload),
            self.result.payload.cls.eq(Mux(tie, self.no_class, best_idx)),
            self.result.payload.valid_class.eq(~tie),
        ]
        m.d.comb += [self.result.payload.counts[n].eq(cnt) for n, cnt in enumerate(counts)]
        for l, core in enumerate(cores):
            with m.If(core.events.valid & core.events.ready):
                m.d.sync += events[l].eq(events[l] + 1)

        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += self.pixels.ready.eq(1)
                with m.If(self.pixels.valid):
                    m.d.comb += enc.pix_we.eq(1)
                    m.d.sync += [pix_lane.eq(pix_lane + 1), pix_next.eq(pix_next + 1)]
                    with m.If(pix_lane == self._lanes - 1):
                        m.d.sync += [pix_lane.eq(0), pix_word.eq(pix_word + 1)]
                    m.d.sync += last_pixel.eq(pix_next == c.layers[0] - 2)  # the next one is
                    with m.If(last_pixel):
                        m.d.sync += [pix_lane.eq(0), pix_word.eq(0), pix_next.eq(0), phase.eq(0)]
                        m.d.sync += last_pixel.eq(c.layers[0] == 1)
                        m.d.sync += [cycles.eq(0), *[e.eq(0) for e in events]]
                        m.d.sync += [cnt.eq(0) for cnt in counts]
                        # layer l > 0 sees no spikes at t = 0: the cores' vectors start at 0
                        # (the encoder writes all of its vector in phase 0)
                        m.d.sync += [work.eq(0) for work, _ in vectors[1:]]
                        m.d.sync += [self._cycles_bwd.eq(0), self._cycles_upd.eq(0)]
                        if self._training:
                            with m.If(self._mode == Mode.TRAINING):
                                m.next = "LABEL"
                            with m.Else():
                                m.next = "LAUNCH"
                        else:
                            m.next = "LAUNCH"
            with m.State("LAUNCH"):
                m.d.comb += [busy.eq(1), enc.start.eq(phase != c.tsteps), enc.first.eq(phase == 0)]
                for core, scan in zip(cores, scanners, strict=True):
                    m.d.comb += [core.clear.eq(phase == 0), scan.start.eq(phase != 0)]
                m.d.sync += [cycles.eq(cycles + 1), fired.eq(0)]
                m.d.sync += [scan.eq(work) for work, scan in vectors]  # last phase's spikes
                m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += busy.eq(1)
                m.d.sync += cycles.eq(cycles + 1)
                running = phase != 0
                done = [~enc.busy]
                for l, (core, scan) in enumerate(zip(cores, scanners, strict=True)):
                    with m.If(running & ~fired[l] & scan.done & core.idle):
                        m.d.comb += core.fire.eq(1)
                        m.d.sync += fired[l].eq(1)
                    done.append(core.idle & (~running | fired[l]))
                with m.If(Cat(*done).all()):
                    with m.If(phase == c.tsteps):
                        m.d.sync += k.eq(0)
                        m.next = "ARGMAX"
                    with m.Else():
                        m.d.sync += phase.eq(phase + 1)
                        m.next = "LAUNCH"
            with m.State("ARGMAX"):
                m.d.comb += busy.eq(1)
                m.d.sync += [cycles.eq(cycles + 1), k.eq(k + 1)]
                cur = Array(counts)[k]
                with m.If(k == 0):
                    m.d.sync += [best.eq(cur), best_idx.eq(0), tie.eq(0)]
                with m.Elif(cur > best):
                    m.d.sync += [best.eq(cur), best_idx.eq(k), tie.eq(0)]
                with m.Elif(cur == best):
                    m.d.sync += tie.eq(1)
                with m.If(k == n_cls - 1):
                    if self._training:
                        with m.If(self._mode == Mode.TRAINING):
                            m.next = "BWD_OUT"
                        with m.Else():
                            m.next = "RESULT"
                    else:
                        m.next = "RESULT"
            if self._training:
                self._training_states(m, busy)
            with m.State("RESULT"):
                m.d.comb += self.result.valid.eq(1)
                with m.If(self.result.ready):
                    m.next = "IDLE"
        # one-hot, so that every state test is one bit (yosys keeps the binary code Amaranth
        # picks otherwise: it does not recode a register with an initial value)
        fsm.state.attrs["fsm_encoding"] = "one-hot"
        return thresholds, busy

    def _training_states(self, m: Module, busy: Signal) -> None:
        """FSM states of a training sample after the pixels: label, masks, then after the
        forward pass and arg-max: backward (output, hidden layers top-down) and update."""
        c, p, n_layers, t = self._c, self._lanes, self._c.n_linear, self._ts
        cores, uu = self._cores, self._update
        cycles, bwd, upd = self._cycles, self._cycles_bwd, self._cycles_upd

        def count(m: Module, part: Signal | None) -> None:
            m.d.comb += busy.eq(1)
            m.d.sync += cycles.eq(cycles + 1)
            if part is not None:
                m.d.sync += part.eq(part + 1)

        def next_row(m: Module, n_rows: int, done: str, more: str) -> None:
            """Advance (row_word, row_lane, row_idx); go to ``done`` after the last row."""
            m.d.sync += [t.row_idx.eq(t.row_idx + 1), t.row_lane.eq(t.row_lane + 1)]
            with m.If(t.row_lane == p - 1):
                m.d.sync += [t.row_lane.eq(0), t.row_word.eq(t.row_word + 1)]
            with m.If(t.row_idx == n_rows - 1):
                m.d.sync += [t.row_idx.eq(0), t.row_lane.eq(0), t.row_word.eq(0), t.addr.eq(0)]
                m.next = done
            with m.Else():
                m.next = more

        draws = [(j, c.layers[j]) for j in range(n_layers) if c.drop_p[j] > 0]
        n_draws = sum(n for _, n in draws)
        k = Signal(range(n_draws + 1))
        with m.State("LABEL"):
            m.d.comb += self.pixels.ready.eq(1)
            with m.If(self.pixels.valid):
                m.d.sync += [t.label.eq(self.pixels.payload), k.eq(0)]
                m.next = "MASK" if n_draws else "LAUNCH"
        if n_draws:
            with m.State("MASK"):  # one dropout-stream draw per neuron, layer by layer
                count(m, None)
                rng = self._dropout_rng
                top = rng.value[32 - c.prob_bits :]
                m.d.comb += rng.draw.eq(1)
                m.d.sync += k.eq(k + 1)
                start = 0
                for j, n in draws:
                    mask = self._masks[j]
                    with m.If((k < start + n) if start == 0 else (k >= start) & (k < start + n)):
                        m.d.sync += mask.eq(Cat(mask[1:], top >= c.drop_p[j]))
                    start += n
                with m.If(k == n_draws - 1):
                    m.next = "LAUNCH"

        def drain(m: Module, part: Signal, cycles: int, then: str) -> None:
            """Wait ``cycles`` cycles (a unit's last result is written in the last one)."""
            count(m, part)
            m.d.sync += t.drain.eq(t.drain + 1)
            with m.If(t.drain == cycles - 1):
                m.d.sync += t.drain.eq(0)
                m.next = then

        du = self._desire
        first_update = "UPD_ROW0"
        with m.State("BWD_OUT"):
            count(m, bwd)
            last = cores[-1].blocks - 1
            m.d.comb += [t.issue_out.eq(1), self._train_rd[n_layers].addr.eq(t.blk)]
            m.d.sync += t.blk.eq(t.blk + 1)
            with m.If(t.blk == last):
                m.d.sync += t.blk.eq(0)
                m.next = "BWD_OUT_DRAIN"
        with m.State("BWD_OUT_DRAIN"):
            after = f"BWD_HID{n_layers - 1}" if n_layers > 1 else first_update
            drain(m, bwd, du.out_latency + _ISSUE_TO_UNIT, after)
        for l in range(n_layers - 1, 0, -1):  # desire of neuron layer l from layer l + 1
            blocks = cores[l].blocks
            with m.State(f"BWD_HID{l}"):
                count(m, bwd)
                m.d.comb += [
                    t.issue_mac[l].eq(1),
                    self._train_access.eq(1),
                    self._train_word[l].eq(t.addr),
                    self._train_rd[l + 1].addr.eq(t.blk),
                    self._desire_rd[l + 1].addr.eq(t.blk),
                ]
                m.d.sync += [t.addr.eq(t.addr + 1), t.blk.eq(t.blk + 1)]
                m.d.sync += self._s1_last.eq(t.blk == blocks - 1)
                with m.If(t.blk == blocks - 1):
                    m.d.sync += t.blk.eq(0)
                    next_row(m, c.layers[l], f"BWD_DRAIN{l}", f"BWD_HID{l}")
            with m.State(f"BWD_DRAIN{l}"):  # the MACs and the desire write of the last g
                then = f"BWD_HID{l - 1}" if l > 1 else first_update
                drain(m, bwd, du.hid_latency + _ISSUE_TO_UNIT, then)

        stochastic = c.rounding == "stochastic"
        waits = max(0, uu.load_cycles - _LOAD_TO_WORD)
        for l in range(n_layers):
            blocks = cores[l].blocks
            done = f"UPD_ROW{l + 1}" if l + 1 < n_layers else "UPD_DONE"
            with m.State(f"UPD_ROW{l}"):
                count(m, upd)
                m.d.comb += self._train_rd[l].addr.eq(t.row_word)
                m.next = f"UPD_LOAD{l}"
            with m.State(f"UPD_LOAD{l}"):  # the row's train word into its register
                count(m, upd)
                m.next = f"UPD_CHECK{l}"
            with m.State(f"UPD_CHECK{l}"):  # select the row's train; read the next row's word
                count(m, upd)
                next_word = Mux(t.row_lane == p - 1, t.row_word + 1, t.row_word)
                m.d.comb += self._train_rd[l].addr.eq(next_word)
                m.next = f"UPD_DECIDE{l}"
            with m.State(f"UPD_DECIDE{l}"):  # load the row into the unit, or skip it
                count(m, upd)
                m.d.comb += [uu.row_train.eq(self._row_train[l]), uu.row_load.eq(1)]
                if stochastic:
                    rng = self._rounding_rng
                    m.d.comb += [rng.draw.eq(1), uu.row_rand.eq(rng.value)]
                with m.If(self._row_silent[l]):  # acc = 0 for the whole row: nothing changes
                    m.d.sync += t.addr.eq(t.addr + blocks)
                    next_row(m, c.layers[l], done, f"UPD_CHECK{l}")
                with m.Else():
                    m.next = f"UPD_WAIT{l}" if waits else f"UPD_WORDS{l}"
            if waits:
                with m.State(f"UPD_WAIT{l}"):  # the unit builds the row's traces
                    drain(m, upd, waits, f"UPD_WORDS{l}")
            with m.State(f"UPD_WORDS{l}"):
                count(m, upd)
                m.d.comb += [
                    t.issue_upd[l].eq(1),
                    self._train_access.eq(1),
                    self._train_word[l].eq(t.addr),
                    self._train_rd[l + 1].addr.eq(t.blk),
                    self._desire_rd[l + 1].addr.eq(t.blk),
                ]
                m.d.sync += [t.addr.eq(t.addr + 1), t.blk.eq(t.blk + 1)]
                with m.If(t.blk == blocks - 1):
                    m.d.sync += t.blk.eq(0)
                    next_row(m, c.layers[l], done, f"UPD_ROW{l}")
        with m.State("UPD_DONE"):  # until the write-back of the last word
            drain(m, upd, uu.latency + _ISSUE_TO_UNIT, "RESULT")

    def _bus(self, m: Module, thresholds: list[Signal], busy: Signal) -> None:
        """Register file and weight port behind ``bus``."""
        c, regs, bus = self._c, self.regs, self.bus
        lb, wb_, yb = self._lane_bits, self._word_bits, self._layer_bits
        is_weight = bus.addr[-1]
        lane = bus.addr[:lb]
        word = bus.addr[lb : lb + wb_]
        layer = bus.addr[lb + wb_ : lb + wb_ + yb]
        err_busy, err_write = Signal(), Signal()
        stalls = Signal(DATA_BITS)
        with m.If(self.pixels.valid & ~self.pixels.ready):
            m.d.sync += stalls.eq(stalls + 1)

        wdata = bus.wdata.as_signed()
        thr_hi = (1 << (c.membrane_bits - 1)) - 1
        thr_ok = (wdata > 0) & (wdata <= min(thr_hi, (1 << (DATA_BITS - 1)) - 1))
        for l, core in enumerate(self._cores):
            m.d.comb += [
                core.w_word.eq(Mux(self._train_access, self._train_word[l], word)),
                core.w_lane.eq(lane),
                core.w_data.eq(bus.wdata),
            ]
            ok = (word < core.depth) & (lane < self._lanes) & (layer == l)
            with m.If(bus.we & is_weight & ~busy & ok):
                m.d.comb += core.w_we.eq(1)
        weight_ok = (layer < c.n_linear) & (lane < self._lanes)
        weight_ok &= Array(Const(core.depth, wb_ + 1) for core in self._cores)[layer] > word

        reg_addr = bus.addr[: self._addr_bits - 1]
        with m.If(bus.we & is_weight):
            with m.If(busy):
                m.d.sync += err_busy.eq(1)
            with m.Elif(~weight_ok):
                m.d.sync += err_write.eq(1)
        with m.If(bus.we & ~is_weight), m.Switch(reg_addr):
            with m.Case(regs.STATUS):
                with m.If(bus.wdata & Status.ERR_BUSY):
                    m.d.sync += err_busy.eq(0)
                with m.If(bus.wdata & Status.ERR_WRITE):
                    m.d.sync += err_write.eq(0)
            with m.Case(regs.STALLS):
                m.d.sync += stalls.eq(0)
            for l, thr in enumerate(thresholds):
                with m.Case(regs.THRESHOLD + l):
                    with m.If(busy):
                        m.d.sync += err_busy.eq(1)
                    with m.Elif(thr_ok):
                        m.d.sync += thr.eq(wdata)
                    with m.Else():
                        m.d.sync += err_write.eq(1)
            with m.Case(regs.MODE):
                with m.If(busy):
                    m.d.sync += err_busy.eq(1)
                with m.Elif(bus.wdata > (Mode.TRAINING if self._training else Mode.INFERENCE)):
                    m.d.sync += err_write.eq(1)
                with m.Else():
                    m.d.sync += self._mode.eq(bus.wdata)
            with m.Case(regs.LR_INT):
                with m.If(busy):
                    m.d.sync += err_busy.eq(1)
                with m.Else():
                    m.d.sync += self._lr_int.eq(bus.wdata)
            with m.Default():
                m.d.sync += err_write.eq(1)

        # reads: registered, valid the cycle after the address
        reg_rdata = Signal(DATA_BITS)
        status = Cat(busy, self.result.valid, err_busy, err_write)
        with m.Switch(reg_addr):
            with m.Case(regs.STATUS):
                m.d.sync += reg_rdata.eq(status)
            with m.Case(regs.CYCLES):
                m.d.sync += reg_rdata.eq(self._cycles)
            with m.Case(regs.STALLS):
                m.d.sync += reg_rdata.eq(stalls)
            for l, thr in enumerate(thresholds):
                with m.Case(regs.THRESHOLD + l):
                    m.d.sync += reg_rdata.eq(thr.as_signed())
                with m.Case(regs.EVENTS + l):
                    m.d.sync += reg_rdata.eq(self._events[l])
            with m.Case(regs.MODE):
                m.d.sync += reg_rdata.eq(self._mode)
            with m.Case(regs.LR_INT):
                m.d.sync += reg_rdata.eq(self._lr_int)
            with m.Case(regs.CYCLES_BACKWARD):
                m.d.sync += reg_rdata.eq(self._cycles_bwd)
            with m.Case(regs.CYCLES_UPDATE):
                m.d.sync += reg_rdata.eq(self._cycles_upd)
            if self._training:
                with m.Case(regs.DROPOUT_STATE):
                    m.d.sync += reg_rdata.eq(self._dropout_rng.state)
                with m.Case(regs.ROUNDING_STATE):
                    m.d.sync += reg_rdata.eq(self._rounding_rng.state)
            with m.Default():
                m.d.sync += reg_rdata.eq(0)
        # weights come out of the cores READ_LATENCY cycles after the address; each core's
        # lane is picked into a register, then the layer: the register data and the
        # selects wait for them
        lat = NeuronCore.READ_LATENCY
        was_lane = delay(m, lane, lat, "was_lane")
        picked = [
            delay(m, Array(core.w_rdata[j] for j in range(self._lanes))[was_lane], 1, f"pick{l}")
            for l, core in enumerate(self._cores)
        ]
        was_weight = delay(m, is_weight & ~busy, lat + 1, "was_weight")
        was_layer = delay(m, layer, lat + 1, "was_layer")
        reg_late = delay(m, reg_rdata, lat, "reg_rdata")
        weight_rdata = Array(picked)[was_layer]
        m.d.sync += bus.rdata.eq(Mux(was_weight, weight_rdata, reg_late))  # sign-extends w


@dataclass(frozen=True)
class CycleReport:
    """Cycles of one sample (:func:`cycle_model`) and the bounds they are judged against.

    ``bound_sum`` is sum over steps and layers of input spikes x ``B_l`` (one
    shared set of lanes doing all the synaptic work); ``bound_parallel`` is sum
    over steps of the largest layer's work (this design: one core per layer).
    ``lane_ops`` counts useful lane-cycles (input spikes x ``n_out``).
    """

    cycles: int
    bound_sum: int
    bound_parallel: int
    lane_ops: int


def _core_phase(words: list[int], blocks: int) -> int:
    """Cycle (from the first WAIT cycle) at which a core is done with one phase.

    A literal copy of the scanner / core / fire-pass handshake of the RTL,
    register by register, so the model is exact (tests compare it with ``CYCLES``).
    """
    n_words, depth = len(words), NeuronCore.STAGES
    per_event = max(blocks, NeuronCore.WRITE_DISTANCE)
    ptr = mask = cnt = pass_block = 0
    valid = acc_on = pass_on = fired = False
    stages = [False] * depth  # an op in pipeline stage 1 .. depth
    pass_stages = [False] * depth  # ... and it is a fire or clear
    cycle = 0
    while True:
        ready = not pass_on and not any(pass_stages) and (not acc_on or cnt == per_event - 1)
        scan_done = ptr == n_words and mask == 0 and not valid
        idle = not (acc_on or pass_on or any(stages))
        if idle and fired:
            return cycle
        fire = not fired and scan_done and idle
        take = not valid or ready
        accept = valid and ready
        rest = mask & (mask - 1) if take else mask
        valid = (mask != 0) if take else valid
        if rest == 0 and ptr < n_words:
            mask, ptr = words[ptr], ptr + 1
        else:
            mask = rest
        stages = [(acc_on and cnt < blocks) or pass_on, *stages[:-1]]
        pass_stages = [pass_on, *pass_stages[:-1]]
        if acc_on:
            acc_on, cnt = cnt != per_event - 1, (cnt + 1) % per_event
        if accept:
            acc_on, cnt = True, 0
        if pass_on:
            pass_on, pass_block = pass_block != blocks - 1, (pass_block + 1) % blocks
        elif fire:
            pass_on, pass_block, fired = True, 0, True
        cycle += 1


def _words(spikes: np.ndarray, lanes: int) -> list[int]:
    """A spike vector as the scanner sees it: ``lanes``-bit words, lane j = bit j."""
    n_words = -(-spikes.size // lanes)
    padded = np.zeros(n_words * lanes, dtype=np.int64)
    padded[: spikes.size] = spikes
    weights = 1 << np.arange(lanes, dtype=np.int64)
    return [int(x) for x in padded.reshape(n_words, lanes) @ weights]


def cycle_model(cfg: Config, input_spikes: np.ndarray, spikes: list[np.ndarray]) -> CycleReport:
    """Cycles of one sample from golden's spike trains (``GoldenNet.forward(record=True)``).

    ``input_spikes`` (T, n_in) and ``spikes[l]`` (T, n_l) are one sample's
    encoder and layer outputs. The per-phase handshake is simulated exactly
    (:func:`_core_phase`); phases, the encoder and arg-max are added as the
    sequencer does: ``LAUNCH`` + ``WAIT`` cycles per phase, ``classes`` for arg-max.
    """
    c, p = constants(cfg), cfg.hardware.lanes
    tsteps, n_layers = c.tsteps, c.n_linear
    blocks = [-(-n // p) for n in c.layers[1:]]
    enc_words = -(-c.layers[0] // p)
    total, bound_sum, bound_par, lane_ops = c.layers[-1], 0, 0, 0
    for phase in range(tsteps + 1):
        done = [enc_words + Encoder.STAGES if phase < tsteps else 0]
        work = []
        for l in range(n_layers):
            if phase == 0:
                done.append(blocks[l] + NeuronCore.STAGES)  # clear pass
                continue
            t_in = phase - 1 if l == 0 else phase - 2  # one-step delay for l > 0
            vec = (input_spikes if l == 0 else spikes[l - 1])[t_in] if t_in >= 0 else None
            if vec is None:
                vec = np.zeros(c.layers[l], dtype=bool)
            done.append(_core_phase(_words(vec, p), blocks[l]))
            events = int(vec.sum())
            work.append(events * blocks[l])
            lane_ops += events * c.layers[l + 1]
        total += max(done) + 2
        bound_sum += sum(work)
        bound_par += max(work, default=0)
    return CycleReport(total, bound_sum, bound_par, lane_ops)


@dataclass(frozen=True)
class TrainingCycles:
    """Cycles of one training sample (:func:`training_cycle_model`), split by pass.

    ``forward`` includes the dropout draws, the ``T + 1`` phases and arg-max;
    ``backward`` and ``update`` equal the ``CYCLES_BACKWARD`` and
    ``CYCLES_UPDATE`` registers. ``update_bound`` is the work no P-lane update
    can avoid: one cycle per weight word of every row whose input spiked.
    """

    forward: int
    backward: int
    update: int
    update_bound: int

    @property
    def total(self) -> int:
        """The ``CYCLES`` register of the sample."""
        return self.forward + self.backward + self.update


def training_cycle_model(
    cfg: Config, input_spikes: np.ndarray, spikes: list[np.ndarray]
) -> TrainingCycles:
    """Cycles of one training sample from golden's training spike trains (exact).

    ``input_spikes`` (T, n_in) and ``spikes[l]`` (T, n_l) as in :func:`cycle_model`,
    from ``GoldenNet.train_step(..., record=True).forward``. Counts the states of
    the training sequencer: ``MASK`` (one draw per neuron of each layer with
    dropout), the forward pass (:func:`cycle_model`), ``BWD_OUT`` (``B_L``) and its
    drain (the desire unit's ``out_latency`` + 2), per hidden layer ``l`` one MAC
    cycle per weight word (``n_l * B_l``) and a drain (``hid_latency`` + 2); per
    update layer 2 cycles (first row read, register), per row 2 (load and read
    of the next row's word, decide on silence), per row whose input spiked the
    trace wait, ``B_l`` words and 2 to read the next row again, and a final drain
    (``latency`` + ``_ISSUE_TO_UNIT``, the memory read).
    """
    c, p = constants(cfg), cfg.hardware.lanes
    du, uu = DesireUnit.for_config(cfg), UpdateUnit.for_config(cfg)
    blocks = [-(-n // p) for n in c.layers[1:]]
    draws = sum(n for j, n in enumerate(c.layers[:-1]) if c.drop_p[j] > 0)
    forward = draws + cycle_model(cfg, input_spikes, spikes).cycles
    backward = blocks[-1] + du.out_latency + _ISSUE_TO_UNIT
    backward += sum(
        c.layers[l] * blocks[l] + du.hid_latency + _ISSUE_TO_UNIT for l in range(1, c.n_linear)
    )
    waits = max(0, uu.load_cycles - _LOAD_TO_WORD)
    update, bound = uu.latency + _ISSUE_TO_UNIT, 0
    for l in range(c.n_linear):
        # what layer l saw: the encoder, or neuron layer l one step late (the last step unseen)
        seen = input_spikes if l == 0 else spikes[l - 1][:-1]
        active = seen.any(axis=0)
        n_active = int(active.sum())
        reread = int(active[:-1].sum())  # an active row but the last: read the next row again
        update += 2 + 2 * c.layers[l] + n_active * (waits + blocks[l]) + 2 * reread
        bound += n_active * blocks[l]
    return TrainingCycles(forward, backward, update, bound)
