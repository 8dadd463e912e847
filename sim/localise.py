"""Divergence localiser: where the hardware first stops matching golden/.

A wrong spike count at the output says only that something differs. With
``hardware.trace`` the accelerator reports every fire pass of every layer (its spikes
and membranes, :mod:`rtl.trace`); this module turns those beats into the same
step-by-step arrays golden/ records (``GoldenNet.forward(record=True)``) and reports
the first difference in the order the computation makes them: sample, then time step,
then layer, then neuron, spikes before membranes. The report names both values and
the cycle of the sample where the hardware reported it.

Pure Python (no simulator): the Amaranth tests and the cocotb benches both collect
beats and call :func:`first_divergence`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Divergence", "TraceBeat", "first_divergence", "steps_from_trace"]


@dataclass(frozen=True)
class TraceBeat:
    """One cycle of one layer's trace port: the fire-pass results of a block."""

    cycle: int  # simulation cycle (from the start of the sample), for the waveform window
    layer: int
    phase: int
    block: int
    spikes: int  # bit j = lane j
    membranes: tuple[int, ...]  # one per lane


@dataclass(frozen=True)
class Divergence:
    """The first place the hardware and golden/ differ."""

    sample: int
    step: int
    layer: int  # weight layer: its neurons are neuron layer ``layer + 1``
    neuron: int
    what: str  # "spike", "membrane" or "missing" (no fire pass where one was due)
    rtl: int | None
    golden: int
    cycle: int | None  # cycle of the hardware's beat, when there was one

    def __str__(self) -> str:
        where = f"sample {self.sample}, step {self.step}, layer {self.layer}, neuron {self.neuron}"
        at = f" (cycle {self.cycle} of the sample)" if self.cycle is not None else ""
        return f"first divergence: {where}: {self.what} RTL {self.rtl} != golden {self.golden}{at}"


def steps_from_trace(
    beats: Sequence[TraceBeat], sizes: Sequence[int], lanes: int, tsteps: int
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per weight layer ``l`` (``sizes[l]`` neurons): spikes (T, n) bool, membranes (T, n)
    and the cycle each value was reported (T, n; -1: never), from one sample's beats.

    The pass of phase ``s`` computes step ``s - 1``. A block reported twice for one step
    keeps its first report (the second is a divergence of its own only if the values
    differ, which the first report already shows).
    """
    spikes = [np.zeros((tsteps, n), dtype=bool) for n in sizes]
    membranes = [np.zeros((tsteps, n), dtype=np.int64) for n in sizes]
    cycles = [np.full((tsteps, n), -1, dtype=np.int64) for n in sizes]
    for beat in beats:
        step, n = beat.phase - 1, sizes[beat.layer]
        if not 0 <= step < tsteps:
            continue
        for j in range(lanes):
            neuron = beat.block * lanes + j
            if neuron >= n or cycles[beat.layer][step, neuron] >= 0:
                continue
            spikes[beat.layer][step, neuron] = bool(beat.spikes >> j & 1)
            membranes[beat.layer][step, neuron] = beat.membranes[j]
            cycles[beat.layer][step, neuron] = beat.cycle
    return spikes, membranes, cycles


def first_divergence(
    golden_spikes: Sequence[np.ndarray],
    golden_membranes: Sequence[np.ndarray],
    traces: Sequence[Sequence[TraceBeat]],
    lanes: int,
) -> Divergence | None:
    """The first difference between golden's record and the hardware's traces.

    ``golden_spikes[l]`` / ``golden_membranes[l]``: (T, B, n_l) arrays of
    ``ForwardRecord.spikes`` / ``.membranes``; ``traces[k]``: sample ``k``'s beats.
    None when every spike and membrane of every sample agrees.
    """
    sizes = [s.shape[2] for s in golden_spikes]
    tsteps = golden_spikes[0].shape[0]
    for k, beats in enumerate(traces):
        spikes, membranes, cycles = steps_from_trace(beats, sizes, lanes, tsteps)
        for t in range(tsteps):
            for l in range(len(sizes)):
                found = _compare(
                    k,
                    t,
                    l,
                    golden_spikes[l][t, k],
                    golden_membranes[l][t, k],
                    spikes[l][t],
                    membranes[l][t],
                    cycles[l][t],
                )
                if found is not None:
                    return found
    return None


def _compare(
    k: int,
    t: int,
    l: int,
    want_s: np.ndarray,
    want_v: np.ndarray,
    got_s: np.ndarray,
    got_v: np.ndarray,
    cycle: np.ndarray,
) -> Divergence | None:
    """The first neuron of one layer and step that differs (missing, spike, membrane)."""
    for i in range(want_s.size):
        at = int(cycle[i]) if cycle[i] >= 0 else None
        if at is None:
            return Divergence(k, t, l, i, "missing", None, int(want_s[i]), None)
        if bool(got_s[i]) != bool(want_s[i]):
            return Divergence(k, t, l, i, "spike", int(got_s[i]), int(want_s[i]), at)
        if int(got_v[i]) != int(want_v[i]):
            return Divergence(k, t, l, i, "membrane", int(got_v[i]), int(want_v[i]), at)
    return None
