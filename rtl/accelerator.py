"""Top level: encoder and one neuron core per layer running a whole sample (inference).

Schedule (docs/architecture.md has the diagram). A sample is ``T + 1`` phases.
In phase ``s`` the encoder computes step ``s`` (if ``s < T``) while every core
computes its step ``s - 1`` (if ``s >= 1``) from the spike vector its producer
wrote in phase ``s - 1``. That is the spec's one-step delay for layers > 0, and
no delay for layer 0 because the encoder runs one phase ahead. Each producer
owns two spike vectors (registers, one word = ``lanes`` bits) and writes
``vector[s % 2]`` while its consumer scans ``vector[(s + 1) % 2]``; a phase ends
when every block is done (a barrier), then the vectors swap.

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
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from desire.config import Config
from golden.fixed import constants
from rtl import check_int, index_shape
from rtl.encoder import PIXEL_BITS, Encoder
from rtl.neuron_core import NeuronCore

__all__ = [
    "DATA_BITS",
    "Accelerator",
    "CycleReport",
    "MmioSignature",
    "RegisterMap",
    "SpikeScanner",
    "Status",
    "cycle_model",
]

#: Width of the memory-mapped data bus.
DATA_BITS = 32


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
    """

    STATUS = 0
    CYCLES = 1
    STALLS = 2
    THRESHOLD = 4

    def __init__(self, n_layers: int) -> None:
        self.n_layers = check_int("n_layers", n_layers, 1)
        self.EVENTS = self.THRESHOLD + n_layers
        self.size = self.EVENTS + n_layers


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
        Data at the ``addr`` of the previous cycle (reads have no strobe and
        no side effects). Weights read 0 while a sample runs.
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


class Accelerator(wiring.Component):
    """The inference accelerator for ``cfg``; ``weights`` (optional) initialise the memories.

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
        for l, core in enumerate(self._cores):
            m.submodules[f"core{l}"] = core
            m.d.comb += core.keep.eq((1 << core.n_out) - 1)  # no dropout in inference

        # spike vectors: [producer][parity]; producer 0 is the encoder, l + 1 is core l
        sizes = [enc.words] + [core.blocks for core in self._cores[:-1]]
        vectors = [
            [Signal(n * p, name=f"spikes{k}_{b}") for b in range(2)] for k, n in enumerate(sizes)
        ]
        par = Signal()
        scanners = []
        for l, core in enumerate(self._cores):
            m.submodules[f"scanner{l}"] = scan = SpikeScanner(sizes[l], p)
            m.d.comb += [
                scan.vector.eq(Mux(par, vectors[l][0], vectors[l][1])),
                core.events.payload.eq(scan.events.payload),
                core.events.valid.eq(scan.events.valid),
                scan.events.ready.eq(core.events.ready),
            ]
            scanners.append(scan)

        producers = [(enc.spk_valid, enc.spk_word, enc.spk_bits)] + [
            (core.out_valid, core.out_block, core.out_spikes) for core in self._cores[:-1]
        ]
        for vec, (valid, word, bits) in zip(vectors, producers, strict=True):
            with m.If(valid):
                with m.If(par):
                    m.d.sync += vec[1].word_select(word, p).eq(bits)
                with m.Else():
                    m.d.sync += vec[0].word_select(word, p).eq(bits)

        counts = self._class_counts(m)
        thresholds, busy = self._control(m, vectors, scanners, counts, par)
        for core, thr in zip(self._cores, thresholds, strict=True):
            m.d.comb += core.threshold.eq(thr)
        self._bus(m, thresholds, busy)
        return m

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
        vectors: list[list[Signal]],
        scanners: list[SpikeScanner],
        counts: list[Signal],
        par: Signal,
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
        pix_word = Signal(index_shape(enc.words))
        pix_lane = Signal(index_shape(self._lanes))
        phase = Signal(range(c.tsteps + 1))
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

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.pixels.ready.eq(1)
                with m.If(self.pixels.valid):
                    m.d.comb += enc.pix_we.eq(1)
                    m.d.sync += pix_lane.eq(pix_lane + 1)
                    with m.If(pix_lane == self._lanes - 1):
                        m.d.sync += [pix_lane.eq(0), pix_word.eq(pix_word + 1)]
                    with m.If(pix_word * self._lanes + pix_lane == c.layers[0] - 1):
                        m.d.sync += [pix_lane.eq(0), pix_word.eq(0), phase.eq(0), par.eq(0)]
                        m.d.sync += [cycles.eq(0), *[e.eq(0) for e in events]]
                        m.d.sync += [cnt.eq(0) for cnt in counts]
                        m.d.sync += [v.eq(0) for pair in vectors for v in pair]
                        m.next = "LAUNCH"
            with m.State("LAUNCH"):
                m.d.comb += [busy.eq(1), enc.start.eq(phase != c.tsteps), enc.first.eq(phase == 0)]
                for core, scan in zip(cores, scanners, strict=True):
                    m.d.comb += [core.clear.eq(phase == 0), scan.start.eq(phase != 0)]
                m.d.sync += [cycles.eq(cycles + 1), fired.eq(0)]
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
                        m.d.sync += [phase.eq(phase + 1), par.eq(~par)]
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
                    m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += self.result.valid.eq(1)
                with m.If(self.result.ready):
                    m.next = "IDLE"
        return thresholds, busy

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
            m.d.comb += [core.w_word.eq(word), core.w_lane.eq(lane), core.w_data.eq(bus.wdata)]
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
            with m.Default():
                m.d.sync += reg_rdata.eq(0)
        was_weight = Signal()
        was_layer = Signal(index_shape(c.n_linear))
        was_lane = Signal(index_shape(self._lanes))
        m.d.sync += [was_weight.eq(is_weight & ~busy), was_layer.eq(layer), was_lane.eq(lane)]
        weight_rdata = Array(
            Array(core.w_rdata[j] for j in range(self._lanes)) for core in self._cores
        )[was_layer][was_lane]
        m.d.comb += bus.rdata.eq(Mux(was_weight, weight_rdata, reg_rdata))  # sign-extends w


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
    n_words = len(words)
    ptr = mask = block = pass_block = 0
    valid = acc_on = s1 = pass_on = s1_pass = fired = False
    cycle = 0
    while True:
        ready = not pass_on and (not acc_on or block == blocks - 1)
        scan_done = ptr == n_words and mask == 0 and not valid
        idle = not (acc_on or pass_on or s1 or s1_pass)
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
        s1, s1_pass = acc_on, pass_on
        if acc_on:
            acc_on, block = block != blocks - 1, (block + 1) % blocks
        if accept:
            acc_on, block = True, 0
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
        done = [enc_words + 1 if phase < tsteps else 0]
        work = []
        for l in range(n_layers):
            if phase == 0:
                done.append(blocks[l] + 1)  # clear pass
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
