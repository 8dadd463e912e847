"""Step scanner: one time step's work for the shared lane pool, as one stream of operations.

The shared-pool accelerator (:class:`rtl.shared_accelerator.SharedAccelerator`) runs
every layer of a time step on one :class:`rtl.neuron_core.NeuronCore`: the input
events of layer 0, then layer 0's fire pass, then the events of layer 1, its fire
pass, and so on. This scanner turns the layers' input spike vectors into that
sequence, so the core sees one stream and never waits for a restart between layers:

- per layer ``l``, the indices of the set bits of its vector, lowest first
  (``fire = 0``, ``index`` local to the layer), then
- one fire operation of layer ``l`` (``fire = 1``, ``index = 0``), also when the
  layer had no input spike (its membranes still decay and may fire).

It scans like :class:`rtl.spike_scanner.SpikeScanner`: one ``width``-bit word at a
time, a silent word skipped in one cycle while the core is still busy with the
previous operation; a layer's fire operation is one more item after its words.
:func:`rtl.cycle_model.shared_cycle_model` copies the handshake register by register.

With ``memory`` the vectors live in block RAM outside the scanner (``hardware.spike_vectors
= "memory"``): instead of ``vectors`` it names the word it needs in the next cycle
(``read_word``, the next value of its word counter) and takes it a cycle later on
``read_data``, as a synchronous read port delivers it; the scan is cycle for cycle the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl import check_int, index_shape

__all__ = ["StepScanner", "op_layout"]


def op_layout(max_inputs: int, n_layers: int) -> data.StructLayout:
    """One operation of the step: an input event (``fire = 0``) or a fire pass of ``layer``."""
    return data.StructLayout(
        {
            "index": index_shape(max_inputs),
            "layer": index_shape(n_layers),
            "fire": 1,
        }
    )


class StepScanner(wiring.Component):
    """Scanner of the input vectors of layers of ``inputs[l]`` neurons, ``width`` per word.

    Ports
    -----
    vectors : In(sum_l words_l * width)
        The layers' input spike vectors, each padded to ``words_l = ceil(inputs[l] /
        width)`` words, layer 0 lowest; bit ``i`` of layer ``l``'s part = input ``i``.
        Must hold still from ``start`` until ``done``.
    start : In(1)
        Strobe: scan the step from layer 0 (abandons a scan in progress, and an
        operation offered but not yet taken).
    ops : Out(stream.Signature(op_layout(max inputs, L)))
        Per layer: its input indices ascending, each once, then its fire operation;
        from an output register.
    done : Out(1)
        Every operation was taken (also high after reset, low the cycle after ``start``).

    With ``memory``, instead of ``vectors``:

    read_word : Out(range(sum_l words_l + 1))
        The word of the vectors (numbered as in ``vectors``) to read for the next cycle.
    read_data : In(width)
        That word, one cycle after ``read_word`` named it.
    """

    def __init__(self, inputs: Sequence[int], width: int, *, memory: bool = False) -> None:
        if isinstance(inputs, str | bytes) or not isinstance(inputs, Sequence) or not inputs:
            raise TypeError(f"inputs must be a non-empty sequence of layer sizes, not {inputs!r}")
        self._inputs = tuple(check_int(f"inputs[{l}]", n, 1) for l, n in enumerate(inputs))
        self._width = check_int("width", width, 1)
        self._words = tuple(-(-n // width) for n in self._inputs)
        self._memory = memory
        n_words = sum(self._words)
        source = (
            {"read_word": Out(index_shape(n_words + 1)), "read_data": In(width)}
            if memory
            else {"vectors": In(n_words * width)}
        )
        super().__init__(
            {
                **source,
                "start": In(1),
                "ops": Out(stream.Signature(op_layout(max(self._inputs), len(self._inputs)))),
                "done": Out(1),
            }
        )

    @property
    def inputs(self) -> tuple[int, ...]:
        return self._inputs

    @property
    def width(self) -> int:
        return self._width

    @property
    def memory(self) -> bool:
        """The vectors come from a read port (``read_word``, ``read_data``)."""
        return self._memory

    @property
    def layer_words(self) -> tuple[int, ...]:
        """Words of each layer's vector: ``ceil(inputs[l] / width)``."""
        return self._words

    def items(self) -> list[tuple[int, int, int | None]]:
        """The scan order: (layer, word within the layer, word of ``vectors``) per word,
        and (layer, 0, None) for each layer's fire operation after its words."""
        out: list[tuple[int, int, int | None]] = []
        base = 0
        for l, n_words in enumerate(self._words):
            out += [(l, k, base + k) for k in range(n_words)]
            out.append((l, 0, None))
            base += n_words
        return out

    def elaborate(self, platform: object) -> Module:
        m = Module()
        w, items = self._width, self.items()
        n_items, n_words = len(items), sum(self._words)
        item_layer = Array(Const(l, index_shape(len(self._words))) for l, _, _ in items)
        item_local = Array(Const(k, index_shape(max(self._words))) for _, k, _ in items)
        item_fire = Array(Const(g is None, 1) for _, _, g in items)

        ptr = Signal(range(n_items + 1), init=n_items)  # next item to load
        # the word of ``vectors`` that item ``ptr`` loads (when it is a word): counted
        # beside ``ptr`` (+1 per word item loaded) rather than looked up from it, so that
        # the ``n_words``:1 multiplexer's select comes straight from a register
        word = Signal(index_shape(n_words + 1))
        word_next = Signal.like(word)  # what ``word`` holds in the next cycle
        m.d.comb += word_next.eq(word)
        m.d.sync += word.eq(word_next)
        if self._memory:
            m.d.comb += self.read_word.eq(word_next)
            loaded = self.read_data
        else:
            loaded = self.vectors.word_select(word, w)
        mask = Signal(w)  # bits of the loaded word not yet sent
        fire = Signal()  # the loaded item is a fire operation, not yet sent
        layer = Signal(index_shape(len(self._words)))
        local = Signal(index_shape(max(self._words)))
        lowest = Signal(index_shape(w))
        for j in reversed(range(w)):  # priority encoder: the last assignment (lowest j) wins
            with m.If(mask[j]):
                m.d.comb += lowest.eq(j)

        ops = self.ops
        take = ~ops.valid | ops.ready
        with m.If(take):
            m.d.sync += [
                ops.valid.eq((mask != 0) | fire),
                ops.payload.layer.eq(layer),
                ops.payload.fire.eq(mask == 0),
                ops.payload.index.eq(Mux(mask != 0, local * w + lowest, 0)),
            ]
        rest_mask = Mux(take, mask & (mask - 1), mask)
        rest_fire = fire & ~take  # a fire item has no bits (mask 0): it goes out when taken
        with m.If((rest_mask == 0) & ~rest_fire & (ptr != n_items)):
            m.d.sync += [
                mask.eq(Mux(item_fire[ptr], 0, loaded)),
                fire.eq(item_fire[ptr]),
                layer.eq(item_layer[ptr]),
                local.eq(item_local[ptr]),
                ptr.eq(ptr + 1),
            ]
            m.d.comb += word_next.eq(word + ~item_fire[ptr])
        with m.Else():
            m.d.sync += [mask.eq(rest_mask), fire.eq(rest_fire)]
        with m.If(self.start):
            m.d.sync += [ptr.eq(0), mask.eq(0), fire.eq(0), ops.valid.eq(0)]
            m.d.comb += word_next.eq(0)
        m.d.comb += self.done.eq((ptr == n_items) & (mask == 0) & ~fire & ~ops.valid)
        return m
