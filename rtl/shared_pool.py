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
  stream in while the lanes work on earlier events;
- and with training in external memory (:func:`external_weights` with ``learning``) the
  same reader feeds the training passes, :class:`TrainingReads` posting their rows in
  the order the training sequencer reads them, and an
  :class:`rtl.axi_weight_writer.AxiWeightWriter` writes the update's words back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from desire.config import Config
from golden.fixed import constants
from rtl import check_int, check_layer_sizes, index_shape
from rtl.axi_weight_reader import AxiWeightReader, word_geometry
from rtl.axi_weight_writer import AxiWeightWriter
from rtl.encoder import Encoder
from rtl.host_bus import HostBus
from rtl.neuron_core import NeuronCore
from rtl.pipeline import delay
from rtl.sequencer import Sequencer
from rtl.step_scanner import StepScanner
from rtl.training_datapath import TrainingDatapath
from rtl.training_sequencer import ISSUE_TO_UNIT, TrainingSequencer, flat_bases

__all__ = [
    "Learning",
    "Producer",
    "TrainingReads",
    "external_weights",
    "layer_base",
    "row_address",
    "shared_core",
    "spike_paths",
    "weight_buffer_words",
    "weight_ports",
    "write_buffer_words",
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
    m: Module, enc: Encoder, core: NeuronCore, seq: Sequencer, lanes: int, *, memory: bool = False
) -> tuple[list[Producer], Value | None]:
    """Spike vectors and the step scanner into ``core``; returns the producer of every
    neuron layer (input, hidden ..., output) and the vectors as the scanner reads them
    (for a prefetching scanner: :func:`external_weights`; None with ``memory``, whose
    vectors are in block RAM: :func:`_vector_memories`)."""
    n_layers = len(core.layers)
    producers = [Producer(enc.spk_valid, enc.spk_word, enc.spk_bits)] + [
        Producer(core.out_valid & (core.out_layer == l), core.out_block, core.out_spikes)
        for l in range(n_layers)
    ]
    inputs = [n_in for n_in, _ in core.layers]
    m.submodules.scanner = scan = StepScanner(inputs, lanes, memory=memory)
    vectors = None
    if memory:
        _vector_memories(m, producers[:-1], scan, seq)
    else:
        vectors = _vector_registers(m, producers[:-1], scan, seq, lanes)
        m.d.comb += scan.vectors.eq(vectors)
    ops = scan.ops
    m.d.comb += [
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
    return producers, vectors


def _vector_registers(
    m: Module, producers: Sequence[Producer], scan: StepScanner, seq: Sequencer, lanes: int
) -> Value:
    """The layers' input vectors in registers, each copied at the phase's ``launch``, so
    that a layer reads the spikes of the step before (the spec's one-step delay between
    layers) while its producer writes the current step's; returns the copies.

    Layer ``l > 0``'s vector starts a sample at 0 (no spikes at ``t = 0``); the
    encoder writes all of its vector in phase 0. The clear comes one cycle after
    ``sample_start``, from a register: ``sample_start`` is the pixel handshake's logic,
    and its net to the vectors' resets was a critical path at -6. One cycle late is the
    same: those vectors are written only by fire passes (phases 1 .. T) and read only
    through the copies that the scans of phases 1 .. T start on; the copy of phase 0's
    launch (the cycle of the clear at the earliest) is never scanned.
    """
    copies = []
    clear = delay(m, seq.sample_start, 1, "spikes_clear")
    for l, (producer, words) in enumerate(zip(producers, scan.layer_words, strict=True)):
        vector = Signal(words * lanes, name=f"spikes{l}")
        copy = Signal(words * lanes, name=f"spikes{l}_scan")
        with m.If(producer.valid):
            m.d.sync += vector.word_select(producer.word, lanes).eq(producer.bits)
        if l > 0:
            with m.If(clear):
                m.d.sync += vector.eq(0)
        with m.If(seq.launch):
            m.d.sync += copy.eq(vector)
        copies.append(copy)
    return Cat(*copies)


def _vector_memories(
    m: Module, producers: Sequence[Producer], scan: StepScanner, seq: Sequencer
) -> None:
    """The layers' input vectors in block RAM (``hardware.spike_vectors = "memory"``), one
    memory per layer in two banks: in phase ``s`` the producers write bank ``s mod 2``
    and the scanner reads the other, the step before (what a copy at ``launch`` holds).

    Every producer writes all of its words in each phase it runs (the encoder in
    phases 0 .. T-1, a fire pass in 1 .. T), so a bank holds one whole step; only a
    hidden layer's reads in phase 1 find the previous sample's spikes there (its
    vector's step 0 is all zeros, never written) and are zeroed.
    """
    bank = seq.phase[0]
    word = Signal.like(scan.read_word, name="vector_word")  # the scanner's word counter
    m.d.sync += word.eq(scan.read_word)
    base = 0
    for l, (producer, words) in enumerate(zip(producers, scan.layer_words, strict=True)):
        abits = max(words - 1, 1).bit_length()  # a bank: the words rounded up to 2^abits
        mem = Memory(shape=unsigned(scan.width), depth=2 << abits, init=[])
        m.submodules[f"spikes{l}"] = mem
        wr, rd = mem.write_port(), mem.read_port(transparent_for=())
        local = (scan.read_word - base)[:abits]
        m.d.comb += [
            wr.addr.eq(Cat(producer.word[:abits], bank)),
            wr.data.eq(producer.bits),
            wr.en.eq(producer.valid),
            rd.addr.eq(Cat(local, ~bank)),
        ]
        data_l = rd.data if l == 0 else Mux(seq.phase == 1, 0, rd.data)
        ours = word < base + words
        if base:  # (a comparison with 0 is constant: Verilator's lint refuses it)
            ours = ours & (word >= base)
        with m.If(ours):
            m.d.comb += scan.read_data.eq(data_l)
        base += words


def layer_base(core: NeuronCore, select: Sequence[Value]) -> Value:
    """The first weight word of the layer whose bit of the one-hot ``select`` is set (0
    when none is)."""
    width = Shape.cast(index_shape(core.depth)).width  # that of w_word and u_addr
    out: Value = Const(0, width)
    for l, bit in enumerate(select):
        out = out | Mux(bit, Const(core.word_address(l, 0, 0), width), 0)
    return out


def weight_ports(
    m: Module, core: NeuronCore, host: HostBus, learn: TrainingDatapath | None
) -> None:
    """The host's per-layer weight windows, and the training units' per-layer reads and
    write-backs, on the core's one flat weight memory.

    The training units' addresses are their flat ones (``w_flat``, ``u_flat``: the
    sequencer keeps the layer's base in a register of its own), not the layer's word
    plus :func:`layer_base`: that adder sat between the sequencer's registers and the
    per-lane address registers of the memory, a critical path at -6."""
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
    layers = [n_in for n_in, _ in core.layers] + [core.layers[-1][1]]
    bases = [core.word_address(l, 0, 0) for l in range(n_layers)]
    assert list(flat_bases(layers, core.lanes)) == bases, "the sequencer's flat layout"
    m.d.comb += [
        core.w_word.eq(Mux(learn.w_read.any(), learn.w_flat, host_word)),
        core.u_we.eq(learn.u_we.any()),
        core.u_addr.eq(learn.u_flat),
        core.u_data.eq(learn.u_data),
        *(learn.w_rdata[l].eq(core.w_rdata) for l in range(n_layers)),
    ]


def write_buffer_words(blocks: Sequence[int], update_latency: int) -> int:
    """Words of the write-back FIFO (:class:`AxiWeightWriter`'s credits): the loop from an
    update word's issue (its reservation) to its write leaving the FIFO (the datapath's
    alignment, the update unit, the FIFO's two registers), so that a ready memory takes a
    word per cycle without the sequencer waiting, and a row of the widest layer more for
    the memory's gaps."""
    return ISSUE_TO_UNIT + update_latency + max(blocks) + 4


def row_address(
    base: Value,
    layer: Value,
    index: Value,
    word_base: Sequence[int],
    blocks: Sequence[int],
    stride: int,
) -> Value:
    """Byte address of input ``index``'s weight row of ``layer`` (its ``B_l`` words from
    flat word ``word_base[l] + index * B_l``) in a table at ``base``: a constant multiplier
    per layer."""
    first = Array(Const(w * stride, 32) for w in word_base)
    row = Array(index * (b * stride) for b in blocks)
    return (base + first[layer] + row[layer])[:32]


@dataclass(frozen=True)
class Learning:
    """The training units of an external-memory design (:func:`external_weights`): the
    datapath, its sequencer (built ``external``) and every neuron layer's producer."""

    datapath: TrainingDatapath
    sequencer: TrainingSequencer
    producers: Sequence[Producer]


class TrainingReads(wiring.Component):
    """The weight rows the training passes of neuron layers of ``layers[j]`` neurons
    (``lanes`` per word, words ``stride`` bytes apart, weight layer ``l``'s first word
    ``word_base[l]``, ``tsteps`` steps) read, as reader requests in the order the
    :class:`rtl.training_sequencer.TrainingSequencer` reads their words.

    Why its own walk: the reader streams words in request order and the sequencer takes
    them in its order, so the two orders must be equal, and the requests must run ahead
    of the reads to hide the memory's latency. ``BWD_HID<l>`` (``l`` from the top hidden
    layer down) reads every word of weight layer ``l`` in memory order: a counter walk,
    one request per row ``g`` of ``B_l`` words. The update of layer ``l`` (from 0 up)
    reads the row of every input that spiked in a step layer ``l`` integrated; the
    sequencer skips the others (``UPD_DECIDE``). So during the forward pass an "active"
    bit per input of every layer collects the OR of the spike words its producer writes
    (for layers ``> 0`` not those of the last step, phase ``T``: layer ``l`` sees layer
    ``l - 1`` one step late, and never its last step), and a
    :class:`rtl.step_scanner.StepScanner` over those bits (its fire items ignored)
    posts the update rows, layer 0 first, inputs ascending: the sequencer's order.

    Ports
    -----
    phase : In(range(T + 1))
        The forward phase (the cores compute step ``phase - 1``).
    clear : In(1)
        Strobe: a sample starts; no input is active.
    spk_valid : In(L)
        Bit ``j``: neuron layer ``j``'s producer writes spike word ``spk_word[j]`` this
        cycle (as :class:`rtl.training_datapath.TrainingDatapath`'s ``spk_*``; the
        output layer is not needed).
    spk_word, spk_bits : In.array(L)
    start : In(1)
        Strobe: the training passes begin: post the backward rows, then the update rows.
        Only after the forward pass, and after the previous passes' requests are taken.
    base : In(32)
        ``WEIGHT_BASE``.
    requests : Out(stream.Signature(StructLayout({"addr": unsigned(32),
            "words": range(max B_l + 1)})))
        The rows, as :class:`rtl.axi_weight_reader.AxiWeightReader` takes them.
    """

    def __init__(
        self,
        layers: Sequence[int],
        lanes: int,
        tsteps: int,
        *,
        stride: int,
        word_base: Sequence[int],
    ) -> None:
        self._layers = check_layer_sizes(layers)
        self._lanes = check_int("lanes", lanes, 1)
        self._tsteps = check_int("tsteps", tsteps, 1)
        self._stride = check_int("stride", stride, 1)
        self._blocks = tuple(-(-n // lanes) for n in self._layers[1:])
        if len(word_base) != len(self._blocks):
            raise ValueError(f"expected {len(self._blocks)} word bases, got {len(word_base)}")
        self._word_base = tuple(check_int("word_base", w, 0) for w in word_base)
        n_inputs = len(self._blocks)
        words = [-(-n // lanes) for n in self._layers[:-1]]
        request = data.StructLayout(
            {"addr": data.unsigned(32), "words": range(max(self._blocks) + 1)}
        )
        super().__init__(
            {
                "phase": In(range(tsteps + 1)),
                "clear": In(1),
                "spk_valid": In(n_inputs),
                "spk_word": In(index_shape(max(words))).array(n_inputs),
                "spk_bits": In(lanes).array(n_inputs),
                "start": In(1),
                "base": In(32),
                "requests": Out(stream.Signature(request)),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p, layers, blocks = self._lanes, self._layers, self._blocks
        m.submodules.scanner = scan = StepScanner(layers[:-1], p)
        m.d.comb += scan.vectors.eq(Cat(*self._active(m, scan.layer_words)))
        req, ops = self.requests, scan.ops
        stride, n_layers = self._stride, len(blocks)
        g = Signal(range(max(layers[:-1]) + 1))  # the backward walk's row
        offset = Signal(32)  # its address from base

        def begin(l: int) -> None:
            """Go to the backward walk of layer ``l``, or (0) to the update rows."""
            if l == 0:
                m.d.comb += scan.start.eq(1)
                m.next = "UPD"
            else:
                m.d.sync += [g.eq(0), offset.eq(self._word_base[l] * stride)]
                m.next = f"BWD{l}"

        with m.FSM(init="UPD"):
            for l in range(n_layers - 1, 0, -1):
                with m.State(f"BWD{l}"):
                    m.d.comb += [
                        req.valid.eq(1),
                        req.payload.addr.eq(self.base + offset),
                        req.payload.words.eq(blocks[l]),
                    ]
                    with m.If(req.ready):
                        m.d.sync += [g.eq(g + 1), offset.eq(offset + blocks[l] * stride)]
                        with m.If(g == layers[l] - 1):
                            begin(l - 1)
            with m.State("UPD"):
                layer, index = ops.payload.layer, ops.payload.index
                address = row_address(self.base, layer, index, self._word_base, blocks, stride)
                sizes = Array(Const(b, range(max(blocks) + 1)) for b in blocks)
                m.d.comb += [
                    req.valid.eq(ops.valid & ~ops.payload.fire),
                    req.payload.addr.eq(address),
                    req.payload.words.eq(sizes[layer]),
                    ops.ready.eq(ops.payload.fire | req.ready),
                ]
                with m.If(self.start):
                    begin(n_layers - 1)
        return m

    def _active(self, m: Module, words: Sequence[int]) -> list[Signal]:
        """Per neuron layer below the output, the inputs that spiked in a step the layer
        above integrated, collected as the producers write their spike words."""
        p, last = self._lanes, self.phase == self._tsteps
        active = []
        for j, n_words in enumerate(words):
            bits = Signal(n_words * p, name=f"active{j}")
            seen = self.spk_valid[j] if j == 0 else self.spk_valid[j] & ~last
            part = bits.word_select(self.spk_word[j], p)
            with m.If(seen):
                m.d.sync += part.eq(part | self.spk_bits[j])
            with m.If(self.clear):
                m.d.sync += bits.eq(0)
            active.append(bits)
        return active


def external_weights(
    m: Module,
    core: NeuronCore,
    vectors: Value,
    seq: Sequencer,
    host: HostBus,
    data_bytes: int,
    learning: Learning | None = None,
) -> tuple[AxiWeightReader, AxiWeightWriter | None]:
    """The reader of the weight table in external memory and the scanner that runs ahead
    of the core's over the same ``vectors``, posting each input event's weight row; with
    ``learning``, also the training passes' reads through the same reader and the writer
    of their write-backs (:func:`_external_training`). Returns the reader and the writer
    (their ``axi`` ports are the accelerator's)."""
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
    word_base = [core.word_address(l, 0, 0) for l in range(len(blocks))]
    layer, index = ops.payload.layer, ops.payload.index
    address = row_address(host.weight_base, layer, index, word_base, blocks, reader.stride)
    sizes = Array(Const(b, range(max(blocks) + 1)) for b in blocks)
    forward = ops.valid & ~ops.payload.fire
    m.d.comb += [
        ahead.vectors.eq(vectors),
        ahead.start.eq(seq.scan),
        core.w_stream.payload.eq(reader.words.payload),
        core.w_stream.valid.eq(reader.words.valid),
        core.w_level.eq(reader.level),
    ]
    if learning is None:
        m.d.comb += [
            req.payload.addr.eq(address),
            req.payload.words.eq(sizes[layer]),
            req.valid.eq(forward),
            ops.ready.eq(ops.payload.fire | req.ready),  # fire operations need no weights
            reader.words.ready.eq(core.w_stream.ready),
            host.memory_error.eq(reader.error),
        ]
        return reader, None
    reads = _training_reads(m, core, seq, host, learning, reader.stride)
    train = reads.requests  # never valid while the forward pass posts rows
    m.d.comb += [
        req.payload.addr.eq(Mux(train.valid, train.payload.addr, address)),
        req.payload.words.eq(Mux(train.valid, train.payload.words, sizes[layer])),
        req.valid.eq(forward | train.valid),
        ops.ready.eq(ops.payload.fire | (req.ready & ~train.valid)),
        train.ready.eq(req.ready),
    ]
    writer = _external_training(m, reader, core, host, learning)
    m.d.comb += host.memory_error.eq(reader.error | writer.error)
    return reader, writer


def _training_reads(
    m: Module, core: NeuronCore, seq: Sequencer, host: HostBus, learning: Learning, stride: int
) -> TrainingReads:
    """The training passes' row requests (:class:`TrainingReads`), fed by the producers
    as the train memories are and started with the training sequencer."""
    n_layers = len(core.layers)
    layers = [n_in for n_in, _ in core.layers] + [core.layers[-1][1]]
    reads = TrainingReads(
        layers,
        core.lanes,
        learning.datapath.tsteps,
        stride=stride,
        word_base=[core.word_address(l, 0, 0) for l in range(n_layers)],
    )
    m.submodules.training_reads = reads
    m.d.comb += [
        reads.phase.eq(seq.phase),
        reads.clear.eq(seq.sample_start),
        reads.start.eq(learning.sequencer.start),
        reads.base.eq(host.weight_base),
    ]
    for j, producer in enumerate(learning.producers[:n_layers]):
        m.d.comb += [
            reads.spk_valid[j].eq(producer.valid),
            reads.spk_word[j].eq(producer.word),
            reads.spk_bits[j].eq(producer.bits),
        ]
    return reads


def _external_training(
    m: Module, reader: AxiWeightReader, core: NeuronCore, host: HostBus, learning: Learning
) -> AxiWeightWriter:
    """The training passes on the external weights: the words the sequencer takes from
    the reader, delayed :data:`ISSUE_TO_UNIT` cycles as the weight memory's read would
    be, into the datapath; its write-backs into an :class:`AxiWeightWriter`, one credit
    reserved per update word issued; the sequencer waits on both. Returns the writer."""
    learn, tseq = learning.datapath, learning.sequencer
    writer = AxiWeightWriter(
        core.lanes,
        reader.weight_bits,
        reader.data_bytes,
        depth_words=write_buffer_words(core.layer_blocks, learn.update.latency),
    )
    m.submodules.weight_writer = writer
    n_layers = len(core.layers)
    taken = tseq.issue.mac.any() | tseq.issue.upd.any()  # only while a word is on offer
    word = delay(m, reader.words.payload, ISSUE_TO_UNIT, "w_train")
    flat = learn.u_flat  # the write-back's flat word (TrainingDatapath.u_flat)
    m.d.comb += [
        reader.words.ready.eq(core.w_stream.ready | taken),
        tseq.w_valid.eq(reader.words.valid),
        tseq.wb_room.eq(writer.room),
        tseq.wb_idle.eq(writer.idle),
        writer.reserve.eq(tseq.issue.upd.any()),
        writer.writes.valid.eq(learn.u_we.any()),
        writer.writes.payload.addr.eq(host.weight_base + flat * reader.stride),
        writer.writes.payload.data.eq(learn.u_data),
        *(learn.w_rdata[l].eq(word) for l in range(n_layers)),
    ]
    return writer
