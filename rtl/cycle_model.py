"""Cycle models of the accelerator: cycles per sample from golden's spike trains, exact.

Pure Python: they build no logic and simulate none; they count the states of
:class:`rtl.sequencer.Sequencer` and :class:`rtl.training_sequencer.TrainingSequencer`
and copy the scanner / core handshake register by register (per layer, or the shared
pool's :class:`rtl.step_scanner.StepScanner` into one core), with the blocks'
latencies read from the blocks themselves. The Amaranth tests assert model ==
``CYCLES`` (and the training split) on every sample they simulate, so the models
can stand in for simulation on the large presets (``bench/rtl_speed.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from desire.config import Config
from golden.fixed import constants
from rtl.encoder import Encoder
from rtl.neuron_core import NeuronCore
from rtl.training_sequencer import TrainingSchedule

__all__ = ["CycleReport", "TrainingCycles", "cycle_model", "training_cycle_model"]


@dataclass(frozen=True)
class CycleReport:
    """Cycles of one sample (:func:`cycle_model`) and the bounds they are judged against.

    ``bound_sum`` is sum over steps and layers of input spikes x ``B_l`` (one
    shared set of lanes doing all the synaptic work); ``bound_parallel`` is sum
    over steps of the largest layer's work (one core per layer).
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
    n_words, depth = len(words), NeuronCore.STAGES
    per_event = max(blocks, NeuronCore.WRITE_DISTANCE)
    ptr = mask = cnt = pass_block = 0
    valid = acc_on = pass_on = fired = False
    stages = [False] * depth  # an op in pipeline stage 1 .. depth
    pass_stages = [False] * depth  # ... and it is a fire or clear
    cycle = 0
    while True:
        ready = not pass_on and not any(pass_stages) and (not acc_on or cnt == per_event - 1)
        scan_done = ptr == n_words and mask == 0 and not valid
        idle = not (acc_on or pass_on or any(stages))
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
        stages = [(acc_on and cnt < blocks) or pass_on, *stages[:-1]]
        pass_stages = [pass_on, *pass_stages[:-1]]
        if acc_on:
            acc_on, cnt = cnt != per_event - 1, (cnt + 1) % per_event
        if accept:
            acc_on, cnt = True, 0
        if pass_on:
            pass_on, pass_block = pass_block != blocks - 1, (pass_block + 1) % blocks
        elif fire:
            pass_on, pass_block, fired = True, 0, True
        cycle += 1


