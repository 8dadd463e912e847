"""Top level: the accelerator for a config, wired from its blocks.

Blocks (docs/architecture.md has the diagram and the schedule):

- :class:`rtl.encoder.Encoder` and the datapath of ``hardware.architecture``:
  ``per-layer``: one :class:`rtl.neuron_core.NeuronCore` per layer,
  and per core a :class:`rtl.spike_scanner.SpikeScanner` over its input's spike
  vector; ``shared``: one core for every layer, fed by one
  :class:`rtl.step_scanner.StepScanner` (:mod:`rtl.shared_pool`).
  Each producer (the encoder, core ``l`` for core ``l + 1``) owns a spike
  vector (a register, one word = ``lanes`` bits) that it writes during a phase;
  its consumer scans a copy taken at the start of the phase. A producer writes
  every word of its vector in every phase, so nothing needs clearing but at the
  start of a sample.
- :class:`rtl.class_counter.ClassCounter`: spike counts of the output layer and
  their arg-max, the result's payload.
- :class:`rtl.sequencer.Sequencer`: pixels, the ``T + 1`` phases, arg-max, result.
- :class:`rtl.host_bus.HostBus`: every register, the counters and the weight port.
- Training (``hardware.training``): :class:`rtl.dropout.DropoutMasks`,
  :class:`rtl.training_sequencer.TrainingSequencer` and
  :class:`rtl.training_datapath.TrainingDatapath`.

Host interface:

- ``pixels``: stream of one 8-bit pixel per transfer, ``n_in`` transfers per
  sample in index order; the sample starts after the last one. ``ready`` is low
  while a sample runs or its result waits (the host's extra pixels stall, and
  the cycles are counted in ``STALLS``).
- ``result``: one transfer per sample: per-class spike counts, the class with
  strictly the most spikes and ``valid_class`` (0 on a tie; ``cls`` is then
  all ones, :attr:`Accelerator.no_class`).
- ``bus``: memory-mapped port (:class:`rtl.host_bus.MmioSignature`) for weights and
  the registers of :class:`RegisterMap`. Writes while a sample runs are ignored
  and set ``STATUS.ERR_BUSY``; writes to a bad address or of a bad value are
  ignored and set ``STATUS.ERR_WRITE``.

:data:`READ_LATENCY`, :class:`Mode`, :class:`RegisterMap` and :class:`Status`, the
host's vocabulary, are importable from here as well as from where they are defined
(:mod:`rtl.host_bus`, :mod:`rtl.register_map`).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from desire.config import Config
from golden.fixed import constants
from rtl import check_int
from rtl.axi import AxiReadSignature, AxiSignature, connect_part
from rtl.axi_weight_reader import pack_words
from rtl.class_counter import ClassCounter
from rtl.dropout import DropoutMasks
from rtl.encoder import PIXEL_BITS, Encoder
from rtl.host_bus import DATA_BITS, READ_LATENCY, HostBus, MmioSignature
from rtl.neuron_core import NeuronCore, weight_rows
from rtl.register_map import AddressMap, Mode, RegisterMap, Status
from rtl.sequencer import Sequencer
from rtl.shared_pool import (
    Learning,
    Producer,
    external_weights,
    shared_core,
    spike_paths,
    weight_ports,
)
from rtl.spike_scanner import SpikeScanner
from rtl.trace import TraceSignature
from rtl.training_datapath import TrainingDatapath
from rtl.training_sequencer import TrainingSchedule, TrainingSequencer

__all__ = ["READ_LATENCY", "Accelerator", "Mode", "RegisterMap", "Status"]


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
    axi : Out(AxiReadSignature), ``weights = external`` only
        The weight table's reader (:class:`rtl.axi_weight_reader.AxiWeightReader`); with
        ``training`` also its writer (:class:`rtl.axi_weight_writer.AxiWeightWriter`),
        all five channels in one port (:class:`rtl.axi.AxiSignature`).
    trace : Out(TraceSignature), ``hardware.trace`` only
        Debug: per layer, every fire pass's spikes and membranes (:mod:`rtl.trace`).
    """

    def __init__(self, cfg: Config, weights: list[np.ndarray] | None = None) -> None:
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a desire.config.Config, not {cfg!r}")
        self._cfg = cfg
        self._c = c = constants(cfg)
        if weights is not None and len(weights) != c.n_linear:
            raise ValueError(f"expected {c.n_linear} weight layers, got {len(weights)}")
        self._lanes = cfg.hardware.lanes
        self._training = cfg.hardware.training
        self._shared = cfg.hardware.architecture == "shared"
        self._external = cfg.hardware.weights == "external"
        self._encoder = Encoder(c.layers[0], self._lanes)
        self._blocks = [-(-n // self._lanes) for n in c.layers[1:]]
        if self._shared:
            self._cores = [shared_core(cfg, weights)]
        else:
            self._cores = [
                NeuronCore.for_layer(cfg, l, None if weights is None else weights[l])
                for l in range(c.n_linear)
            ]
        depths = [n_in * b for n_in, b in zip(c.layers, self._blocks, strict=False)]
        self._classes = ClassCounter(c.layers[-1], self._lanes, c.tsteps)
        self._addresses = AddressMap(depths, self._lanes)
        self.regs = self._addresses.regs
        self.result_layout = self._classes.result_layout
        members = {
            "pixels": In(stream.Signature(PIXEL_BITS)),
            "result": Out(stream.Signature(self.result_layout)),
            "bus": In(MmioSignature(self._addresses.addr_bits)),
        }
        if self._external:
            bus = AxiSignature if self._training else AxiReadSignature
            members["axi"] = Out(bus(DATA_BITS, cfg.hardware.axi_bytes))
        if cfg.hardware.trace:
            trace = TraceSignature(max(self._blocks), self._lanes, c.membrane_bits, c.tsteps)
            members["trace"] = Out(trace).array(c.n_linear)
        super().__init__(members)

    @property
    def config(self) -> Config:
        return self._cfg

    @property
    def training(self) -> bool:
        """Whether the on-chip learning units are built (``hardware.training``)."""
        return self._training

    @property
    def addr_bits(self) -> int:
        return self._addresses.addr_bits

    @property
    def no_class(self) -> int:
        """``cls`` of a tie: all ones, never a class index."""
        return self._classes.no_class

    def weight_image(self, weights: list[np.ndarray]) -> bytes:
        """The external memory's weight table for ``weights`` (one (n_out, n_in) array per
        layer), to be placed at ``WEIGHT_BASE``: the core's flat words
        (:meth:`NeuronCore.word_address`) as :func:`rtl.axi_weight_reader.pack_words`
        lays them out for this bus width."""
        c = self._c
        if len(weights) != c.n_linear:
            raise ValueError(f"expected {c.n_linear} weight layers, got {len(weights)}")
        rows = [row for w in weights for row in weight_rows(np.asarray(w), self._lanes)]
        return pack_words(rows, self._lanes, c.weight_bits, self._cfg.hardware.axi_bytes)

    def table_words(self, layer: int | None = None) -> range:
        """Flat words of the shared pool's weight table (external memory: the words from
        ``WEIGHT_BASE`` that :meth:`weight_image` lays out): all, or weight layer
        ``layer``'s. ValueError for the per-layer architecture (a table per core)."""
        if not self._shared:
            raise ValueError("the per-layer architecture has one weight table per core")
        core = self._cores[0]
        if layer is None:
            return range(core.depth)
        first = core.word_address(layer, 0, 0)
        return range(first, first + core.layers[layer][0] * self._blocks[layer])

    def weight_address(self, layer: int, out: int, inp: int) -> int:
        """Bus address of weight ``w[out, inp]`` of weight layer ``layer``."""
        c = self._c
        check_int("layer", layer, 0, c.n_linear - 1)
        check_int("out", out, 0, c.layers[layer + 1] - 1)
        check_int("inp", inp, 0, c.layers[layer] - 1)
        block, lane = divmod(out, self._lanes)
        return self._addresses.weight(layer, inp * self._blocks[layer] + block, lane)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        enc, cores, classes = self._encoder, self._cores, self._classes
        m.submodules.encoder = enc
        if self._shared:
            m.submodules.core = cores[0]
        else:
            for l, core in enumerate(cores):
                m.submodules[f"core{l}"] = core
        m.submodules.classes = classes
        m.submodules.sequencer = seq = Sequencer.for_config(self._cfg)
        m.submodules.host = host = HostBus.for_config(self._cfg, self._addresses)
        wiring.connect(m, wiring.flipped(self.pixels), seq.pixels)
        wiring.connect(m, wiring.flipped(self.bus), host.bus)

        # the sequencer drives the encoder, the datapath and the arg-max
        m.d.comb += [
            seq.mode.eq(host.mode),
            enc.pix_word.eq(seq.pix_word),
            enc.pix_lane.eq(seq.pix_lane),
            enc.pix_data.eq(seq.pix_data),
            enc.pix_we.eq(seq.pix_we),
            enc.start.eq(seq.encoder_start),
            enc.first.eq(seq.encoder_first),
            seq.encoder_busy.eq(enc.busy),
        ]
        if self._shared:
            memory = self._cfg.hardware.spike_vectors == "memory"
            producers, vectors = spike_paths(m, enc, cores[0], seq, self._lanes, memory=memory)
            core = cores[0]
            m.d.comb += [core.threshold[l].eq(thr) for l, thr in enumerate(host.threshold)]
            taken = core.events.valid & core.events.ready
            events = [taken & (core.events.payload.layer == l) for l in range(len(host.events))]
        else:
            producers = self._per_layer_paths(m, seq, host)
            events = [core.events.valid & core.events.ready for core in cores]
        if self._cfg.hardware.trace:
            self._trace(m, seq)
        output = producers[-1]
        m.d.comb += [
            classes.clear.eq(seq.sample_start),
            classes.spk_valid.eq(output.valid),
            classes.spk_block.eq(output.word),
            classes.spk_bits.eq(output.bits),
            classes.step.eq(seq.argmax),
            seq.argmax_last.eq(classes.last),
            self.result.payload.eq(classes.result),
            self.result.valid.eq(seq.result_valid),
            seq.result_ready.eq(self.result.ready),
        ]

        # the host bus sees what happens and owns the registers
        m.d.comb += [
            host.busy.eq(seq.busy),
            host.result.eq(self.result.valid),
            host.stall.eq(self.pixels.valid & ~self.pixels.ready),
            host.sample_start.eq(seq.sample_start),
            *(host.events[l].eq(e) for l, e in enumerate(events)),
        ]
        learning = self._learning(m, seq, host, producers) if self._training else None
        learn = None if learning is None else learning.datapath
        if self._external:
            axi_bytes = self._cfg.hardware.axi_bytes
            reader, writer = external_weights(m, cores[0], vectors, seq, host, axi_bytes, learning)
            if writer is None:
                wiring.connect(m, reader.axi, wiring.flipped(self.axi))
            else:  # one port: the reader's channels and the writer's
                connect_part(m, reader.axi, self.axi)
                connect_part(m, writer.axi, self.axi)
        elif self._shared:
            weight_ports(m, cores[0], host, learn)
        else:
            self._per_layer_weights(m, host, learn)
        return m

    def _trace(self, m: Module, seq: Sequencer) -> None:
        """Every fire pass's results on the ``trace`` port of its layer, with the phase."""
        for l, port in enumerate(self.trace):
            if self._shared:
                core, hit = self._cores[0], self._cores[0].out_layer == l
            else:
                core, hit = self._cores[l], 1
            m.d.comb += [
                port.valid.eq(core.out_valid & hit),
                port.phase.eq(seq.phase),
                port.block.eq(core.out_block),
                port.spikes.eq(core.out_spikes),
                port.membranes.eq(core.out_membrane),
            ]

    def _per_layer_paths(self, m: Module, seq: Sequencer, host: HostBus) -> list[Producer]:
        """Per layer: its core's sequencer and threshold hookup, and the spike path into
        it (:meth:`_spike_paths`); returns the producer of every neuron layer."""
        cores = self._cores
        for l, core in enumerate(cores):
            m.d.comb += [
                core.clear.eq(seq.clear),
                core.fire.eq(seq.fire[l]),
                seq.core_idle[l].eq(core.idle),
                core.threshold.eq(host.threshold[l]),
            ]
        self._spike_paths(m, seq)
        enc = self._encoder
        return [Producer(enc.spk_valid, enc.spk_word, enc.spk_bits)] + [
            Producer(core.out_valid, core.out_block, core.out_spikes) for core in cores
        ]

    def _per_layer_weights(self, m: Module, host: HostBus, learn: TrainingDatapath | None) -> None:
        """Each core's weight memory on the host's window of its layer (and the training
        units' reads and write-backs of that layer)."""
        for l, core in enumerate(self._cores):
            word: Value = host.weight_word
            if learn is not None:  # the training passes read the weights while busy
                word = Mux(learn.w_read[l], learn.w_word, host.weight_word)
                m.d.comb += [
                    learn.w_rdata[l].eq(core.w_rdata),
                    core.u_we.eq(learn.u_we[l]),
                    core.u_addr.eq(learn.u_addr),
                    core.u_data.eq(learn.u_data),
                ]
            m.d.comb += [
                core.w_word.eq(word),
                core.w_lane.eq(host.weight_lane),
                core.w_data.eq(host.weight_data),
                core.w_we.eq(host.weight_we[l]),
                host.weight_rdata[l].eq(core.w_rdata),
            ]

    def _spike_paths(self, m: Module, seq: Sequencer) -> None:
        """Producer, spike vector, its copy, scanner and core, for every layer.

        The copy is taken at ``launch`` so that the scanner reads a register that
        holds still, behind no multiplexer. Layer ``l > 0`` sees no spikes at
        ``t = 0``: the cores' vectors start at 0 (the encoder writes all of its
        vector in phase 0).
        """
        p, enc = self._lanes, self._encoder
        producers = [(enc.words, enc.spk_valid, enc.spk_word, enc.spk_bits)] + [
            (core.blocks, core.out_valid, core.out_block, core.out_spikes)
            for core in self._cores[:-1]
        ]
        for l, (core, (words, valid, word, bits)) in enumerate(
            zip(self._cores, producers, strict=True)
        ):
            vector = Signal(words * p, name=f"spikes{l}")
            scanned = Signal(words * p, name=f"spikes{l}_scan")
            with m.If(valid):
                m.d.sync += vector.word_select(word, p).eq(bits)
            if l > 0:
                with m.If(seq.sample_start):
                    m.d.sync += vector.eq(0)
            with m.If(seq.launch):
                m.d.sync += scanned.eq(vector)
            m.submodules[f"scanner{l}"] = scan = SpikeScanner(words, p)
            m.d.comb += [
                scan.vector.eq(scanned),
                scan.start.eq(seq.scan),
                seq.scan_done[l].eq(scan.done),
                core.events.payload.eq(scan.events.payload),
                core.events.valid.eq(scan.events.valid),
                scan.events.ready.eq(core.events.ready),
            ]

    def _learning(
        self, m: Module, seq: Sequencer, host: HostBus, producers: list[Producer]
    ) -> Learning:
        """Dropout masks, the training sequencer and datapath; returns them with the
        producers (the datapath's weight reads and write-backs share the weight memories'
        host ports, or go to external memory: its sequencer waits for them there)."""
        cfg, enc, cores = self._cfg, self._encoder, self._cores
        n_layers = self._c.n_linear
        m.submodules.dropout = drop = DropoutMasks.for_config(cfg)
        m.submodules.learning = learn = TrainingDatapath.for_config(cfg)
        schedule = TrainingSchedule.for_units(learn.desire, learn.update)
        m.submodules.training_sequencer = tseq = TrainingSequencer(
            self._c.layers, self._lanes, schedule, external=self._external
        )
        wiring.connect(m, tseq.issue, learn.issue)
        if self._shared:  # the output layer has no dropout: its keep bits stay all ones
            hidden = [drop.keep(l + 1) for l in range(n_layers - 1)]
            m.d.comb += cores[0].keep[: sum(len(k) for k in hidden)].eq(Cat(*hidden))
        else:
            m.d.comb += [cores[l].keep.eq(drop.keep(l + 1)) for l in range(n_layers - 1)]
        m.d.comb += [
            drop.enable.eq(host.mode == Mode.TRAINING),
            drop.draw.eq(seq.draw),
            seq.draw_last.eq(drop.last),
            enc.keep.eq(drop.keep(0)),
            *(learn.keep(l).eq(drop.keep(l)) for l in range(1, n_layers)),
            tseq.start.eq(seq.learn),
            seq.learn_done.eq(tseq.done),
            host.backward.eq(tseq.backward),
            host.update.eq(tseq.update),
            host.dropout_state.eq(drop.state),
            host.rounding_state.eq(learn.rounding_state),
            learn.phase.eq(seq.phase),
            learn.label.eq(seq.label),
            learn.lr_int.eq(host.lr_int),
        ]
        # every producer also writes its spike word into its train memory
        for j, producer in enumerate(producers):
            m.d.comb += [
                learn.spk_valid[j].eq(producer.valid),
                learn.spk_word[j].eq(producer.word),
                learn.spk_bits[j].eq(producer.bits),
            ]
        return Learning(learn, tseq, producers)
