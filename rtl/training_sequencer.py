"""Training sequencer: the backward (desire) and update passes of a training sample.

(docs/architecture.md, "Training".) After the forward pass and the arg-max the
sequencer walks, in order:

- ``BWD_OUT``: one cycle per block of the output layer (its spike trains into
  the desire unit), then ``BWD_OUT_DRAIN`` until the desire is written;
- ``BWD_HID<l>`` for each hidden layer ``l`` from the top down: for every neuron
  ``g`` of layer ``l`` and block ``b`` of layer ``l + 1`` one MAC, weight word
  ``g * B + b`` of core ``l`` (the walk is the weight memory in order); then
  ``BWD_DRAIN<l>``;
- per weight layer ``l`` from the bottom up, per input row ``i``: ``UPD_ROW``
  reads the row's train word, ``UPD_LOAD`` registers it, ``UPD_CHECK`` reads the
  next row's, ``UPD_DECIDE`` loads the row into the update unit and skips a row
  whose input never spiked (nothing changes); else ``UPD_WAIT`` (the traces) and
  ``UPD_WORDS``, the ``B`` words ``i * B + b``, one per cycle; finally
  ``UPD_DONE`` until the last write-back.

With the weights in external memory (``external``) the weight words come from a stream
(:class:`rtl.axi_weight_reader.AxiWeightReader`, fed in the same order by
:class:`rtl.shared_pool.TrainingReads`) and the updated words go out through
:class:`rtl.axi_weight_writer.AxiWeightWriter`: the MAC walk and ``UPD_WORDS`` issue a
read only in a cycle where its word is there (``w_valid``) and, for an update word, the
writer has room for its write-back (``wb_room``); a stalled cycle issues nothing, so the
datapath's fixed alignment (:data:`ISSUE_TO_UNIT`) holds from every issue. ``UPD_DONE``
also waits for the writer to be idle, so that the next sample reads the new weights.
Without ``external`` none of this is built: the on-chip sequencer is cycle for cycle
what :func:`rtl.cycle_model.training_cycle_model` counts.

It only says what to read and when (:class:`IssueSignature`); the
:class:`rtl.training_datapath.TrainingDatapath` reads the memories, aligns the
data with the weight word (:data:`ISSUE_TO_UNIT`) and writes the results back.
:func:`rtl.cycle_model.training_cycle_model` counts the same states.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from desire.config import Config
from rtl import check_int, check_layer_sizes, index_shape
from rtl.desire_unit import DesireUnit
from rtl.neuron_core import NeuronCore
from rtl.update_unit import UpdateUnit

__all__ = [
    "ISSUE_TO_UNIT",
    "LOAD_TO_WORD",
    "IssueSignature",
    "TrainingSchedule",
    "TrainingSequencer",
    "flat_bases",
]

#: Cycles from a memory read to the training units' inputs: the weight memories'
#: read latency; the small memories' outputs are registered as often.
ISSUE_TO_UNIT = NeuronCore.READ_LATENCY
#: Cycles from an update row's ``load_row`` (state ``UPD_DECIDE``) to its first word
#: at the unit without wait states: ``UPD_WORDS`` (issue), the reads.
LOAD_TO_WORD = 1 + ISSUE_TO_UNIT
# After a row's last word issue, UPD_ROW, UPD_LOAD and UPD_CHECK take 3 cycles and the next
# load_row comes in UPD_DECIDE: no earlier than one cycle before that word reaches the
# update unit, as the unit requires.
assert ISSUE_TO_UNIT - 1 <= 4, "the update unit's row_load would overtake a word"


def flat_bases(layers: Sequence[int], lanes: int) -> tuple[int, ...]:
    """First word of every weight layer in the shared pool's one flat weight memory
    (:meth:`rtl.neuron_core.NeuronCore.word_address`): the layers' ``n_in * B`` words in
    order."""
    blocks = [-(-n // lanes) for n in layers[1:]]
    sizes = [n * b for n, b in zip(layers[:-1], blocks, strict=True)]
    return tuple(sum(sizes[:l]) for l in range(len(sizes)))


@dataclass(frozen=True)
class TrainingSchedule:
    """Wait states of the training passes, in cycles; all follow from the units' latencies.

    ``out_drain``, ``hid_drain``, ``update_drain``: ``BWD_OUT_DRAIN``,
    ``BWD_DRAIN<l>`` and ``UPD_DONE``, from the last read until the last result is
    written (:data:`ISSUE_TO_UNIT` plus the unit's latency). ``row_wait``:
    ``UPD_WAIT``, the cycles the update unit's traces need beyond
    :data:`LOAD_TO_WORD` (0: no wait state).
    """

    out_drain: int
    hid_drain: int
    update_drain: int
    row_wait: int

    def __post_init__(self) -> None:
        for name in ("out_drain", "hid_drain", "update_drain"):
            check_int(name, getattr(self, name), 1)
        check_int("row_wait", self.row_wait, 0)

    @classmethod
    def for_units(cls, desire: DesireUnit, update: UpdateUnit) -> TrainingSchedule:
        return cls(
            out_drain=desire.out_latency + ISSUE_TO_UNIT,
            hid_drain=desire.hid_latency + ISSUE_TO_UNIT,
            update_drain=update.latency + ISSUE_TO_UNIT,
            row_wait=max(0, update.load_cycles - LOAD_TO_WORD),
        )

    @classmethod
    def for_config(cls, cfg: Config) -> TrainingSchedule:
        return cls.for_units(DesireUnit.for_config(cfg), UpdateUnit.for_config(cfg))


class IssueSignature(wiring.Signature):
    """What the training sequencer has read in one cycle, from the sequencer's side.

    For ``n_layers`` weight layers of at most ``blocks`` blocks and ``depth`` words,
    at most ``rows`` input rows, ``lanes`` lanes. "Neuron layer ``j``" is the input
    of core ``j`` and the output of core ``j - 1``.

    Members
    -------
    out : Out(1)
        Output desire: the train word ``block`` of the output layer.
    mac : Out(n_layers)
        Bit ``l`` (1 .. n_layers - 1): one MAC of the hidden desire of neuron
        ``row_index`` of neuron layer ``l``: weight word ``word`` of core ``l``,
        train and desire word ``block`` of neuron layer ``l + 1``.
    upd : Out(n_layers)
        Bit ``l``: one update word of core ``l``: weight word ``word``, train and
        desire word ``block`` of neuron layer ``l + 1`` (row ``row_index``).
    block, word : Out
        Block within the row, weight word (``row * B + block``).
    flat : Out
        ``word`` in the shared pool's one flat weight memory: plus the first word of the
        weight layer being walked (:func:`flat_bases`), valid with ``mac`` and ``upd``.
        A register of its own beside ``word``, so that the flat memory's address needs
        no adder between the sequencer and the banks' address registers (an Fmax path).
    last : Out(1)
        ``block`` is the row's last.
    row_word, row_lane, row_index : Out
        The row (hidden neuron ``g`` or input ``i``) as word and lane of its train
        and desire memories, and as an index.
    read_row : Out(n_layers)
        Bit ``l``: read train word ``read_word`` of neuron layer ``l`` (the update
        rows' trains).
    read_word : Out
    load_row : Out(n_layers)
        Bit ``l``: hand the row to the update unit (its train as core ``l`` saw
        it, from the train word read two cycles before at lane ``row_lane``).
    row_silent : In(n_layers)
        Bit ``l``: that row never spiked (registered, valid with ``load_row``).
    """

    def __init__(
        self,
        *,
        n_layers: int,
        lanes: int,
        blocks: int,
        depth: int,
        rows: int,
        flat_depth: int | None = None,
        flat_init: int = 0,
    ) -> None:
        check_int("n_layers", n_layers, 1)
        check_int("lanes", lanes, 1)
        check_int("blocks", blocks, 1)
        check_int("depth", depth, 1)
        check_int("rows", rows, 1)
        flat_depth = depth if flat_depth is None else check_int("flat_depth", flat_depth, 1)
        check_int("flat_init", flat_init, 0, flat_depth)
        row_words = range(-(-rows // lanes) + 1)
        super().__init__(
            {
                "out": Out(1),
                "mac": Out(n_layers),
                "upd": Out(n_layers),
                "block": Out(range(blocks + 1)),
                "word": Out(range(depth + 1)),
                "flat": Out(range(flat_depth + 1), init=flat_init),
                "last": Out(1),
                "row_word": Out(row_words),
                "row_lane": Out(index_shape(lanes)),
                "row_index": Out(range(rows + 1)),
                "read_row": Out(n_layers),
                "read_word": Out(row_words),
                "load_row": Out(n_layers),
                "row_silent": In(n_layers),
            }
        )

    @classmethod
    def for_layers(cls, layers: Sequence[int], lanes: int) -> IssueSignature:
        """The signature for neuron layers of ``layers[j]`` neurons."""
        blocks = [-(-n // lanes) for n in layers[1:]]
        sizes = [n * b for n, b in zip(layers[:-1], blocks, strict=True)]
        return cls(
            n_layers=len(blocks),
            lanes=lanes,
            blocks=max(blocks),
            depth=max(sizes),
            rows=max(layers[:-1]),
            flat_depth=sum(sizes),
            flat_init=flat_bases(layers, lanes)[-1],  # the first layer walked
        )


class TrainingSequencer(wiring.Component):
    """Sequencer of the training passes of neuron layers of ``layers[j]`` neurons,
    ``lanes`` per block, with the wait states of ``schedule``.

    Ports
    -----
    start : In(1)
        Strobe: begin with ``BWD_OUT`` in the next cycle (the forward pass and the
        arg-max are over).
    done : Out(1)
        The last cycle (the last write-back lands); the sequencer idles after it.
    backward, update : Out(1)
        The cycle belongs to the backward / update pass.
    issue : Out(IssueSignature)
        The reads of this cycle.

    With ``external`` (the weights in external memory) also:

    w_valid : In(1)
        A weight word is on offer (the reader's ``words.valid``): a MAC or update word
        issues only then, and takes it (the issue strobes are the stream's ``ready``).
    wb_room : In(1)
        The writer can take one more write-back beyond those in flight (its ``room``): an
        update word issues only then, and reserves it.
    wb_idle : In(1)
        Every write-back is in memory: ``UPD_DONE`` ends (``done``) only then.
    """

    def __init__(
        self,
        layers: Sequence[int],
        lanes: int,
        schedule: TrainingSchedule,
        *,
        external: bool = False,
    ) -> None:
        self._layers = check_layer_sizes(layers)
        self._lanes = check_int("lanes", lanes, 1)
        if not isinstance(schedule, TrainingSchedule):
            raise TypeError(f"schedule must be a TrainingSchedule, not {schedule!r}")
        self._schedule = schedule
        self._blocks = [-(-n // lanes) for n in self._layers[1:]]
        if not isinstance(external, bool):
            raise TypeError(f"external must be a bool, not {external!r}")
        self._external = external
        members = {
            "start": In(1),
            "done": Out(1),
            "backward": Out(1),
            "update": Out(1),
            "issue": Out(IssueSignature.for_layers(self._layers, lanes)),
        }
        if external:
            members |= {"w_valid": In(1), "wb_room": In(1), "wb_idle": In(1)}
        super().__init__(members)

    @property
    def schedule(self) -> TrainingSchedule:
        return self._schedule

    @property
    def flat_bases(self) -> tuple[int, ...]:
        """First word of every weight layer in the flat memory that ``issue.flat`` addresses."""
        return flat_bases(self._layers, self._lanes)

    @property
    def external(self) -> bool:
        """Whether the weight words come from a stream and go out through a writer."""
        return self._external

    @contextmanager
    def _when(self, m: Module, go: Value | None) -> Iterator[None]:
        """The body of a read-issuing state: unconditional on chip, only in a cycle where
        ``go`` (external: its word is there) otherwise."""
        with m.If(go) if go is not None else nullcontext():
            yield

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p, layers, blocks, s = self._lanes, self._layers, self._blocks, self._schedule
        n_layers = len(blocks)
        iss = self.issue
        # flat = base[l] + word in the states of weight layer l: it moves with word, and
        # where word returns to 0 (a walk's end) it goes to the base of the next layer
        # walked (BWD_HID<l> -> layer l - 1, hidden or the first update layer 0; update
        # layer l -> l + 1; after the last, the first layer of the next sample's walk,
        # n_layers - 1, which is also its init)
        base = flat_bases(layers, p)
        drain = Signal(range(max(s.out_drain, s.hid_drain, s.update_drain, s.row_wait) + 1))

        def count(part: Signal) -> None:
            m.d.comb += part.eq(1)

        def next_block(n_blocks: int) -> None:
            """Advance ``word`` and ``block``; the caller moves on after the row's last."""
            m.d.comb += iss.last.eq(iss.block == n_blocks - 1)
            m.d.sync += [iss.word.eq(iss.word + 1), iss.block.eq(iss.block + 1)]
            m.d.sync += iss.flat.eq(iss.flat + 1)
            with m.If(iss.last):
                m.d.sync += iss.block.eq(0)

        def next_row(n_rows: int, done: str, more: str, next_base: int) -> None:
            """Advance the row; go to ``done`` after the last row (``flat`` to
            ``next_base``), else to ``more``."""
            m.d.sync += [iss.row_index.eq(iss.row_index + 1), iss.row_lane.eq(iss.row_lane + 1)]
            with m.If(iss.row_lane == p - 1):
                m.d.sync += [iss.row_lane.eq(0), iss.row_word.eq(iss.row_word + 1)]
            with m.If(iss.row_index == n_rows - 1):
                m.d.sync += [
                    iss.row_index.eq(0),
                    iss.row_lane.eq(0),
                    iss.row_word.eq(0),
                    iss.word.eq(0),
                    iss.flat.eq(next_base),
                ]
                m.next = done
            with m.Else():
                m.next = more

        def wait(part: Signal, cycles: int, then: str) -> None:
            """Wait ``cycles`` cycles (a unit's last result is written in the last one)."""
            count(part)
            m.d.sync += drain.eq(drain + 1)
            with m.If(drain == cycles - 1):
                m.d.sync += drain.eq(0)
                m.next = then

        first_update = "UPD_ROW0"
        mac_go = self.w_valid if self._external else None
        upd_go = self.w_valid & self.wb_room if self._external else None
        with m.FSM() as fsm:
            with m.State("IDLE"), m.If(self.start):
                m.next = "BWD_OUT"
            with m.State("BWD_OUT"):
                count(self.backward)
                m.d.comb += iss.out.eq(1)
                m.d.sync += iss.block.eq(iss.block + 1)
                with m.If(iss.block == blocks[-1] - 1):
                    m.d.sync += iss.block.eq(0)
                    m.next = "BWD_OUT_DRAIN"
            with m.State("BWD_OUT_DRAIN"):
                after = f"BWD_HID{n_layers - 1}" if n_layers > 1 else first_update
                wait(self.backward, s.out_drain, after)
            for l in range(n_layers - 1, 0, -1):  # desire of neuron layer l from layer l + 1
                with m.State(f"BWD_HID{l}"):
                    count(self.backward)
                    with self._when(m, mac_go):
                        # as a whole: bit 0 (no hidden desire) is never set, and left alone
                        # it would be a constant-only process, which Icarus never runs (X)
                        m.d.comb += iss.mac.eq(1 << l)
                        next_block(blocks[l])
                        with m.If(iss.last):
                            next_row(layers[l], f"BWD_DRAIN{l}", f"BWD_HID{l}", base[l - 1])
                with m.State(f"BWD_DRAIN{l}"):  # the MACs and the desire write of the last g
                    then = f"BWD_HID{l - 1}" if l > 1 else first_update
                    wait(self.backward, s.hid_drain, then)

            for l in range(n_layers):
                done = f"UPD_ROW{l + 1}" if l + 1 < n_layers else "UPD_DONE"
                upd_next = base[l + 1] if l + 1 < n_layers else base[-1]
                with m.State(f"UPD_ROW{l}"):
                    count(self.update)
                    m.d.comb += [iss.read_row[l].eq(1), iss.read_word.eq(iss.row_word)]
                    m.next = f"UPD_LOAD{l}"
                with m.State(f"UPD_LOAD{l}"):  # the row's train word into its register
                    count(self.update)
                    m.next = f"UPD_CHECK{l}"
                with m.State(f"UPD_CHECK{l}"):  # select the row's train; read the next row's
                    count(self.update)
                    next_word = Mux(iss.row_lane == p - 1, iss.row_word + 1, iss.row_word)
                    m.d.comb += [iss.read_row[l].eq(1), iss.read_word.eq(next_word)]
                    m.next = f"UPD_DECIDE{l}"
                with m.State(f"UPD_DECIDE{l}"):  # load the row into the unit, or skip it
                    count(self.update)
                    m.d.comb += iss.load_row[l].eq(1)
                    with m.If(iss.row_silent[l]):  # acc = 0 for the whole row: nothing changes
                        m.d.sync += iss.word.eq(iss.word + blocks[l])
                        m.d.sync += iss.flat.eq(iss.flat + blocks[l])
                        next_row(layers[l], done, f"UPD_CHECK{l}", upd_next)
                    with m.Else():
                        m.next = f"UPD_WAIT{l}" if s.row_wait else f"UPD_WORDS{l}"
                if s.row_wait:
                    with m.State(f"UPD_WAIT{l}"):  # the unit builds the row's traces
                        wait(self.update, s.row_wait, f"UPD_WORDS{l}")
                with m.State(f"UPD_WORDS{l}"):
                    count(self.update)
                    with self._when(m, upd_go):
                        m.d.comb += iss.upd[l].eq(1)
                        next_block(blocks[l])
                        with m.If(iss.last):
                            next_row(layers[l], done, f"UPD_ROW{l}", upd_next)
            with m.State("UPD_DONE"):  # until the write-back of the last word (is in memory)
                if self._external:
                    count(self.update)
                    with m.If(drain != s.update_drain - 1):
                        m.d.sync += drain.eq(drain + 1)
                    with m.Elif(self.wb_idle):
                        m.d.sync += drain.eq(0)
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
                else:
                    wait(self.update, s.update_drain, "IDLE")
                    with m.If(drain == s.update_drain - 1):
                        m.d.comb += self.done.eq(1)
        # one-hot, as the sample sequencer's FSM (rtl.sequencer)
        fsm.state.attrs["fsm_encoding"] = "one-hot"
        return m