def _shared_phase(items: list[tuple[int, int | None]], blocks: list[int]) -> int:
    """Cycle (from the first WAIT cycle) at which the shared pool is done with one phase.

    ``items``: the step scanner's items in order, (layer, word mask) per word and
    (layer, None) per fire operation (:meth:`StepScanner.items`). A literal copy of the
    step scanner / core handshake, register by register (tests compare with ``CYCLES``).
    """
    depth, distance = NeuronCore.STAGES, NeuronCore.WRITE_DISTANCE
    ptr = mask = layer = offered = left = 0  # offered: the layer of the op on offer
    fire = valid = busy = False
    cool = [0] * len(blocks)
    stages = [False] * depth  # a block in pipeline stage 1 .. depth
    cycle = 0
    while True:
        ready = (not busy or left == 0) and cool[offered] == 0
        scan_done = ptr == len(items) and mask == 0 and not fire and not valid
        if scan_done and not busy and not any(stages):
            return cycle
        take = not valid or ready
        accepted = offered if valid and ready else None
        # the core: the issue slot, the pipeline, the hazard counters
        stages = [busy, *stages[:-1]]
        if busy:
            busy, left = left != 0, left - 1
        cool = [max(c - 1, 0) for c in cool]
        if accepted is not None:
            busy, left, cool[accepted] = True, blocks[accepted] - 1, distance - 1
        # the scanner: its output register, then the next word or fire item
        rest = mask & (mask - 1) if take else mask
        rest_fire = fire and not take  # a fire item has no bits
        if take:
            valid, offered = mask != 0 or fire, layer
        if rest == 0 and not rest_fire and ptr < len(items):
            layer, word = items[ptr]
            mask, fire, ptr = word or 0, word is None, ptr + 1
        else:
            mask, fire = rest, rest_fire
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
    shared = cfg.hardware.architecture == "shared"
    blocks = [-(-n // p) for n in c.layers[1:]]
    enc_words = -(-c.layers[0] // p)
    total, bound_sum, bound_par, lane_ops = c.layers[-1], 0, 0, 0
    for phase in range(tsteps + 1):
        done = [enc_words + Encoder.STAGES if phase < tsteps else 0]
        if phase == 0:  # the clear pass: every membrane word, one core or one per layer
            clears = [sum(blocks)] if shared else blocks
            done += [b + NeuronCore.STAGES for b in clears]
        work, items = [], []
        for l in range(n_layers if phase > 0 else 0):
            t_in = phase - 1 if l == 0 else phase - 2  # one-step delay for l > 0
            vec = (input_spikes if l == 0 else spikes[l - 1])[t_in] if t_in >= 0 else None
            if vec is None:
                vec = np.zeros(c.layers[l], dtype=bool)
            if shared:
                items += [(l, w) for w in _words(vec, p)] + [(l, None)]
            else:
                done.append(_core_phase(_words(vec, p), blocks[l]))
            events = int(vec.sum())
            work.append(events * blocks[l])
            lane_ops += events * c.layers[l + 1]
        if items:
            done.append(_shared_phase(items, blocks))
        total += max(done) + 2
        bound_sum += sum(work)
        bound_par += max(work, default=0)
    return CycleReport(total, bound_sum, bound_par, lane_ops)


@dataclass(frozen=True)
class TrainingCycles:
    """Cycles of one training sample (:func:`training_cycle_model`), split by pass.

    ``forward`` includes the dropout draws, the ``T + 1`` phases and arg-max;
    ``backward`` and ``update`` equal the ``CYCLES_BACKWARD`` and
    ``CYCLES_UPDATE`` registers. ``update_bound`` is the work no P-lane update
    can avoid: one cycle per weight word of every row whose input spiked.
    """

    forward: int
    backward: int
    update: int
    update_bound: int

    @property
    def total(self) -> int:
        """The ``CYCLES`` register of the sample."""
        return self.forward + self.backward + self.update


def training_cycle_model(
    cfg: Config, input_spikes: np.ndarray, spikes: list[np.ndarray]
) -> TrainingCycles:
    """Cycles of one training sample from golden's training spike trains (exact).

    ``input_spikes`` (T, n_in) and ``spikes[l]`` (T, n_l) as in :func:`cycle_model`,
    from ``GoldenNet.train_step(..., record=True).forward``. Counts the states of
    the training sequencer: ``MASK`` (one draw per neuron of each layer with
    dropout), the forward pass (:func:`cycle_model`), ``BWD_OUT`` (``B_L``) and its
    drain (``out_drain``), per hidden layer ``l`` one MAC cycle per weight word
    (``n_l * B_l``) and a drain (``hid_drain``); per update layer 2 cycles (first
    row read, register), per row 2 (load and read of the next row's word, decide
    on silence), per row whose input spiked the trace wait (``row_wait``), ``B_l``
    words and 2 to read the next row again, and a final drain (``update_drain``).
    The drains and the wait are the sequencer's
    (:class:`rtl.training_sequencer.TrainingSchedule`).
    """
    c, p = constants(cfg), cfg.hardware.lanes
    s = TrainingSchedule.for_config(cfg)
    blocks = [-(-n // p) for n in c.layers[1:]]
    draws = sum(n for j, n in enumerate(c.layers[:-1]) if c.drop_p[j] > 0)
    forward = draws + cycle_model(cfg, input_spikes, spikes).cycles
    backward = blocks[-1] + s.out_drain
    backward += sum(c.layers[l] * blocks[l] + s.hid_drain for l in range(1, c.n_linear))
    update, bound = s.update_drain, 0
    for l in range(c.n_linear):
        # what layer l saw: the encoder, or neuron layer l one step late (the last step unseen)
        seen = input_spikes if l == 0 else spikes[l - 1][:-1]
        active = seen.any(axis=0)
        n_active = int(active.sum())
        reread = int(active[:-1].sum())  # an active row but the last: read the next row again
        update += 2 + 2 * c.layers[l] + n_active * (s.row_wait + blocks[l]) + 2 * reread
        bound += n_active * blocks[l]
    return TrainingCycles(forward, backward, update, bound)
