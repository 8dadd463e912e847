"""Event-driven LIF neuron core: one or several layers of LIF neurons on ``lanes`` lanes.

(docs/fixed-point.md, section 3; mirrors :func:`golden.neuron_core.lif_step`.)

A core of ``P = lanes`` lanes serves one layer (``NeuronCore(n_in, n_out, lanes, ...)``,
:meth:`NeuronCore.for_layer`: a core per layer, the layers running concurrently) or
several (``NeuronCore(layers=[(n_in_0, n_out_0), ...], lanes=P, ...)``,
:meth:`NeuronCore.for_network`: one pool of lanes time-shared over the layers). Why
several: layer 0 does 93-99 % of the synaptic work, so the cores of the later layers
idle (issue 12). The one-step delay between layers makes every layer's step-``t`` input
known when step ``t`` starts, so the events of layer 0, its fire pass, the events of
layer 1, its fire pass, ... stream back to back through one pipeline.

Memories (layer ``l`` has ``B_l = ceil(n_out_l / P)`` blocks of ``P`` neurons):

- weights: ``sum_l n_in_l * B_l`` words of ``P`` signed weights. Layer ``l``'s words
  follow those of the layers before it and are in-major: word ``base_l + i * B_l + b``
  holds ``w_l[b * P + j, i]`` in lane ``j`` (:meth:`NeuronCore.word_address`). One input
  spike reads ``B_l`` consecutive words, one per cycle, and every lane adds a weight: a
  spike costs ``B_l`` cycles and silent inputs cost nothing.
- membranes: ``sum_l B_l`` words of ``P`` values (layer ``l``'s ``B_l`` words after those
  of the layers before it), each ``acc_bits`` wide: wide enough for a membrane plus
  ``n_in_l`` weights of every layer, so integration never saturates and the order of
  input events does not matter (as the spec requires). Saturation reads the bits above
  the membrane's sign, so a width chosen for a wider layer saturates identically.

Operations, each a pass through a pipeline: stage 0 issues the weight read
(a :class:`~rtl.banked_memory.BankedMemory`, ``READ_LATENCY`` = 5 cycles to a
registered word); the membrane read follows three stages later, so both meet
in stage 5, which computes one carry chain per lane into registers; stage 6
picks the reset value; stage 7 decays and writes back:

- accumulate (one per input event of layer ``l``): ``v <- v + w`` on ``l``'s ``B_l`` words.
- fire (end of layer ``l``'s step): ``v <- sat(v)``; ``s <- v >= thr_l and keep``;
  ``v <- v - thr_l * s``; output ``s`` and ``v``; store ``v - (v >> k)``, the decay of
  the *next* step. Decaying at the end of step t is the same as decaying at the start
  of step t + 1, and the sample starts from 0, whose decay is 0.
- clear (start of sample): ``v <- 0``, every word of every layer.

Hazard rule. An event or fire pass of layer ``l`` issues ``l``'s ``B_l`` membrane words
in order, one per cycle, without a gap. A write-back lands :attr:`WRITE_DISTANCE` = 4
cycles after its membrane read and the read port is transparent, so a word may be read
again ``WRITE_DISTANCE`` cycles after the previous operation read it, not earlier.
Since every operation of a layer sweeps all its words from the first, that per-word
rule is: two operations of the same layer start at least ``WRITE_DISTANCE`` cycles
apart. Operations of different layers touch different words and follow each other
without a bubble. A clear pass drains before anything else starts.

Cycles. Operations offered back to back (the producer always valid, the core idle
before the first) are accepted in cycles ``a_0 = 0`` and
``a_k = max(a_{k-1} + B(l_{k-1}), a_j + WRITE_DISTANCE)``, ``j`` the last operation
before ``k`` of the same layer (:meth:`NeuronCore.accept_cycles`); operation ``k``
issues its blocks in cycles ``a_k + 1 .. a_k + B(l_k)``, and the core is idle again
``STAGES + 1`` cycles after the last. One time step of the shared schedule (``n_l``
events of layer ``l``, then its fire pass, for ``l = 0, 1, ...``) therefore issues for
``sum_l (n_l * max(B_l, WRITE_DISTANCE) + B_l)`` cycles, provided each layer's first
operation comes ``WRITE_DISTANCE`` cycles or more after the start of its previous fire
pass (the other layers' work in between, for any but tiny networks): for
``B_l >= WRITE_DISTANCE`` every one of those cycles issues a block to all lanes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from desire.config import Config
from golden.fixed import constants, signed_range
from rtl import check_int, index_shape
from rtl.banked_memory import SPRAM_WORDS, BankedMemory
from rtl.pipeline import delay

__all__ = ["NeuronCore", "weight_rows"]


@dataclass(frozen=True)
class _Decision:
    """The compute stage's registers (:meth:`NeuronCore._compute`), read by the stages after."""

    hi_minus_thr: Signal
    sum: Signal
    v: Signal
    minus: Signal
    flags: Signal
    spikes: Signal


