"""Exact cycle model of the external-memory inference path, for an ideal memory.

``hardware.architecture = "shared"``, ``hardware.weights = "external"``, inference
(docs/accelerator-v2.md, "Exact cycle model of the external path"). Why a
second model: :func:`rtl.cycle_model.cycle_model` counts the on-chip pool, where the
weights are always there; with the weights outside, the core takes an event only when
its whole row is in the reader's buffer, so the cycles depend on when the rows were
posted, how the reader split them into bursts against its credits, and when the
memory answered. The planning model (:func:`rtl.perf_model.shared`) estimates that
within about 1 %; this one copies it register by register, so that it equals the
``CYCLES`` register on every sample (tests/test_external_cycle_model.py) and can stand
in for simulation on the paper-size network.

The memory is ideal: ``arready`` always high; the first beat of a burst whose AR
handshake is in cycle ``c`` has ``rvalid`` in cycle ``c + latency`` (``latency >= 1``),
unless the beats of earlier bursts still occupy R, in which case it follows the last
of them; one beat per cycle, ``rvalid`` never paused, ``rresp`` OKAY. That is the
testbench slave of tests/test_rtl_accelerator_external.py with a fixed latency and
no gaps.

What is copied, per forward phase (the sequencer's ``LAUNCH`` / ``WAIT`` and the
encoder as :func:`rtl.cycle_model.cycle_model` counts them):

- the prefetch :class:`rtl.step_scanner.StepScanner`, its ops taken by the reader's
  ``requests.ready`` (fire items at once);
- :class:`rtl.axi_weight_reader.AxiWeightReader`: the request split into bursts
  (4 KB boundary, 256 beats, the credits, ``burst_threshold``), the AR register, the
  beat counter of multi-beat words, the FIFO (a memory plus an output register) and
  its ``level``;
- the core's :class:`rtl.step_scanner.StepScanner` and the
  :class:`rtl.neuron_core.NeuronCore` take rule (issue slot, hazard counters, an event
  only when ``w_level`` covers its row beyond the word taken this cycle) and pipeline.

The blocks' sizes and constants are read from the RTL classes (:func:`shared_core`,
:class:`AxiWeightReader`, :data:`rtl.axi.AXI_4K`, :data:`rtl.axi.AXI_MAX_BEATS`).
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from desire.config import Config
from golden.fixed import constants
from rtl.axi import AXI_4K, AXI_MAX_BEATS
from rtl.axi_weight_reader import AxiWeightReader
from rtl.cycle_model import CycleReport, _words
from rtl.encoder import Encoder
from rtl.neuron_core import NeuronCore
from rtl.shared_pool import shared_core

__all__ = ["ReaderGeometry", "external_cycle_model"]

#: An item of the step scanner: (layer, word within the layer, its mask; None: a fire).
Item = tuple[int, int, int | None]


@dataclass(frozen=True)
class ReaderGeometry:
    """What the timing of the weight reader and the core's buffer depend on, read from
    the RTL classes of one configuration (:meth:`for_config`)."""

    lanes: int
    blocks: tuple[int, ...]  # B_l
    word_base: tuple[int, ...]  # flat word of layer l's first row
    data_bytes: int
    beats: int  # beats per word
    stride: int  # bytes per word
    depth_words: int  # the reader's FIFO (the core's buffer_words)
    credits: int  # beats of FIFO
    threshold: int  # free beats that let a partial burst go out

    @classmethod
    def for_config(cls, cfg: Config) -> ReaderGeometry:
        """The geometry of ``cfg``'s external-weight shared pool (the reader
        :func:`rtl.shared_pool.external_weights` builds), from the blocks built but
        never elaborated (cached: a sample's model asks for it once)."""
        return _geometry(cfg)


@functools.lru_cache(maxsize=32)
def _geometry(cfg: Config) -> ReaderGeometry:
    """:meth:`ReaderGeometry.for_config`, cached per configuration."""
    hw = cfg.hardware
    if hw.architecture != "shared" or hw.weights != "external":
        raise ValueError("the external cycle model needs architecture = shared, weights = external")
    core = shared_core(cfg)
    assert core.buffer_words is not None
    blocks = core.layer_blocks
    reader = AxiWeightReader(
        core.lanes,
        constants(cfg).weight_bits,
        hw.axi_bytes,
        depth_words=core.buffer_words,
        max_row_words=max(blocks),
    )
    for block in (core, reader):  # built for their sizes only, never elaborated
        block._MustUse__silence = True  # type: ignore[attr-defined]
    return ReaderGeometry(
        lanes=core.lanes,
        blocks=tuple(blocks),
        word_base=tuple(core.word_address(l, 0, 0) for l in range(len(blocks))),
        data_bytes=reader.data_bytes,
        beats=reader.beats_per_word,
        stride=reader.stride,
        depth_words=reader.depth_words,
        credits=reader.credit_beats,
        threshold=reader.burst_threshold,
    )


def _external_phase(items: Sequence[Item], g: ReaderGeometry, latency: int, base: int) -> int:
    """Cycle (from the first WAIT cycle) at which the shared pool with external weights
    is done with one phase: a literal copy, register by register, of the prefetch
    scanner, the reader, the ideal memory, the core's scanner and the core's take rule
    (tests compare with ``CYCLES``). Every register starts as a phase finds it: scanners
    started, the reader idle with all its credits, the core idle."""
    depth, distance = NeuronCore.STAGES, NeuronCore.WRITE_DISTANCE
    blocks, lanes, beats = g.blocks, g.lanes, g.beats
    n_items = len(items)
    size = g.data_bytes.bit_length() - 1
    beats_4k = AXI_4K >> size
    stage_mask = (1 << depth) - 1
    # the core's scanner: its item pointer and loaded word, its output register
    s_ptr = s_mask = s_layer = 0
    s_fire = s_valid = s_off_fire = False
    s_off_layer = 0
    # the prefetch scanner, the same registers and the offered index
    a_ptr = a_mask = a_layer = a_local = 0
    a_fire = a_valid = a_off_fire = False
    a_off_layer = a_off_index = 0
    # the reader: the request being split, the credits, the AR register
    active = ar_valid = False
    cur_addr = cur_left = ar_len = 0
    free = g.credits
    # the memory: bursts' beats as (first cycle, beats), one beat per cycle on R
    bursts: deque[list[int]] = deque()
    next_beat = 0
    beat_phase = 0  # beats of the current word received
    inner_level, out_valid = 0, False  # the FIFO's memory and its output register
    # the core: issue slot, hazard counters, pipeline (a bit per stage)
    busy = op_fire = False
    left = 0
    cool = [0] * len(blocks)
    stages = 0
    cycle = 0
    while True:
        # --- combinational, from this cycle's registers -------------------------------
        if active:
            to_4k = beats_4k - ((cur_addr & (AXI_4K - 1)) >> size)
            piece = min(cur_left, to_4k, AXI_MAX_BEATS)
            whole = free >= piece
            burst = piece if whole else free
            issue = whole or free >= g.threshold  # arready is always high
            req_ready = issue and burst == cur_left
        else:
            issue, burst, req_ready = False, 0, True
        level = inner_level + 1 if out_valid else 0
        issuing_acc = busy and not op_fire
        slot_free = not busy or left == 0
        s_ready = (
            slot_free
            and cool[s_off_layer] == 0
            and (s_off_fire or level >= blocks[s_off_layer] + (issuing_acc and left == 0))
        )
        s_done = s_ptr == n_items and s_mask == 0 and not s_fire and not s_valid
        if s_done and not busy and not stages:
            assert not active and free == g.credits, "the reader drained with the phase"
            return cycle
        a_ready = a_off_fire or req_ready
        request = a_valid and not a_off_fire and req_ready
        if issuing_acc and not out_valid:
            raise AssertionError(f"cycle {cycle}: the core takes a word the reader lacks")

        # --- the memory: AR handshake, the beat on R this cycle -----------------------
        if ar_valid:
            first = max(cycle + latency, next_beat)
            bursts.append([first, ar_len + 1])
            next_beat = first + ar_len + 1
        rvalid = bool(bursts) and bursts[0][0] <= cycle
        if rvalid:
            head = bursts[0]
            head[0] += 1
            head[1] -= 1
            if head[1] == 0:
                bursts.popleft()
        word_done = rvalid and beat_phase == beats - 1
        if rvalid:
            beat_phase = 0 if beat_phase == beats - 1 else beat_phase + 1

        # --- the reader's FIFO and credits --------------------------------------------
        do_read = inner_level != 0 and (not out_valid or issuing_acc)
        taken = out_valid and issuing_acc
        inner_level += word_done - do_read
        if do_read:
            out_valid = True
        elif issuing_acc:
            out_valid = False
        free += (beats if taken else 0) - (burst if issue else 0)
        # --- the reader's AR side ------------------------------------------------------
        if issue:
            ar_valid, ar_len = True, burst - 1
            cur_addr, cur_left, active = (
                cur_addr + (burst << size),
                cur_left - burst,
                burst != cur_left,
            )
        else:
            ar_valid = False
        if request:
            row = g.word_base[a_off_layer] + a_off_index * blocks[a_off_layer]
            addr = (base + row * g.stride) & 0xFFFF_FFFF
            cur_addr = addr >> size << size
            cur_left, active = blocks[a_off_layer] * beats, True

        # --- the core: issue slot, pipeline, hazard counters --------------------------
        accepted = s_valid and s_ready
        stages = ((stages << 1) | busy) & stage_mask
        if busy:
            busy, left = left != 0, left - 1
        cool = [c - 1 if c else 0 for c in cool]
        if accepted:
            busy, left, op_fire = True, blocks[s_off_layer] - 1, s_off_fire
            cool[s_off_layer] = distance - 1

        # --- the core's scanner: its output register, then the next item -------------
        take = not s_valid or s_ready
        rest = s_mask & (s_mask - 1) if take else s_mask
        rest_fire = s_fire and not take
        if take:
            s_valid, s_off_layer, s_off_fire = s_mask != 0 or s_fire, s_layer, s_mask == 0
        if rest == 0 and not rest_fire and s_ptr < n_items:
            s_layer, _, word = items[s_ptr]
            s_mask, s_fire, s_ptr = word or 0, word is None, s_ptr + 1
        else:
            s_mask, s_fire = rest, rest_fire

        # --- the prefetch scanner -------------------------------------------------------
        take = not a_valid or a_ready
        rest = a_mask & (a_mask - 1) if take else a_mask
        rest_fire = a_fire and not take
        if take:
            a_valid, a_off_layer, a_off_fire = a_mask != 0 or a_fire, a_layer, a_mask == 0
            lowest = (a_mask & -a_mask).bit_length() - 1
            a_off_index = a_local * lanes + lowest if a_mask else 0
        if rest == 0 and not rest_fire and a_ptr < n_items:
            a_layer, a_local, word = items[a_ptr]
            a_mask, a_fire, a_ptr = word or 0, word is None, a_ptr + 1
        else:
            a_mask, a_fire = rest, rest_fire
        cycle += 1


def external_cycle_model(
    cfg: Config,
    input_spikes: np.ndarray,
    spikes: list[np.ndarray],
    latency: int | None = None,
    *,
    base: int = 0,
) -> CycleReport:
    """Cycles of one inference sample on the external-memory shared pool behind an ideal
    memory of ``latency`` cycles (default ``hardware.axi_latency``; module docstring),
    the weight table at byte ``base`` (``WEIGHT_BASE``; only its offset in a 4 KB page
    matters). ``input_spikes`` (T, n_in) and ``spikes[l]`` (T, n_l) as
    :func:`rtl.cycle_model.cycle_model` takes them; so are the phases, the encoder, the
    clear pass and the arg-max counted, and the bounds reported."""
    if cfg.hardware.training:
        raise ValueError("the external cycle model covers inference builds (training = false)")
    latency = cfg.hardware.axi_latency if latency is None else latency
    if not isinstance(latency, int) or latency < 1:
        raise ValueError(f"latency must be an int >= 1, not {latency!r}")
    g = ReaderGeometry.for_config(cfg)
    c, p = constants(cfg), g.lanes
    tsteps, n_layers, blocks = c.tsteps, c.n_linear, g.blocks
    enc_words = -(-c.layers[0] // p)
    total, bound_sum, bound_par, lane_ops = c.layers[-1], 0, 0, 0
    for phase in range(tsteps + 1):
        done = [enc_words + Encoder.STAGES if phase < tsteps else 0]
        if phase == 0:  # the clear pass: every membrane word
            done.append(sum(blocks) + NeuronCore.STAGES)
        items: list[Item] = []
        work = []
        for l in range(n_layers if phase > 0 else 0):
            t_in = phase - 1 if l == 0 else phase - 2  # one-step delay for l > 0
            vec = (input_spikes if l == 0 else spikes[l - 1])[t_in] if t_in >= 0 else None
            if vec is None:
                vec = np.zeros(c.layers[l], dtype=bool)
            items += [(l, k, w) for k, w in enumerate(_words(vec, p))] + [(l, 0, None)]
            events = int(vec.sum())
            work.append(events * blocks[l])
            lane_ops += events * c.layers[l + 1]
        if items:
            done.append(_external_phase(items, g, latency, base))
        total += max(done) + 2
        bound_sum += sum(work)
        bound_par += max(work, default=0)
    return CycleReport(total, bound_sum, bound_par, lane_ops)
