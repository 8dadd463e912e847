"""The shared lane pool's datapath: one neuron core for every layer, fed by one step scanner.

(``hardware.architecture = "shared"``; docs/accelerator-v2.md.) The accelerator's
shell (:class:`rtl.accelerator.Accelerator`: encoder, sequencer, host bus, class
counters, learning units) is the same for both architectures; this module wires the
part that differs when every layer runs on one :class:`rtl.neuron_core.NeuronCore`
of ``lanes`` lanes:

- spike vectors: the encoder's (layer 0's input) and one per hidden layer, written by
  the core's fire passes of the layer below (``out_layer``); each is copied at the
  phase's ``launch``, so that a layer reads the spikes of the step before (the spec's
  one-step delay between layers) while its producer writes the current step's;
- one :class:`rtl.step_scanner.StepScanner` over all the copies: per layer its input
  events, then its fire pass, one stream into the core;
- one flat weight memory (the core's): the host's per-layer windows and the training
  units' per-layer reads and write-backs are placed by the layer's base word
  (:meth:`NeuronCore.word_address`);
- or (``hardware.weights = "external"``) the same table in external memory, read by an
  :class:`rtl.axi_weight_reader.AxiWeightReader`: a second step scanner over the same
  copies runs ahead of the core's and posts the weight row of every input event
  (its ``B_l`` words at ``WEIGHT_BASE + word_address(l, i, 0) * stride``), so the rows
  stream in while the lanes work on earlier events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value

from desire.config import Config
from golden.fixed import constants
from rtl.axi_weight_reader import AxiWeightReader, word_geometry
from rtl.encoder import Encoder
from rtl.host_bus import HostBus
from rtl.neuron_core import NeuronCore
from rtl.sequencer import Sequencer
from rtl.step_scanner import StepScanner
from rtl.training_datapath import TrainingDatapath

__all__ = [
    "Producer",
    "external_weights",
    "layer_base",
    "shared_core",
    "spike_paths",
    "weight_buffer_words",
    "weight_ports",
]


def weight_buffer_words(
    blocks: Sequence[int], lanes: int, weight_bits: int, data_bytes: int, latency: int
) -> int:
    """Words of the external-weight buffer: two rows of the widest layer (one being used
    while the next streams in) plus the words in flight while a read waits ``latency``
    cycles at one beat per cycle, with a margin for the AR handshakes (measured: a buffer
    of only the two rows halved the bandwidth at latency 20)."""
    beats, _ = word_geometry(lanes, weight_bits, data_bytes)
    return 2 * max(blocks) + 2 + -(-2 * (latency + 4) // beats)


def shared_core(cfg: Config, weights: Sequence[np.ndarray] | None = None) -> NeuronCore:
    """The one neuron core of ``cfg``'s shared pool: its weights on chip (initialised from
    ``weights``), or (``weights = external``) a buffer in front of the external memory.
    ValueError for weights given to an external-memory design."""
    hw = cfg.hardware
    if hw.weights != "external":
        return NeuronCore.for_network(cfg, weights)
    if weights is not None:
        raise ValueError(
            "weights = external: the weights live in external memory "
            "(write weight_image(weights) there), not in the design"
        )
    c = constants(cfg)
    blocks = [-(-n // hw.lanes) for n in c.layers[1:]]
    buffer = weight_buffer_words(blocks, hw.lanes, c.weight_bits, hw.axi_bytes, hw.axi_latency)
    return NeuronCore.for_network(cfg, buffer_words=buffer)


@dataclass(frozen=True)
class Producer:
    """A neuron layer's spike words as they are made: ``bits`` are neurons
    ``word * lanes + j`` of the layer, in a cycle where ``valid`` is high."""

    valid: Value
    word: Value
    bits: Value


def spike_paths(
    m: Module, enc: Encoder, core: NeuronCore, seq: Sequencer, lanes: int
) -> tuple[list[Producer], Value]:
    """Spike vectors, their copies and the step scanner into ``core``; returns the
    producer of every neuron layer (input, hidden ..., output) and the copies as the
    scanner reads them (for a prefetching scanner: :func:`external_weights`).

    Layer ``l > 0``'s vector starts a sample at 0 (no spikes at ``t = 0``); the
    encoder writes all of its vector in phase 0.
    """
    n_layers = len(core.layers)
    producers = [Producer(enc.spk_valid, enc.spk_word, enc.spk_bits)] + [
        Producer(core.out_valid & (core.out_layer == l), core.out_block, core.out_spikes)
        for l in range(n_layers)
    ]
    m.submodules.scanner = scan = StepScanner([n_in for n_in, _ in core.layers], lanes)
    copies = []
    for l, (producer, words) in enumerate(zip(producers[:-1], scan.layer_words, strict=True)):
        vector = Signal(words * lanes, name=f"spikes{l}")
        copy = Signal(words * lanes, name=f"spikes{l}_scan")
        with m.If(producer.valid):
            m.d.sync += vector.word_select(producer.word, lanes).eq(producer.bits)
        if l > 0:
            with m.If(seq.sample_start):
                m.d.sync += vector.eq(0)
        with m.If(seq.launch):
            m.d.sync += copy.eq(vector)
        copies.append(copy)

    ops = scan.ops
    m.d.comb += [
        scan.vectors.eq(Cat(*copies)),
        scan.start.eq(seq.scan),
        seq.scan_done[0].eq(scan.done),
        seq.core_idle[0].eq(core.idle),
        core.clear.eq(seq.clear),
        core.events.payload.index.eq(ops.payload.index),
        core.events.payload.layer.eq(ops.payload.layer),
        core.events.valid.eq(ops.valid & ~ops.payload.fire),
        core.fire.eq(ops.valid & ops.payload.fire),
        core.fire_layer.eq(ops.payload.layer),
        ops.ready.eq(Mux(ops.payload.fire, core.fire_ready, core.events.ready)),
    ]
    return producers, scan.vectors


def layer_base(core: NeuronCore, select: Sequence[Value]) -> Value:
    """The first weight word of the layer whose bit of the one-hot ``select`` is set (0
    when none is)."""
    width = len(core.w_word)
    out: Value = Const(0, width)
    for l, bit in enumerate(select):
        out = out | Mux(bit, Const(core.word_address(l, 0, 0), width), 0)
    return out


def weight_ports(
    m: Module, core: NeuronCore, host: HostBus, learn: TrainingDatapath | None
) -> None:
    """The host's per-layer weight windows, and the training units' per-layer reads and
    write-backs, on the core's one flat weight memory."""
    n_layers = len(core.layers)
    host_layer = [host.weight_layer == l for l in range(n_layers)]
    host_word = layer_base(core, host_layer) + host.weight_word
    m.d.comb += [
        core.w_lane.eq(host.weight_lane),
        core.w_data.eq(host.weight_data),
        core.w_we.eq(host.weight_we.any()),
        *(host.weight_rdata[l].eq(core.w_rdata) for l in range(n_layers)),
    ]
    if learn is None:
        m.d.comb += core.w_word.eq(host_word)
        return
    read = [learn.w_read[l] for l in range(n_layers)]
    written = [learn.u_we[l] for l in range(n_layers)]
    m.d.comb += [
        core.w_word.eq(Mux(learn.w_read.any(), layer_base(core, read) + learn.w_word, host_word)),
        core.u_we.eq(learn.u_we.any()),
        core.u_addr.eq(layer_base(core, written) + learn.u_addr),
        core.u_data.eq(learn.u_data),
        *(learn.w_rdata[l].eq(core.w_rdata) for l in range(n_layers)),
    ]