def weight_rows(w: np.ndarray, lanes: int) -> list[list[int]]:
    """Weight-memory contents for ``w`` (n_out, n_in): row ``i * B + b`` = lanes of block b.

    Padding lanes (``b * lanes + j >= n_out``) hold 0, so padding neurons never
    integrate anything. A core of several layers holds layer ``l``'s rows from word
    :meth:`NeuronCore.word_address` ``(l, 0, 0)`` on.
    """
    n_out, n_in = w.shape
    blocks = -(-n_out // lanes)
    padded = np.zeros((n_in, blocks * lanes), dtype=np.int64)
    padded[:, :n_out] = np.asarray(w, dtype=np.int64).T
    return padded.reshape(n_in * blocks, lanes).tolist()


def _checked_layers(layers: object) -> tuple[tuple[int, int], ...]:
    """``layers`` as a tuple of (n_in, n_out) pairs of positive ints; raises otherwise."""
    if isinstance(layers, str | bytes) or not isinstance(layers, Sequence):
        raise TypeError(f"layers must be a sequence of (n_in, n_out) pairs, not {layers!r}")
    if not layers:
        raise ValueError("layers must hold at least one (n_in, n_out) pair")
    out = []
    for l, pair in enumerate(layers):
        if isinstance(pair, str | bytes) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TypeError(f"layers[{l}] must be a pair (n_in, n_out), not {pair!r}")
        out.append(
            (
                check_int(f"layers[{l}] n_in", pair[0], 1),
                check_int(f"layers[{l}] n_out", pair[1], 1),
            )
        )
    return tuple(out)


class NeuronCore(wiring.Component):
    """LIF neurons of one or several layers, ``lanes`` neurons per cycle.

    Built with ``n_in, n_out``: one layer, *untagged*, the per-layer core of the
    concurrent-layers accelerator, port for port and cycle for cycle (a fire or clear
    pass drains before anything else is taken). Built with ``layers`` (also for a
    one-layer network, so that a top needs one form only): *tagged*, events, fire passes
    and results carry their layer (``L`` layers), and only a clear pass drains: an
    event or a fire pass of one layer follows one of another layer without a bubble,
    and one of the same layer as the hazard rule allows (module docstring).

    Ports
    -----
    events : In(stream.Signature(...))
        One spiking input. Untagged: its index (``range(n_in)``); tagged:
        ``StructLayout({"index": range(max n_in), "layer": range(L)})`` (in Verilog the
        index in the low bits, the layer above), ``index < n_in`` of its layer. Accepted
        when no block of an earlier operation issues next cycle (idle, or the last block
        of the current operation) and the hazard rule lets its layer start, so a stream
        of events keeps the lanes busy every cycle: one per ``max(B_l, WRITE_DISTANCE)``
        cycles within a layer, one per ``B_l`` cycles across layers. Tagged, ``ready``
        depends on ``payload.layer`` (combinationally; the stream rules hold the payload
        still while ``valid``). Not accepted while a clear pass (untagged: any pass)
        issues or drains.
    fire : In(1)
        End of a layer's time step (saturate, fire, reset, decay): ``B_l`` cycles;
        ``out_*`` carry the results. Untagged: a strobe, only while ``idle``. Tagged:
        taken in a cycle where ``fire_ready`` is high (hold it until then; a strobe
        while ``idle`` is always taken), ignored in other cycles.
    fire_layer : In(range(L)), tagged only
        The layer of the fire pass, read with ``fire``.
    fire_ready : Out(1), tagged only
        A ``fire`` this cycle is taken (it does not depend on ``fire``): the condition
        of ``events.ready`` for layer ``fire_layer``, and no event taken this cycle
        (events go first).
    clear : In(1)
        Strobe, only while ``idle``: zero every membrane of every layer
        (``sum_l B_l`` cycles); ignored when a fire or an event is taken in its cycle.
    idle : Out(1)
        No operation issuing and no pipeline stage in flight.
    threshold : In(signed(membrane_bits)); tagged: In(ArrayLayout(signed(membrane_bits), L))
        Firing threshold and reset amount of each layer; must be > 0 (the
        accelerator's register refuses other values). Read 4 cycles after each block of
        a fire pass issues (a registered copy per block): hold a layer's threshold still
        while a fire pass of that layer is in flight.
    keep : In(sum_l n_out_l)
        Dropout keep masks (all ones in inference), ``Cat(keep_0, keep_1, ...)``: a
        dropped neuron neither fires nor resets, but decays and integrates. Read like
        ``threshold``.
    out_valid : Out(1)
        A block of fire-pass results this cycle (no back-pressure), ``STAGES`` cycles
        after the block issued.
    out_layer : Out(range(L)), tagged only
        The layer of the results.
    out_block : Out(range(max B_l))
        Results are for neurons ``out_block * lanes + j`` of the layer.
    out_spikes : Out(lanes)
        Spikes of the block; padding lanes never fire.
    out_membrane : Out(ArrayLayout(signed(membrane_bits), lanes))
        Membranes after reset (before the next step's decay), for monitors.
    w_word, w_lane, w_data, w_we : In
        Host weight write: ``w_data`` to lane ``w_lane`` of word ``w_word`` (a flat
        address over all layers: :meth:`word_address`). Write only while ``idle``.
    w_rdata : Out(ArrayLayout(signed(weight_bits), lanes))
        Word ``w_word`` of :attr:`READ_LATENCY` cycles before (registered),
        valid while the core was idle.
    u_we, u_addr, u_data : In
        Whole-word write (the training update unit's write-back) at flat address
        ``u_addr``, while idle. Its own address, so that the update can read word
        ``k + 1`` while it writes word ``k``; takes precedence over ``w_we``.

    ``single_port`` (``hardware.weight_ports = 1``): the weight banks are single-ported,
    16K words deep (:class:`~rtl.banked_memory.BankedMemory`, the iCE40 UltraPlus's
    SPRAMs); a read in the cycle of a write is stale, which only the host's read-back
    of a word it is writing could see.

    With ``buffer_words`` (weights in external memory, tagged cores only) the core has
    no weight memory and none of the ``w_*`` / ``u_*`` ports; instead:

    w_stream : In(stream.Signature(ArrayLayout(signed(weight_bits), lanes)))
        The weight words of the input events, in the order the events are taken, one
        per block (:class:`rtl.axi_weight_reader.AxiWeightReader`'s ``words``). One is
        taken in every cycle an event's block issues.
    w_level : In(range(buffer_words + 1))
        Words ``w_stream`` can deliver without waiting: an event of layer ``l`` is
        taken only when its ``B_l`` words are there (beyond a word the current event
        still takes this cycle), so a taken event never waits for its weights.
    """

    #: Cycles from a membrane read to its write-back: two operations of one layer start
    #: at least this many cycles apart.
    WRITE_DISTANCE = 4
    #: Cycles from a weight read to its word, registered (:class:`BankedMemory`).
    READ_LATENCY = BankedMemory.READ_LATENCY
    #: Pipeline stages after the issue: the weight read, then compute, reset value and
    #: write-back.
    STAGES = READ_LATENCY + 2

    def __init__(
        self,
        n_in: int | None = None,
        n_out: int | None = None,
        lanes: int | None = None,
        *,
        layers: Sequence[tuple[int, int]] | None = None,
        weight_bits: int,
        membrane_bits: int,
        decay_shift: int,
        weights: np.ndarray | Sequence[np.ndarray] | None = None,
        buffer_words: int | None = None,
        single_port: bool = False,
    ) -> None:
        self._tagged = layers is not None
        self._single_port = single_port
        if not self._tagged:
            self._layers = ((check_int("n_in", n_in, 1), check_int("n_out", n_out, 1)),)
        elif n_in is not None or n_out is not None:
            raise TypeError("give n_in and n_out, or layers, not both")
        else:
            self._layers = _checked_layers(layers)
        self._lanes = check_int("lanes", lanes, 1)
        self._weight_bits = check_int("weight_bits", weight_bits, 2)
        self._membrane_bits = check_int("membrane_bits", membrane_bits, weight_bits)
        self._decay_shift = check_int("decay_shift", decay_shift, 1, membrane_bits)
        self._blocks = tuple(-(-n // self._lanes) for _, n in self._layers)
        sizes = [n * b for (n, _), b in zip(self._layers, self._blocks, strict=True)]
        self._word_base = tuple(sum(sizes[:l]) for l in range(len(sizes)))  # weight words
        self._init = [] if weights is None else self._checked_weights(weights)
        self._buffer = None
        if buffer_words is not None:
            if not self._tagged or weights is not None:
                raise ValueError("external weights (buffer_words) need a tagged core, no weights")
            self._buffer = check_int("buffer_words", buffer_words, max(self._blocks) + 1)
        n_layers, mb = len(self._layers), membrane_bits
        if self._tagged:
            event: object = data.StructLayout(
                {
                    "index": index_shape(max(n for n, _ in self._layers)),
                    "layer": index_shape(n_layers),
                }
            )
            threshold: object = data.ArrayLayout(signed(mb), n_layers)
        else:
            event, threshold = index_shape(self._layers[0][0]), signed(mb)
        n_neurons = sum(n for _, n in self._layers)
        members = {
            "events": In(stream.Signature(event)),
            "fire": In(1),
            "clear": In(1),
            "idle": Out(1),
            "threshold": In(threshold),
            "keep": In(n_neurons, init=(1 << n_neurons) - 1),
            "out_valid": Out(1),
            "out_block": Out(index_shape(max(self._blocks))),
            "out_spikes": Out(lanes),
            "out_membrane": Out(data.ArrayLayout(signed(mb), lanes)),
        }
        word_shape = data.ArrayLayout(signed(weight_bits), lanes)
        if self._buffer is None:
            members |= {
                "w_word": In(index_shape(self.depth)),
                "w_lane": In(index_shape(lanes)),
                "w_data": In(signed(weight_bits)),
                "w_we": In(1),
                "w_rdata": Out(word_shape),
                "u_we": In(1),
                "u_addr": In(index_shape(self.depth)),
                "u_data": In(word_shape),
            }
        else:
            members |= {
                "w_stream": In(stream.Signature(word_shape)),
                "w_level": In(range(self._buffer + 1)),
            }
        if self._tagged:
            members |= {
                "fire_layer": In(index_shape(n_layers)),
                "fire_ready": Out(1),
                "out_layer": Out(index_shape(n_layers)),
            }
        super().__init__(members)

    @classmethod
    def for_layer(cls, cfg: Config, layer: int, weights: np.ndarray | None = None) -> NeuronCore:
        """The core of weight layer ``layer`` of ``cfg`` (all parameters from the config)."""
        c = constants(cfg)
        check_int("layer", layer, 0, c.n_linear - 1)
        return cls(
            c.layers[layer],
            c.layers[layer + 1],
            cfg.hardware.lanes,
            weight_bits=c.weight_bits,
            membrane_bits=c.membrane_bits,
            decay_shift=c.decay_shift,
            weights=weights,
            single_port=cfg.hardware.weight_ports == 1,
        )

    @classmethod
    def for_network(
        cls,
        cfg: Config,
        weights: Sequence[np.ndarray] | None = None,
        buffer_words: int | None = None,
    ) -> NeuronCore:
        """One tagged core for every weight layer of ``cfg`` on ``cfg.hardware.lanes`` lanes;
        ``weights``: one (n_out, n_in) array per layer, or None; ``buffer_words``: the
        weights come from external memory through a buffer of that many words."""
        c = constants(cfg)
        return cls(
            layers=[(c.layers[l], c.layers[l + 1]) for l in range(c.n_linear)],
            lanes=cfg.hardware.lanes,
            weight_bits=c.weight_bits,
            membrane_bits=c.membrane_bits,
            decay_shift=c.decay_shift,
            weights=weights,
            buffer_words=buffer_words,
            single_port=cfg.hardware.weight_ports == 1,
        )

    def _checked_weights(self, weights: np.ndarray | Sequence[np.ndarray]) -> list[list[int]]:
        """The weight memory's initial words, from one array or (tagged) one per layer."""
        if not self._tagged:
            named = [("weights", weights)]
        elif isinstance(weights, np.ndarray) or not isinstance(weights, Sequence):
            raise TypeError(
                f"weights must be a sequence of one array per layer, not {type(weights).__name__}"
            )
        elif len(weights) != len(self._layers):
            raise ValueError(
                f"weights must hold one array per layer ({len(self._layers)}), not {len(weights)}"
            )
        else:
            named = [(f"weights[{l}]", w) for l, w in enumerate(weights)]
        lo, hi = signed_range(self._weight_bits)
        rows = []
        for (name, w), (n_in, n_out) in zip(named, self._layers, strict=True):
            w = np.asarray(w)
            if w.shape != (n_out, n_in):
                raise ValueError(f"{name} must have shape {(n_out, n_in)}, not {w.shape}")
            if not np.issubdtype(w.dtype, np.integer) or w.min() < lo or w.max() > hi:
                raise ValueError(f"{name} must be integers in [{lo}, {hi}]")
            rows += weight_rows(w, self._lanes)
        return rows

    def _single(self) -> int:
        """Index of the one layer; per-layer properties need a one-layer core."""
        if len(self._layers) != 1:
            raise ValueError(
                f"this core has {len(self._layers)} layers: use layers and layer_blocks"
            )
        return 0

    @property
    def layers(self) -> tuple[tuple[int, int], ...]:
        """(n_in, n_out) of every layer."""
        return self._layers

    @property
    def buffer_words(self) -> int | None:
        """Words of the external-weight buffer in front of ``w_stream`` (None: on chip)."""
        return self._buffer

    @property
    def tagged(self) -> bool:
        """Built with ``layers``: events, fire passes and results carry their layer."""
        return self._tagged

    @property
    def n_in(self) -> int:
        """Inputs of a one-layer core."""
        return self._layers[self._single()][0]

    @property
    def n_out(self) -> int:
        """Neurons of a one-layer core."""
        return self._layers[self._single()][1]

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def blocks(self) -> int:
        """Cycles per input event and per pass of a one-layer core: ``ceil(n_out / lanes)``."""
        return self._blocks[self._single()]

    @property
    def layer_blocks(self) -> tuple[int, ...]:
        """``B_l = ceil(n_out_l / lanes)`` of every layer: its membrane words, and the
        cycles of one of its input events or fire passes."""
        return self._blocks

    @property
    def words(self) -> int:
        """Words of the membrane memory, ``sum_l B_l``: also the cycles of a clear pass."""
        return sum(self._blocks)

    @property
    def depth(self) -> int:
        """Words of the weight memory, ``sum_l n_in_l * B_l``."""
        return sum(n * b for (n, _), b in zip(self._layers, self._blocks, strict=True))

    @property
    def acc_bits(self) -> int:
        """Membrane memory width: |v| + n_in_l * |w_max| never overflows it, for every layer."""
        n_in = max(n for n, _ in self._layers)
        return max(self._membrane_bits, self._weight_bits + n_in.bit_length()) + 1

    @property
    def event_cycles(self) -> int:
        """Cycles per input event of a one-layer core: ``B``, at least :attr:`WRITE_DISTANCE`
        (bubbles if B is smaller, so that an event never reads a block whose previous sum
        is in flight)."""
        return max(self.blocks, self.WRITE_DISTANCE)

    def word_address(self, layer: int, inp: int, block: int) -> int:
        """Flat weight-memory word of ``layer``'s input ``inp``, block ``block``: it holds
        ``w_layer[block * lanes + j, inp]`` in lane ``j`` (``w_word``, ``u_addr``)."""
        check_int("layer", layer, 0, len(self._layers) - 1)
        check_int("inp", inp, 0, self._layers[layer][0] - 1)
        check_int("block", block, 0, self._blocks[layer] - 1)
        return self._word_base[layer] + inp * self._blocks[layer] + block

    @classmethod
    def accept_cycles(cls, blocks: Sequence[int], ops: Sequence[int]) -> list[int]:
        """Cycles in which back-to-back operations are accepted, the first in cycle 0.

        ``blocks``: ``B_l`` of every layer (:attr:`layer_blocks`); ``ops``: the layer of
        every operation (input event or fire pass, alike), offered back to back to an
        idle core. ``a_k = max(a_{k-1} + B(l_{k-1}), a_j + WRITE_DISTANCE)``, ``j`` the
        last operation before ``k`` of layer ``l_k``: the issue slot frees on the last
        block, and two operations of one layer start ``WRITE_DISTANCE`` apart. Operation
        ``k`` issues in cycles ``a_k + 1 .. a_k + B(l_k)``; the core is idle again
        ``STAGES + 1`` cycles after the last issue.
        """
        accepted: list[int] = []
        last_of: dict[int, int] = {}
        for k, layer in enumerate(ops):
            check_int(f"ops[{k}]", layer, 0, len(blocks) - 1)
            a = accepted[-1] + blocks[ops[k - 1]] if accepted else 0
            if layer in last_of:
                a = max(a, last_of[layer] + cls.WRITE_DISTANCE)
            accepted.append(a)
            last_of[layer] = a
        return accepted

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p, lat, n_layers = self._lanes, self.READ_LATENCY, len(self._layers)
        m.submodules.membranes = vmem = Memory(
            shape=data.ArrayLayout(signed(self.acc_bits), p), depth=max(self.words, 2), init=[]
        )
        v_wr = vmem.write_port()
        v_rd = vmem.read_port(transparent_for=(v_wr,))

        # the request fields; an untagged core is layer 0
        if self._tagged:
            ev_index, ev_layer = self.events.payload.index, self.events.payload.layer
            fire_layer, fire_ready = self.fire_layer, self.fire_ready
        else:
            ev_index, ev_layer = self.events.payload, Const(0, 1)
            fire_layer, fire_ready = Const(0, 1), Signal(name="fire_ready")

        # stage 0: the issue, one block per cycle of one operation (event, fire or clear)
        busy = Signal()  # a block issues this cycle
        op_fire, op_clear = Signal(), Signal()  # neither: an event
        op_layer = Signal(index_shape(n_layers))
        left = Signal(index_shape(self.words))  # blocks of the operation after this one
        word = Signal(index_shape(self.words))  # membrane word (flat)
        block = Signal(index_shape(max(self._blocks)))  # block within the layer
        acc_addr = Signal(index_shape(self.depth))
        # cool[l] == 0: an operation of layer l may start next cycle (the hazard rule)
        cool = [Signal(range(self.WRITE_DISTANCE), name=f"cool{l}") for l in range(n_layers)]
        # ops[k], words[k], layers[k], blocks[k]: operation (acc, fire, clear), membrane
        # word, layer and block in stage k + 1
        stages = range(1, self.STAGES + 1)
        ops = [[Signal(name=f"s{k}_{op}") for op in ("acc", "fire", "clear")] for k in stages]
        words = [Signal.like(word, name=f"s{k}_word") for k in stages]
        layers = [Signal.like(op_layer, name=f"s{k}_layer") for k in stages]
        blocks = [Signal.like(block, name=f"s{k}_block") for k in stages]
        in_flight = Cat(*(op for stage in ops for op in stage)).any()
        # a tagged core drains only a clear pass; an untagged one also a fire pass, and
        # takes fire only while idle, as the per-layer core always has (cycle for cycle)
        draining = (busy & op_clear) | Cat(*(stage[2] for stage in ops)).any()
        if not self._tagged:
            draining |= (busy & op_fire) | Cat(*(stage[1] for stage in ops)).any()
        may_start = Cat(*(c == 0 for c in cool))
        slot_free = ~draining & (~busy | (left == 0))
        take_event, take_fire, take_clear = Signal(), Signal(), Signal()
        fire_ok = slot_free & may_start.bit_select(fire_layer, 1) if self._tagged else self.idle
        issuing_acc = busy & ~op_fire & ~op_clear  # an event's block issues this cycle
        m.d.comb += [
            self.events.ready.eq(
                slot_free
                & may_start.bit_select(ev_layer, 1)
                & self._weights_there(ev_layer, issuing_acc & (left == 0))
            ),
            take_event.eq(self.events.valid & self.events.ready),
            fire_ready.eq(fire_ok & ~take_event),
            take_fire.eq(self.fire & fire_ready),
            self.idle.eq(~busy & ~in_flight),
            take_clear.eq(self.clear & self.idle & ~take_event & ~take_fire),
        ]
        weight_word = self._weight_source(m, acc_addr, issuing_acc)
        m.d.sync += [
            ops[0][0].eq(issuing_acc),
            ops[0][1].eq(busy & op_fire),
            ops[0][2].eq(busy & op_clear),
            words[0].eq(word),
            layers[0].eq(op_layer),
            blocks[0].eq(block),
        ]
        for k in range(1, self.STAGES):
            m.d.sync += [a.eq(b) for a, b in zip(ops[k], ops[k - 1], strict=True)]
            m.d.sync += [words[k].eq(words[k - 1]), layers[k].eq(layers[k - 1])]
            m.d.sync += blocks[k].eq(blocks[k - 1])

        with m.If(busy):
            m.d.sync += [
                left.eq(left - 1),
                word.eq(word + 1),
                block.eq(block + 1),
                acc_addr.eq(acc_addr + 1),
            ]
            with m.If(left == 0):
                m.d.sync += busy.eq(0)
        start = take_event | take_fire
        new_layer = Mux(take_event, ev_layer, fire_layer)
        with m.If(start):
            m.d.sync += [
                busy.eq(1),
                op_fire.eq(take_fire),
                op_clear.eq(0),
                op_layer.eq(new_layer),
                left.eq(Array(b - 1 for b in self._blocks)[new_layer]),
                word.eq(Array(sum(self._blocks[:l]) for l in range(n_layers))[new_layer]),
                block.eq(0),
                acc_addr.eq(
                    Array(
                        base + ev_index * b
                        for base, b in zip(self._word_base, self._blocks, strict=True)
                    )[ev_layer]
                ),
            ]
        with m.Elif(take_clear):
            m.d.sync += [
                busy.eq(1),
                op_fire.eq(0),
                op_clear.eq(1),
                left.eq(self.words - 1),
                word.eq(0),
            ]
        for l, c in enumerate(cool):
            with m.If(start & (new_layer == l)):
                m.d.sync += c.eq(self.WRITE_DISTANCE - 1)
            with m.Elif(c != 0):
                m.d.sync += c.eq(c - 1)

        # stage lat - 2: the membrane read, so that its register meets the weight word
        m.d.comb += v_rd.addr.eq(words[lat - 3])
        v = Signal.like(v_rd.data, name="s_v")
        keep = Signal(p, name="s_keep")
        thr = Signal(signed(self._membrane_bits), name="thr")
        parts, offset = [], 0
        for (_, n_out), b in zip(self._layers, self._blocks, strict=True):
            parts += [self.keep[offset : offset + n_out], Const(0, b * p - n_out)]
            offset += n_out
        layer_thr = self.threshold[layers[lat - 2]] if self._tagged else self.threshold
        m.d.sync += [
            v.eq(v_rd.data),
            keep.eq(Cat(*parts).word_select(words[lat - 2], p)),
            thr.eq(layer_thr),
        ]
        # stage lat: one carry chain per lane; lat + 1: pick the reset value (registered);
        # lat + 2: decay (fire) and write-back
        d = self._compute(m, v, weight_word, keep, ops[lat - 1][1], thr)
        reset = Signal(data.ArrayLayout(signed(self._membrane_bits), p), name="s_reset")
        m.d.sync += [reset[j].eq(self._reset_value(d, j)) for j in range(p)]
        total = delay(m, d.sum, 1, "s_sum")
        m.d.comb += [
            self.out_membrane.eq(reset),
            self.out_spikes.eq(delay(m, d.spikes, 1, "spk")),
        ]
        last = ops[lat + 1]
        m.d.comb += [
            v_wr.addr.eq(words[lat + 1]),
            v_wr.en.eq(Cat(*last).any()),
            self.out_valid.eq(last[1]),
            self.out_block.eq(blocks[lat + 1]),
        ]
        if self._tagged:
            m.d.comb += self.out_layer.eq(layers[lat + 1])
        for j in range(p):
            with m.If(last[0]):
                m.d.comb += v_wr.data[j].eq(total[j])
            with m.Elif(last[1]):
                m.d.comb += v_wr.data[j].eq(reset[j] - (reset[j] >> self._decay_shift))
            # clear: data stays 0
        return m

    def _weights_there(self, layer: Value, finishing: Value) -> Value:
        """An event of ``layer`` may be taken as far as its weights go: always from the
        weight memory; from external memory when ``w_level`` covers its ``B_l`` words
        and the word the current event takes this cycle (``finishing``: its last)."""
        if self._buffer is None:
            return Const(1, 1)
        need = Array(Const(b, range(self._buffer + 1)) for b in self._blocks)[layer]
        return self.w_level >= need + finishing

    def _weight_source(self, m: Module, acc_addr: Signal, issuing: Value) -> Value:
        """The weight word of the block that issued ``READ_LATENCY`` cycles ago, registered.

        On chip: the weight memory (read at ``acc_addr`` while an event issues, else at
        the host's ``w_word``; written by the host and the update unit). External: the
        word ``w_stream`` delivers as the block issues, carried down the same number of
        registers.
        """
        p = self._lanes
        if self._buffer is not None:
            m.d.comb += self.w_stream.ready.eq(issuing)
            return delay(m, self.w_stream.payload, self.READ_LATENCY, "w_ext")
        m.submodules.weights = wmem = BankedMemory(
            signed(self._weight_bits),
            max(self.depth, 2),
            p,
            init=self._init,
            **({"bank_words": SPRAM_WORDS, "single_port": True} if self._single_port else {}),
        )
        m.d.comb += [
            wmem.raddr.eq(Mux(issuing, acc_addr, self.w_word)),
            wmem.waddr.eq(Mux(self.u_we, self.u_addr, self.w_word)),
            wmem.wen.eq(Mux(self.u_we, (1 << p) - 1, self.w_we << self.w_lane)),
            self.w_rdata.eq(wmem.rdata),
            *(wmem.wdata[j].eq(Mux(self.u_we, self.u_data[j], self.w_data)) for j in range(p)),
        ]
        return wmem.rdata

    def _compute(
        self,
        m: Module,
        v: data.ArrayView,
        w: data.ArrayView,
        keep: Signal,
        firing: Signal,
        thr: Signal,
    ) -> _Decision:
        """Accumulate ``v + w``, or the fire decision: one carry chain per lane, registered.

        ``v_sat >= thr`` equals ``v >= thr`` (``lo < 0 < thr <= hi``), the sign of
        ``v - thr``; saturation reads the bits above the membrane's sign. The
        registers hold ``v``, ``v - thr`` and the flags; the write-back stage picks
        the reset value among ``v - thr``, ``v``, the rails and ``hi - thr``
        (:meth:`_reset_value`) and decays it. ``thr`` is the operation's layer's
        threshold, registered in the stage before; ``hi - thr`` is registered here for
        the stage after.
        """
        p, mb = self._lanes, self._membrane_bits
        hi = signed_range(mb)[1]
        acc = data.ArrayLayout(signed(self.acc_bits), p)
        d = _Decision(
            hi_minus_thr=Signal(signed(mb), name="hi_minus_thr"),
            sum=Signal(acc, name="s_sum"),
            v=Signal(acc, name="s_v2"),
            minus=Signal(data.ArrayLayout(signed(self.acc_bits + 1), p), name="s_minus"),
            flags=Signal(data.ArrayLayout(4, p), name="s_flags"),  # over, under, fire, keep
            spikes=Signal(p, name="s_spikes"),
        )
        hi_minus_thr = d.hi_minus_thr
        m.d.sync += hi_minus_thr.eq(hi - thr)
        for j in range(p):
            vj = v[j]
            minus = vj - thr
            fire = ~minus[-1] & keep[j]
            top = vj[mb - 1 :]  # all zeros or all ones inside [lo, hi]
            over, under = ~vj[-1] & top.any(), vj[-1] & ~top.all()
            m.d.sync += [
                d.sum[j].eq(vj + w[j]),
                d.v[j].eq(vj),
                d.minus[j].eq(minus),
                d.flags[j].eq(Cat(over, under, fire, keep[j])),
                d.spikes[j].eq(fire & firing),
            ]
        return d

    def _reset_value(self, d: _Decision, j: int) -> Value:
        """Lane ``j``'s membrane after saturation and reset, from the registered decision."""
        lo, hi = signed_range(self._membrane_bits)
        over, under, fire, keep = (d.flags[j][k] for k in range(4))
        return Mux(
            over,
            Mux(keep, d.hi_minus_thr, hi),
            Mux(under, lo, Mux(fire, d.minus[j], d.v[j])),
        )
