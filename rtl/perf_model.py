"""Performance model of accelerator architectures: cycles per sample from spike trains.

The planning model behind issue 12 ("every lane busy every cycle"). It counts cycles
of three ways to organise ``P_total`` lanes, from one sample's spike trains
(golden's ``forward(record=True)``), so that the alternatives are compared on the
same workload before any RTL is written:

- ``per_layer``: today's design (one core of ``P`` lanes per layer, layers run
  concurrently as a layer pipeline, a barrier per time step): the exact
  :func:`rtl.cycle_model.cycle_model`.
- ``shared``: one pool of ``P_total`` lanes time-shared over the layers inside each
  time step. The one-step delay between layers makes every layer's step-``t`` input
  known when step ``t`` starts, so the layers' events stream back to back through one
  pipeline; each layer's fire pass follows its own events.
- ``proportional``: the per-layer design with the lanes split in proportion to each
  layer's measured work (at least one lane, and a lane count that divides no worse).

Weights come from on-chip block RAM (one word of ``P`` weights per cycle) or from
external memory at ``bytes_per_cycle`` with ``latency`` cycles to the first beat. A
weight row (the ``B_l`` words an input spike needs) is fetched as one burst; the
scanner's look-ahead lets the fetch of the next row overlap the current one, so an
event costs ``max(compute, transfer)`` cycles and the latency is paid once per time
step, where the next step's vectors become known.

All three count the same lane bound: useful synaptic operations (input spikes x
``n_out``) divided by all lanes in the design, and the memory bound: weight bytes
moved divided by the bandwidth.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rtl.neuron_core import NeuronCore

__all__ = ["ArchResult", "Memory", "Workload", "lane_bound", "proportional", "shared"]

#: cycles from a weight read to the membrane write-back (the core's pipeline)
PIPELINE = NeuronCore.STAGES
#: cycles to turn from one layer's events to the next inside one step (scanner restart)
LAYER_SWITCH = 2


@dataclass(frozen=True)
class Memory:
    """Where weights come from: on chip (``bytes_per_cycle`` None) or external."""

    bytes_per_cycle: float | None = None
    latency: int = 0
    weight_bits: int = 16

    @property
    def external(self) -> bool:
        return self.bytes_per_cycle is not None

    def row_cycles(self, n_out_padded: int) -> int:
        """Cycles to stream one weight row of ``n_out_padded`` weights."""
        if self.bytes_per_cycle is None:
            return 0
        return math.ceil(n_out_padded * self.weight_bits / 8 / self.bytes_per_cycle)


@dataclass(frozen=True)
class Workload:
    """One sample's input vectors per (step, layer): ``vectors[l]`` is (T, n_in_l) bool,
    the spikes layer ``l`` integrates at each step (layer 0: the encoder's step ``t``;
    layer ``l > 0``: layer ``l - 1``'s step ``t - 1``, zero at ``t = 0``)."""

    layers: tuple[int, ...]
    vectors: tuple[np.ndarray, ...]

    @classmethod
    def from_record(
        cls, layers: Sequence[int], input_spikes: np.ndarray, spikes: Sequence[np.ndarray]
    ) -> Workload:
        """From one sample's encoder spikes (T, n_in) and layer spikes (T, n_l)."""
        vectors = [np.asarray(input_spikes, dtype=bool)]
        for s in spikes[:-1]:
            delayed = np.zeros_like(s, dtype=bool)
            delayed[1:] = s[:-1]
            vectors.append(delayed)
        return cls(tuple(layers), tuple(vectors))

    @property
    def tsteps(self) -> int:
        return self.vectors[0].shape[0]

    def events(self) -> np.ndarray:
        """(T, L) input spikes per step and layer."""
        return np.stack([v.sum(axis=1) for v in self.vectors], axis=1)


@dataclass(frozen=True)
class ArchResult:
    """Cycles of one sample and the bounds it is judged against."""

    cycles: int
    lane_bound: float
    memory_bound: float

    @property
    def bound(self) -> float:
        return max(self.lane_bound, self.memory_bound)

    @property
    def ratio(self) -> float:
        """Cycles over the larger bound: 1.0 is every lane (or the bus) busy every cycle."""
        return self.cycles / self.bound


def lane_bound(work: Workload, total_lanes: int) -> float:
    """Useful synaptic operations per sample over all lanes of the design."""
    ev = work.events()
    ops = sum(int(ev[:, l].sum()) * work.layers[l + 1] for l in range(ev.shape[1]))
    return ops / total_lanes


def memory_bound(work: Workload, lanes: Sequence[int], memory: Memory) -> float:
    """Weight bytes an external memory must deliver per sample over its bandwidth."""
    if memory.bytes_per_cycle is None:
        return 0.0
    ev = work.events()
    rows = sum(
        int(ev[:, l].sum()) * _blocks(work.layers[l + 1], lanes[l]) * lanes[l]
        for l in range(ev.shape[1])
    )
    return rows * memory.weight_bits / 8 / memory.bytes_per_cycle


def _blocks(n_out: int, lanes: int) -> int:
    return -(-n_out // lanes)


def _segment(vector: np.ndarray, blocks: int, lanes: int, memory: Memory) -> int:
    """Cycles of one layer's events in one step plus its fire pass, on ``lanes`` lanes.

    On chip, the core's own acceptance rule (:meth:`NeuronCore.accept_cycles`: an event
    every ``max(B, WRITE_DISTANCE)`` cycles, the fire pass ``B``); from external memory
    an event waits for its row as well. The scanner finds the next event while the core
    works, so silent inputs cost nothing beyond ``LAYER_SWITCH``.
    """
    events = int(vector.sum())
    accepted = NeuronCore.accept_cycles([blocks], [0] * (events + 1))
    compute = accepted[-1] + blocks
    transfer = events * memory.row_cycles(blocks * lanes)
    return max(compute, transfer + blocks) + LAYER_SWITCH


def shared(work: Workload, total_lanes: int, memory: Memory | None = None) -> ArchResult:
    """One pool of ``total_lanes`` lanes, layers one after the other inside each step."""
    memory = memory or Memory()
    n_layers = len(work.vectors)
    blocks = [_blocks(work.layers[l + 1], total_lanes) for l in range(n_layers)]
    cycles = PIPELINE + work.layers[-1]  # the last write-back, then arg-max
    for t in range(work.tsteps):
        cycles += memory.latency  # the next step's first row
        for l in range(n_layers):
            cycles += _segment(work.vectors[l][t], blocks[l], total_lanes, memory)
    lanes = [total_lanes] * n_layers
    return ArchResult(cycles, lane_bound(work, total_lanes), memory_bound(work, lanes, memory))


def proportional(work: Workload, lanes: Sequence[int], memory: Memory | None = None) -> ArchResult:
    """One core per layer with ``lanes[l]`` lanes, all layers concurrent, a barrier per step.

    External memory is one bus shared by the cores: a step takes at least the bytes
    all layers fetch in it over the bandwidth.
    """
    memory = memory or Memory()
    n_layers = len(work.vectors)
    blocks = [_blocks(work.layers[l + 1], lanes[l]) for l in range(n_layers)]
    cycles = PIPELINE + work.layers[-1]
    for t in range(work.tsteps):
        seg = [_segment(work.vectors[l][t], blocks[l], lanes[l], memory) for l in range(n_layers)]
        bus = sum(
            int(work.vectors[l][t].sum()) * memory.row_cycles(blocks[l] * lanes[l])
            for l in range(n_layers)
        )
        cycles += max(*seg, bus) + memory.latency + PIPELINE
    total = sum(lanes)
    return ArchResult(cycles, lane_bound(work, total), memory_bound(work, lanes, memory))


def split_lanes(work_share: Sequence[float], total: int) -> list[int]:
    """Lanes per layer in proportion to its share of the work, at least one each."""
    raw = [max(1, round(total * s)) for s in work_share]
    while sum(raw) > total:
        raw[int(np.argmax(raw))] -= 1
    while sum(raw) < total:
        raw[int(np.argmax(work_share))] += 1
    return raw