def external_weights(
    m: Module, core: NeuronCore, vectors: Value, seq: Sequencer, host: HostBus, data_bytes: int
) -> AxiWeightReader:
    """The reader of the weight table in external memory and the scanner that runs ahead
    of the core's over the same ``vectors``, posting each input event's weight row;
    returns the reader (its ``axi`` port is the accelerator's)."""
    assert core.buffer_words is not None, "a core with external weights"
    blocks = core.layer_blocks
    reader = AxiWeightReader(
        core.lanes,
        len(core.w_stream.payload.as_value()) // core.lanes,
        data_bytes,
        depth_words=core.buffer_words,
        max_row_words=max(blocks),
    )
    m.submodules.weight_reader = reader
    m.submodules.prefetch = ahead = StepScanner([n_in for n_in, _ in core.layers], core.lanes)
    ops, req = ahead.ops, reader.requests
    stride = reader.stride
    layer, index = ops.payload.layer, ops.payload.index
    base = Array(Const(core.word_address(l, 0, 0) * stride, 32) for l in range(len(blocks)))
    row = Array(index * (b * stride) for b in blocks)  # a constant multiplier per layer
    m.d.comb += [
        ahead.vectors.eq(vectors),
        ahead.start.eq(seq.scan),
        req.payload.addr.eq(host.weight_base + base[layer] + row[layer]),
        req.payload.words.eq(Array(Const(b, range(max(blocks) + 1)) for b in blocks)[layer]),
        req.valid.eq(ops.valid & ~ops.payload.fire),
        ops.ready.eq(ops.payload.fire | req.ready),  # fire operations need no weights
        core.w_stream.payload.eq(reader.words.payload),
        core.w_stream.valid.eq(reader.words.valid),
        reader.words.ready.eq(core.w_stream.ready),
        core.w_level.eq(reader.level),
        host.memory_error.eq(reader.error),
    ]
    return reader
