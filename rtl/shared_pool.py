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
  (:meth:`NeuronCore.word_address`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value

from rtl.encoder import Encoder
from rtl.host_bus import HostBus
from rtl.neuron_core import NeuronCore
from rtl.sequencer import Sequencer
from rtl.step_scanner import StepScanner
from rtl.training_datapath import TrainingDatapath

__all__ = ["Producer", "layer_base", "spike_paths", "weight_ports"]


@dataclass(frozen=True)
class Producer:
    """A neuron layer's spike words as they are made: ``bits`` are neurons
    ``word * lanes + j`` of the layer, in a cycle where ``valid`` is high."""

    valid: Value
    word: Value
    bits: Value


def spike_paths(
    m: Module, enc: Encoder, core: NeuronCore, seq: Sequencer, lanes: int
) -> list[Producer]:
    """Spike vectors, their copies and the step scanner into ``core``; returns the
    producer of every neuron layer (input, hidden ..., output).

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
    return producers


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
