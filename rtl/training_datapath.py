"""Training datapath: spike-train and desire memories, the desire and update units.

(docs/architecture.md, "Training".) Memories:

- train memory ``j`` per neuron layer (input, hidden, output): word ``w`` holds
  ``T`` elements of ``lanes`` bits, element ``t`` = the spikes the layer's word
  ``w`` emitted at step ``t`` (write granularity ``lanes``: each encoder step or
  fire pass writes its element). Spike trains, not traces: ``T`` bits per neuron
  instead of ``T x trace_bits``.
- desire memory ``j`` per non-input layer: word ``b`` holds the ternary desire
  ``q = sign * active * keep`` of the block's neurons (lane-granular writes,
  one hidden neuron at a time).

The :class:`rtl.training_sequencer.TrainingSequencer` issues reads (an
:class:`~rtl.training_sequencer.IssueSignature` per cycle). A read issued in
cycle ``k`` comes out of the small memories in ``k + 1``, into a register
right behind each in ``k + 2``, and meets the weight word (the cores'
``READ_LATENCY``) in cycle ``k + ISSUE_TO_UNIT``, where the units take it.
Their results come a fixed number of cycles later (``out_latency``,
``hid_latency``, ``latency``): the write addresses travel along in delay lines.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from desire.config import Config
from golden.fixed import constants
from rtl import check_int, check_layer_sizes, index_shape
from rtl.desire_unit import DesireUnit, q_shape, ternary
from rtl.encoder import PIXEL_BITS
from rtl.pipeline import delay
from rtl.prng import XorShift32
from rtl.training_sequencer import ISSUE_TO_UNIT, IssueSignature
from rtl.update_unit import UpdateUnit

__all__ = ["TrainingDatapath", "lane_train"]


def lane_train(word: Value, lane: Value | int, lanes: int, tsteps: int) -> Value:
    """The ``tsteps``-bit spike train (bit t = step t) of ``lane`` in a train-memory word."""
    return Cat(*(word[t * lanes : (t + 1) * lanes].bit_select(lane, 1) for t in range(tsteps)))


class TrainingDatapath(wiring.Component):
    """Datapath of neuron layers of ``layers[j]`` neurons, ``lanes`` per block, ``tsteps``
    steps, with the units ``desire`` and ``update``; ``stochastic``: one rounding-stream
    draw (seeded ``rounding_seed``) per loaded row.

    "Neuron layer ``j``" is the input of core ``j`` and the output of core ``j - 1``.

    Ports
    -----
    issue : In(IssueSignature)
        The training sequencer's reads (see there).
    phase : In(range(T + 1))
        The forward phase: in phase ``s`` the encoder outputs step ``s``, the
        cores step ``s - 1``.
    spk_valid : In(n_layers + 1)
        Bit ``j``: neuron layer ``j``'s producer outputs a spike word this cycle
        (the encoder's ``spk_*``, core ``j - 1``'s ``out_*``), written into
        element ``step`` of train word ``spk_word[j]``.
    spk_word, spk_bits : In.array(n_layers + 1)
    label : In(8)
        Class index of the training sample.
    lr_int : In(32)
        Learning-rate register.
    keep1, keep2, ... : In(layers[l])
        Keep mask of hidden layer ``l`` (1 .. n_layers - 1): a dropped neuron's
        desire is 0.
    w_read : Out(n_layers)
        Bit ``l``: core ``l``'s weight port must read word ``w_word`` this cycle.
    w_word : Out
    w_flat : Out
        ``w_word`` in the shared pool's one flat weight memory (the issue's ``flat``).
    w_rdata : In(ArrayLayout(signed(weight_bits), lanes)).array(n_layers)
        Core ``l``'s word at the ``w_word`` of ``ISSUE_TO_UNIT`` cycles before (the
        cores' ``READ_LATENCY``).
    u_we : Out(n_layers)
        Bit ``l``: write ``u_data`` into word ``u_addr`` of core ``l`` (the update's
        write-back, ``latency`` cycles after the word reached the update unit).
    u_addr, u_data : Out
    u_flat : Out
        ``u_addr`` in the shared pool's flat weight memory (the issue's ``flat``, delayed
        along with ``word``): from registers, no adder.
    rounding_state : Out(32)
        The rounding stream's state (seeded at reset, never reseeded).
    """

    def __init__(
        self,
        layers: Sequence[int],
        lanes: int,
        tsteps: int,
        *,
        weight_bits: int,
        desire: DesireUnit,
        update: UpdateUnit,
        stochastic: bool,
        rounding_seed: int,
    ) -> None:
        self._layers = check_layer_sizes(layers)
        self._lanes = check_int("lanes", lanes, 1)
        self._tsteps = check_int("tsteps", tsteps, 1)
        check_int("weight_bits", weight_bits, 2)
        if not isinstance(desire, DesireUnit):
            raise TypeError(f"desire must be a DesireUnit, not {desire!r}")
        if not isinstance(update, UpdateUnit):
            raise TypeError(f"update must be an UpdateUnit, not {update!r}")
        for name, unit, steps in (
            ("desire", desire, len(desire.trains[0])),
            ("update", update, len(update.row_train)),
        ):
            if (unit.lanes, steps) != (lanes, tsteps):
                raise ValueError(
                    f"{name} unit has {unit.lanes} lanes and {steps} steps, "
                    f"not {lanes} and {tsteps}"
                )
        if not isinstance(stochastic, bool):
            raise TypeError(f"stochastic must be a bool, not {stochastic!r}")
        self._desire, self._update, self._stochastic = desire, update, stochastic
        self._rng = XorShift32(rounding_seed)
        n_layers = len(layers) - 1
        self._words = [-(-n // lanes) for n in self._layers]
        depth = max(n * b for n, b in zip(self._layers[:-1], self._words[1:], strict=True))
        weight_word = data.ArrayLayout(signed(weight_bits), lanes)
        issue = IssueSignature.for_layers(self._layers, lanes)
        flat_shape = issue.members["flat"].shape
        super().__init__(
            {
                "issue": In(issue),
                "phase": In(range(tsteps + 1)),
                "spk_valid": In(n_layers + 1),
                "spk_word": In(index_shape(max(self._words))).array(n_layers + 1),
                "spk_bits": In(lanes).array(n_layers + 1),
                "label": In(PIXEL_BITS),
                "lr_int": In(32),
                **{f"keep{l}": In(self._layers[l]) for l in range(1, n_layers)},
                "w_read": Out(n_layers),
                "w_word": Out(range(depth + 1)),
                "w_flat": Out(flat_shape),
                "w_rdata": In(weight_word).array(n_layers),
                "u_we": Out(n_layers),
                "u_addr": Out(range(depth + 1)),
                "u_flat": Out(flat_shape),
                "u_data": Out(weight_word),
                "rounding_state": Out(32, init=rounding_seed),
            }
        )

    @classmethod
    def for_config(cls, cfg: Config) -> TrainingDatapath:
        c = constants(cfg)
        return cls(
            c.layers,
            cfg.hardware.lanes,
            c.tsteps,
            weight_bits=c.weight_bits,
            desire=DesireUnit.for_config(cfg),
            update=UpdateUnit.for_config(cfg),
            stochastic=c.rounding == "stochastic",
            rounding_seed=c.rounding_seed,
        )

    @property
    def tsteps(self) -> int:
        return self._tsteps

    @property
    def desire(self) -> DesireUnit:
        return self._desire

    @property
    def update(self) -> UpdateUnit:
        return self._update

    def keep(self, l: int) -> Signal:
        """The port ``keep<l>`` of hidden layer ``l``."""
        check_int("l", l, 1, len(self._layers) - 2)
        return getattr(self, f"keep{l}")

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p, tsteps, n_layers = self._lanes, self._tsteps, len(self._layers) - 1
        du, uu, iss = self._desire, self._update, self.issue
        m.submodules.desire = du
        m.submodules.update = uu
        m.submodules.rounding_rng = rng = self._rng
        m.d.comb += [self.rounding_state.eq(rng.state), uu.lr_int.eq(self.lr_int)]

        def train(word: Value, lane: Value | int) -> Value:
            return lane_train(word, lane, p, tsteps)

        trains_q, desire_rd, desire_wr = self._memories(m)
        # the issue, one cycle after (s1_*, beside the memories' outputs) and when the data
        # reaches the units (su_*, ISSUE_TO_UNIT after the read)
        s1_out, s1_block, s1_word = Signal(), Signal.like(iss.block), Signal.like(iss.word)
        s1_flat = Signal.like(iss.flat, init=0)
        s1_first, s1_last = Signal(), Signal()
        s1_mac, s1_upd = Signal.like(iss.mac), Signal.like(iss.upd)
        s1_g = Cat(Signal.like(iss.row_word), Signal.like(iss.row_lane), Signal.like(iss.row_index))
        m.d.sync += [s1_out.eq(iss.out), s1_block.eq(iss.block), s1_word.eq(iss.word)]
        m.d.sync += s1_flat.eq(iss.flat)
        m.d.sync += [s1_first.eq(iss.block == 0), s1_last.eq(iss.last)]
        m.d.sync += [s1_mac.eq(iss.mac), s1_upd.eq(iss.upd)]
        m.d.sync += s1_g.eq(Cat(iss.row_word, iss.row_lane, iss.row_index))
        at_unit = ISSUE_TO_UNIT - 1
        su_out, su_block, su_first, su_last, su_word, su_flat, su_g, su_mac, su_upd = (
            delay(m, x, at_unit, name)
            for x, name in (
                (s1_out, "su_out"),
                (s1_block, "su_blk"),
                (s1_first, "su_first"),
                (s1_last, "su_last"),
                (s1_word, "su_addr"),
                (s1_flat, "su_flat"),
                (s1_g, "su_g"),
                (s1_mac, "su_mac"),
                (s1_upd, "su_upd"),
            )
        )
        trains = [delay(m, q, at_unit - 1, f"trains_u{j}") for j, q in enumerate(trains_q)]
        desires = [None] + [
            delay(m, rd.data, at_unit, f"desire_u{j}") for j, rd in enumerate(desire_rd) if rd
        ]

        # update rows: the row's train as core l saw it (neuron layer l > 0 one step late) and
        # whether it never spiked, picked from the train register into registers
        for l in range(n_layers):
            lanes = [train(trains_q[l], j) for j in range(p)]
            if l > 0:
                lanes = [Cat(Const(0, 1), x[:-1]) for x in lanes]
            row_train = delay(m, Cat(*lanes).word_select(iss.row_lane, tsteps), 1, f"row_train{l}")
            spiked = Cat(*(x.any() for x in lanes))  # per lane first, then the lane pick
            silent = delay(m, ~spiked.bit_select(iss.row_lane, 1), 1, f"silent{l}")
            m.d.comb += iss.row_silent[l].eq(silent)
            with m.If(iss.load_row[l]):
                m.d.comb += [uu.row_train.eq(row_train), uu.row_load.eq(1)]
                if self._stochastic:
                    m.d.comb += [rng.draw.eq(1), uu.row_rand.eq(rng.value)]

        # weight reads of MACs and update words
        m.d.comb += [
            self.w_read.eq(iss.mac | iss.upd),
            self.w_word.eq(iss.word),
            self.w_flat.eq(iss.flat),
        ]

        # output-layer desire, written out_latency cycles after the read
        with m.If(su_out):
            m.d.comb += du.out_req.eq(1)
            m.d.comb += [du.trains[j].eq(train(trains[n_layers], j)) for j in range(p)]
            m.d.comb += [du.label_lane[j].eq(self.label == su_block * p + j) for j in range(p)]
        out, out_block = desire_wr[n_layers], delay(m, su_block, du.out_latency, "out_blk")
        with m.If(du.out_valid):
            m.d.comb += [out.addr.eq(out_block), out.en.eq(-1)]
            m.d.comb += [
                out.data[j].eq(ternary(du.out_active[j], du.out_sign[j], Const(1)))
                for j in range(p)
            ]

        # hidden desire: MACs of one g, its desire written hid_latency cycles after the last;
        # update words, written back latency cycles after the unit took them
        g = delay(m, su_g, du.hid_latency, "g")
        word_bits, lane_bits = len(iss.row_word), len(iss.row_lane)
        g_word, g_lane = g[:word_bits], g[word_bits : word_bits + lane_bits]
        g_index = g[word_bits + lane_bits :]
        m.d.comb += [
            self.u_addr.eq(delay(m, su_word, uu.latency, "upd_addr")),
            self.u_flat.eq(delay(m, su_flat, uu.latency, "upd_flat")),
            self.u_data.eq(uu.w_new),
        ]
        for l in range(n_layers):
            above, q_above = trains[l + 1], desires[l + 1]
            with m.If(su_mac[l]):  # one block of S_g += w[h, g] * E_h * q_h
                m.d.comb += [
                    du.mac_valid.eq(1),
                    du.mac_first.eq(su_first),
                    du.mac_last.eq(su_last),
                    du.weights.eq(self.w_rdata[l]),
                    du.q.eq(q_above),
                ]
                m.d.comb += [du.trains[j].eq(train(above, j)) for j in range(p)]
            if l > 0:
                hid = delay(m, su_mac[l] & su_last, du.hid_latency, f"hid{l}")
                with m.If(hid):  # desire of hidden neuron g of neuron layer l
                    dw = desire_wr[l]
                    q = ternary(du.hid_active, du.hid_sign, self.keep(l).bit_select(g_index, 1))
                    m.d.comb += [dw.addr.eq(g_word), dw.en.eq(1 << g_lane)]
                    m.d.comb += [dw.data[j].eq(q) for j in range(p)]
            with m.If(su_upd[l]):  # one weight word into the update pipeline
                m.d.comb += [
                    uu.word_valid.eq(1),
                    uu.word_first.eq(su_first),
                    uu.gate.eq(q_above),
                    uu.w_old.eq(self.w_rdata[l]),
                ]
                m.d.comb += [uu.post[j].eq(train(above, j)) for j in range(p)]
            m.d.comb += self.u_we[l].eq(delay(m, su_upd[l], uu.latency, f"upd{l}"))
        return m

    def _memories(
        self, m: Module
    ) -> tuple[list[Value], list[ReadPort | None], list[WritePort | None]]:
        """The train and desire memories, their train writes and read addresses.

        Returns, by neuron layer ``j``: the train memory's read data registered, the
        desire memory's read and write ports (``None`` for the input layer, which
        has no desire); the caller drives the desire writes.
        """
        p, tsteps, iss = self._lanes, self._tsteps, self.issue
        n_layers = len(self._layers) - 1
        step = Signal(range(tsteps + 1))  # the step the cores compute in this phase
        m.d.comb += step.eq(self.phase - 1)
        trains_q = []
        for j, words in enumerate(self._words):
            mem = Memory(shape=unsigned(tsteps * p), depth=max(words, 2), init=[])
            m.submodules[f"trains{j}"] = mem
            wr, rd = mem.write_port(granularity=p), mem.read_port()
            when = self.phase if j == 0 else step
            m.d.comb += [
                wr.addr.eq(self.spk_word[j]),
                wr.data.eq(Cat(*[self.spk_bits[j]] * tsteps)),
                wr.en.eq(Mux(self.spk_valid[j], Const(1, tsteps) << when, 0)),
            ]
            # the read address from a register, the word a cycle after it: as early as a
            # comb address with the word registered behind the memory, but the address net
            # to the memory's cells (hundreds of distributed-RAM cells on the ECP5) starts
            # at a flip-flop rather than after the issue's decode and this multiplexer,
            # which was the critical path at -6. The memories are written only in the
            # forward phases and read only in the training passes after them, so reading
            # a cycle later sees the same words.
            addr = Signal.like(rd.addr, name=f"trains_addr{j}")
            by_block = [iss.out] if j == n_layers else []  # output desire
            if j > 0:  # MACs and update words of core j - 1
                by_block += [iss.mac[j - 1], iss.upd[j - 1]]
            if by_block:
                with m.If(Cat(*by_block).any()):
                    m.d.comb += addr.eq(iss.block)
            if j < n_layers:  # update rows of core j
                with m.If(iss.read_row[j]):
                    m.d.comb += addr.eq(iss.read_word)
            m.d.comb += rd.addr.eq(delay(m, addr, 1, f"trains_addr{j}"))
            trains_q.append(rd.data)
        desire_rd: list[ReadPort | None] = [None]
        desire_wr: list[WritePort | None] = [None]
        for j in range(1, n_layers + 1):
            mem = Memory(
                shape=data.ArrayLayout(q_shape(), p), depth=max(self._words[j], 2), init=[]
            )
            m.submodules[f"desire{j}"] = mem
            rd = mem.read_port()
            with m.If(iss.mac[j - 1] | iss.upd[j - 1]):
                m.d.comb += rd.addr.eq(iss.block)
            desire_rd.append(rd)
            desire_wr.append(mem.write_port(granularity=1))
        return trains_q, desire_rd, desire_wr
