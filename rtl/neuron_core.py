"""Event-driven LIF neuron core: one layer of ``n_out`` neurons on ``lanes`` lanes.

(docs/fixed-point.md, section 3; mirrors :func:`golden.neuron_core.lif_step`.)

Memories (``B = ceil(n_out / lanes)`` blocks of ``lanes`` neurons):

- weights: ``n_in * B`` words of ``lanes`` signed weights, in-major: word
  ``i * B + b`` holds ``w[b * lanes + j, i]`` in lane ``j``. One input spike
  reads ``B`` consecutive words, one per cycle, and every lane adds a weight:
  a spike costs ``B`` cycles and silent inputs cost nothing.
- membranes: ``B`` words of ``lanes`` values, each ``acc_bits`` wide: wide
  enough for a membrane plus ``n_in`` weights, so integration never saturates
  and the order of input events does not matter (as the spec requires).

Operations, each a pass through a pipeline: stage 0 issues the weight read
(a :class:`~rtl.banked_memory.BankedMemory`, ``READ_LATENCY`` = 5 cycles to a
registered word); the membrane read follows three stages later, so both meet
in stage 5, which computes one carry chain per lane into registers; stage 6
decays and writes back. The membrane read port is transparent to the write port, and an event
takes ``max(B, 3)`` cycles (bubbles when ``B < 3``), so a read never misses a
write-back still in flight:

- accumulate (one per input event): ``v <- v + w``.
- fire (end of step): ``v <- sat(v)``; ``s <- v >= thr and keep``;
  ``v <- v - thr * s``; output ``s`` and ``v``; store ``v - (v >> k)``, the
  decay of the *next* step. Decaying at the end of step t is the same as
  decaying at the start of step t + 1, and the sample starts from 0, whose
  decay is 0.
- clear (start of sample): ``v <- 0``.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from desire.config import Config
from golden.fixed import constants, signed_range
from rtl import check_int, index_shape
from rtl.banked_memory import BankedMemory
from rtl.pipeline import delay

__all__ = ["NeuronCore", "weight_rows"]


def weight_rows(w: np.ndarray, lanes: int) -> list[list[int]]:
    """Weight-memory contents for ``w`` (n_out, n_in): row ``i * B + b`` = lanes of block b.

    Padding lanes (``b * lanes + j >= n_out``) hold 0, so padding neurons never
    integrate anything.
    """
    n_out, n_in = w.shape
    blocks = -(-n_out // lanes)
    padded = np.zeros((n_in, blocks * lanes), dtype=np.int64)
    padded[:, :n_out] = np.asarray(w, dtype=np.int64).T
    return padded.reshape(n_in * blocks, lanes).tolist()


class NeuronCore(wiring.Component):
    """A layer of ``n_out`` LIF neurons fed by ``n_in`` inputs, ``lanes`` neurons per cycle.

    Ports
    -----
    events : In(stream.Signature(range(n_in)))
        Index of one spiking input. Accepted when idle or on the last cycle of
        the previous event, so a stream of events keeps the lanes busy every
        cycle. Not accepted during a fire or clear pass.
    fire : In(1)
        Strobe, only while ``idle``: end of the time step (saturate, fire,
        reset, decay). ``B`` cycles; ``out_*`` carry the results.
    clear : In(1)
        Strobe, only while ``idle``: zero every membrane (``B`` cycles).
    idle : Out(1)
        No event, pass or pipeline stage in flight.
    threshold : In(signed(membrane_bits))
        Firing threshold and reset amount; must be > 0 (the accelerator's
        register refuses other values) and hold still from two cycles before a
        fire pass (the core keeps a registered copy).
    keep : In(n_out)
        Dropout keep mask (all ones in inference): a dropped neuron neither
        fires nor resets, but decays and integrates.
    out_valid : Out(1)
        A block of fire-pass results this cycle (no back-pressure).
    out_block : Out(range(B))
        Results are for neurons ``out_block * lanes + j``.
    out_spikes : Out(lanes)
        Spikes of the block; padding lanes never fire.
    out_membrane : Out(ArrayLayout(signed(membrane_bits), lanes))
        Membranes after reset (before the next step's decay), for monitors.
    w_word, w_lane, w_data, w_we : In
        Host weight write: ``w_data`` to lane ``w_lane`` of word ``w_word``
        (see :func:`weight_rows` for the layout). Write only while ``idle``.
    w_rdata : Out(ArrayLayout(signed(weight_bits), lanes))
        Word ``w_word`` of :attr:`READ_LATENCY` cycles before (registered),
        valid while the core was idle.
    u_we, u_addr, u_data : In
        Whole-word write (the training update unit's write-back), while idle.
        Its own address, so that the update can read word ``k + 1`` while it
        writes word ``k``; takes precedence over ``w_we``.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        lanes: int,
        *,
        weight_bits: int,
        membrane_bits: int,
        decay_shift: int,
        weights: np.ndarray | None = None,
    ) -> None:
        self._n_in = check_int("n_in", n_in, 1)
        self._n_out = check_int("n_out", n_out, 1)
        self._lanes = check_int("lanes", lanes, 1)
        self._weight_bits = check_int("weight_bits", weight_bits, 2)
        self._membrane_bits = check_int("membrane_bits", membrane_bits, weight_bits)
        self._decay_shift = check_int("decay_shift", decay_shift, 1, membrane_bits)
        self._blocks = -(-n_out // lanes)
        self._init = [] if weights is None else self._checked_weights(weights)
        super().__init__(
            {
                "events": In(stream.Signature(index_shape(n_in))),
                "fire": In(1),
                "clear": In(1),
                "idle": Out(1),
                "threshold": In(signed(membrane_bits)),
                "keep": In(n_out, init=(1 << n_out) - 1),
                "out_valid": Out(1),
                "out_block": Out(index_shape(self._blocks)),
                "out_spikes": Out(lanes),
                "out_membrane": Out(data.ArrayLayout(signed(membrane_bits), lanes)),
                "w_word": In(index_shape(self.depth)),
                "w_lane": In(index_shape(lanes)),
                "w_data": In(signed(weight_bits)),
                "w_we": In(1),
                "w_rdata": Out(data.ArrayLayout(signed(weight_bits), lanes)),
                "u_we": In(1),
                "u_addr": In(index_shape(self.depth)),
                "u_data": In(data.ArrayLayout(signed(weight_bits), lanes)),
            }
        )

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
        )

    def _checked_weights(self, weights: np.ndarray) -> list[list[int]]:
        w = np.asarray(weights)
        if w.shape != (self._n_out, self._n_in):
            raise ValueError(f"weights must have shape {(self._n_out, self._n_in)}, not {w.shape}")
        lo, hi = signed_range(self._weight_bits)
        if not np.issubdtype(w.dtype, np.integer) or w.min() < lo or w.max() > hi:
            raise ValueError(f"weights must be integers in [{lo}, {hi}]")
        return weight_rows(w, self._lanes)

    @property
    def n_in(self) -> int:
        return self._n_in

    @property
    def n_out(self) -> int:
        return self._n_out

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def blocks(self) -> int:
        """Cycles per input event and per pass: ``ceil(n_out / lanes)``."""
        return self._blocks

    @property
    def depth(self) -> int:
        """Words of the weight memory."""
        return self._n_in * self._blocks

    @property
    def acc_bits(self) -> int:
        """Membrane memory width: |v| + n_in * |w_max| never overflows it."""
        return max(self._membrane_bits, self._weight_bits + self._n_in.bit_length()) + 1

    #: Cycles from a membrane read to its write-back; an accumulate may read a block
    #: again only this many cycles after reading it.
    WRITE_DISTANCE = 4
    #: Cycles from a weight read to its word, registered (:class:`BankedMemory`).
    READ_LATENCY = BankedMemory.READ_LATENCY
    #: Pipeline stages after the issue: the weight read, then compute, reset value and
    #: write-back.
    STAGES = READ_LATENCY + 2

    @property
    def event_cycles(self) -> int:
        """Cycles per input event: ``B``, at least :attr:`WRITE_DISTANCE` (bubbles if B is
        smaller, so that an event never reads a block whose previous sum is in flight)."""
        return max(self._blocks, self.WRITE_DISTANCE)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p, nb, ne, lat = self._lanes, self._blocks, self.event_cycles, self.READ_LATENCY
        m.submodules.weights = wmem = BankedMemory(
            signed(self._weight_bits), max(self.depth, 2), p, init=self._init
        )
        m.submodules.membranes = vmem = Memory(
            shape=data.ArrayLayout(signed(self.acc_bits), p), depth=max(nb, 2), init=[]
        )
        v_wr = vmem.write_port()
        v_rd = vmem.read_port(transparent_for=(v_wr,))

        m.d.comb += [
            wmem.waddr.eq(Mux(self.u_we, self.u_addr, self.w_word)),
            wmem.wen.eq(Mux(self.u_we, (1 << p) - 1, self.w_we << self.w_lane)),
            self.w_rdata.eq(wmem.rdata),
        ]
        m.d.comb += [
            wmem.wdata[j].eq(Mux(self.u_we, self.u_data[j], self.w_data)) for j in range(p)
        ]

        # stage 0: issue the weight read, for an input event (acc) or a pass (fire / clear)
        acc_on = Signal()
        acc_addr = Signal(index_shape(self.depth))
        acc_cnt = Signal(index_shape(ne))  # cycle of the event; blocks >= B are bubbles
        pass_on = Signal()
        pass_fire = Signal()
        pass_block = Signal(index_shape(nb))
        # ops[k], blocks[k]: the op (acc, fire, clear) and block in stage k + 1
        stages = range(1, self.STAGES + 1)
        ops = [[Signal(name=f"s{k}_{op}") for op in ("acc", "fire", "clear")] for k in stages]
        blocks = [Signal(index_shape(nb), name=f"s{k}_block") for k in stages]
        in_flight = Cat(*(op for stage in ops for op in stage)).any()
        pass_in_flight = Cat(*(op for stage in ops for op in stage[1:])).any()

        last_cycle = acc_cnt == ne - 1
        m.d.comb += [
            self.events.ready.eq(~pass_on & ~pass_in_flight & (~acc_on | last_cycle)),
            self.idle.eq(~acc_on & ~pass_on & ~in_flight),
            wmem.raddr.eq(Mux(acc_on, acc_addr, self.w_word)),
        ]
        m.d.sync += [
            ops[0][0].eq(acc_on & (acc_cnt < nb)),
            ops[0][1].eq(pass_on & pass_fire),
            ops[0][2].eq(pass_on & ~pass_fire),
            blocks[0].eq(Mux(pass_on, pass_block, acc_cnt)),
        ]
        for k in range(1, self.STAGES):
            m.d.sync += [a.eq(b) for a, b in zip(ops[k], ops[k - 1], strict=True)]
            m.d.sync += blocks[k].eq(blocks[k - 1])
        with m.If(acc_on):
            m.d.sync += [acc_addr.eq(acc_addr + 1), acc_cnt.eq(acc_cnt + 1)]
            with m.If(last_cycle):
                m.d.sync += [acc_on.eq(0), acc_cnt.eq(0)]
        with m.If(self.events.valid & self.events.ready):
            m.d.sync += [acc_on.eq(1), acc_addr.eq(self.events.payload * nb), acc_cnt.eq(0)]

        with m.If(pass_on):
            m.d.sync += pass_block.eq(pass_block + 1)
            with m.If(pass_block == nb - 1):
                m.d.sync += [pass_on.eq(0), pass_block.eq(0)]
        with m.Elif(self.idle & (self.fire | self.clear)):
            m.d.sync += [pass_on.eq(1), pass_fire.eq(self.fire), pass_block.eq(0)]

        # stage lat - 2: the membrane read, so that its register meets the weight word
        m.d.comb += v_rd.addr.eq(blocks[lat - 3])
        pad = self._blocks * p - self._n_out
        v = Signal.like(v_rd.data, name="s_v")
        keep = Signal(p, name="s_keep")
        keep_all = Cat(self.keep, Const(0, pad))
        m.d.sync += [v.eq(v_rd.data), keep.eq(keep_all.word_select(blocks[lat - 2], p))]
        # stage lat: one carry chain per lane; lat + 1: pick the reset value (registered);
        # lat + 2: decay (fire) and write-back
        self._compute(m, v, wmem.rdata, keep, ops[lat - 1][1])
        reset = Signal(data.ArrayLayout(signed(self._membrane_bits), p), name="s_reset")
        m.d.sync += [reset[j].eq(self._reset_value(j)) for j in range(p)]
        total = delay(m, self._sum, 1, "s_sum")
        m.d.comb += [
            self.out_membrane.eq(reset),
            self.out_spikes.eq(delay(m, self._spikes, 1, "spk")),
        ]
        last = ops[lat + 1]
        m.d.comb += [
            v_wr.addr.eq(blocks[lat + 1]),
            v_wr.en.eq(Cat(*last).any()),
            self.out_valid.eq(last[1]),
            self.out_block.eq(blocks[lat + 1]),
        ]
        for j in range(p):
            with m.If(last[0]):
                m.d.comb += v_wr.data[j].eq(total[j])
            with m.Elif(last[1]):
                m.d.comb += v_wr.data[j].eq(reset[j] - (reset[j] >> self._decay_shift))
            # clear: data stays 0
        return m

    def _compute(
        self, m: Module, v: data.ArrayView, w: data.ArrayView, keep: Signal, firing: Signal
    ) -> None:
        """Accumulate ``v + w``, or the fire decision: one carry chain per lane, registered.

        ``v_sat >= thr`` equals ``v >= thr`` (``lo < 0 < thr <= hi``), the sign of
        ``v - thr``; saturation reads the bits above the membrane's sign. The
        registers hold ``v``, ``v - thr`` and the flags; the write-back stage picks
        the reset value among ``v - thr``, ``v``, the rails and ``hi - thr``
        (:meth:`_reset_value`) and decays it. The threshold is copied into the core
        (it only changes between samples) and ``hi - thr`` registered.
        """
        p, mb = self._lanes, self._membrane_bits
        hi = signed_range(mb)[1]
        thr = Signal(signed(mb), name="thr")
        self._hi_minus_thr = Signal(signed(mb), name="hi_minus_thr")
        m.d.sync += [thr.eq(self.threshold), self._hi_minus_thr.eq(hi - thr)]
        self._sum = Signal(data.ArrayLayout(signed(self.acc_bits), p), name="s_sum")
        self._v = Signal(data.ArrayLayout(signed(self.acc_bits), p), name="s_v2")
        self._minus = Signal(data.ArrayLayout(signed(self.acc_bits + 1), p), name="s_minus")
        self._flags = Signal(data.ArrayLayout(4, p), name="s_flags")  # over, under, fire, keep
        spikes = Signal(p, name="s_spikes")
        for j in range(p):
            vj = v[j]
            minus = vj - thr
            fire = ~minus[-1] & keep[j]
            top = vj[mb - 1 :]  # all zeros or all ones inside [lo, hi]
            over, under = ~vj[-1] & top.any(), vj[-1] & ~top.all()
            m.d.sync += [
                self._sum[j].eq(vj + w[j]),
                self._v[j].eq(vj),
                self._minus[j].eq(minus),
                self._flags[j].eq(Cat(over, under, fire, keep[j])),
                spikes[j].eq(fire & firing),
            ]
        self._spikes = spikes

    def _reset_value(self, j: int) -> Value:
        """Lane ``j``'s membrane after saturation and reset, from the registered decision."""
        lo, hi = signed_range(self._membrane_bits)
        over, under, fire, keep = (self._flags[j][k] for k in range(4))
        return Mux(
            over,
            Mux(keep, self._hi_minus_thr, hi),
            Mux(under, lo, Mux(fire, self._minus[j], self._v[j])),
        )
