"""Neuron core: a layer of LIF neurons with its input spike traces (docs/fixed-point.md, 3-4).

Per time step, in this order, for every neuron of the layer:

1. decay      v <- v - (v >> k)                 (arithmetic shift, floors)
2. integrate  v <- v + sum of w[i] over input spikes i   (exact, wide accumulator)
3. saturate   v <- sat(v, membrane_bits)
4. fire       s <- (v >= thr) and keep
5. reset      v <- v - thr * s                  (reset by subtraction)

and for every input of the layer the trace r <- min(r - (r >> k) + one * s_in, r_max).
The accumulation is event driven: only the weight rows of spiking inputs are read,
as the hardware does, which is also the fastest way to do it in numpy.
"""

from __future__ import annotations

import numpy as np

from golden.fixed import Constants, sat

__all__ = ["NeuronCore", "lif_step", "synaptic_drive", "trace_step"]


def synaptic_drive(spikes: np.ndarray, w_in_major: np.ndarray) -> np.ndarray:
    """Sum of weight rows of spiking inputs: (B, n_in) bool x (n_in, n_out) -> (B, n_out) int64.

    One gather per sample: measured 10-50x faster than a batched integer matmul or a
    batch-wide reduceat, because only the rows of the few spiking inputs are touched.
    """
    out = np.empty((spikes.shape[0], w_in_major.shape[1]), dtype=np.int64)
    for b, row in enumerate(spikes):
        w_in_major[np.flatnonzero(row)].sum(axis=0, dtype=np.int64, out=out[b])
    return out


def lif_step(
    v: np.ndarray, drive: np.ndarray, thr: int, keep: np.ndarray | None, c: Constants
) -> tuple[np.ndarray, np.ndarray]:
    """One LIF time step (steps 1-5 above); returns (new membrane, spikes)."""
    v = v - (v >> c.decay_shift)
    v = sat(v + drive, c.membrane_bits)
    s = v >= thr
    if keep is not None:
        s &= keep
    return v - np.where(s, thr, 0), s


def trace_step(r: np.ndarray, s_in: np.ndarray, c: Constants) -> np.ndarray:
    """Decay by shift, add one trace unit per input spike, clamp to the trace range."""
    r = r - (r >> c.decay_shift) + np.where(s_in, c.trace_one, 0)
    return np.minimum(r, c.trace_max)


class NeuronCore:
    """State of one layer (membranes, traces of its inputs) for a batch of samples."""

    def __init__(
        self, c: Constants, layer: int, batch: int, training: bool, keep: np.ndarray | None
    ) -> None:
        self.c = c
        self.thr = c.threshold(layer, training)
        self.keep = keep
        n_in, n_out = c.layers[layer], c.layers[layer + 1]
        self.v = np.zeros((batch, n_out), dtype=np.int64)
        self.r = np.zeros((batch, n_in), dtype=np.int64) if training else None

    def step(self, s_in: np.ndarray, w_in_major: np.ndarray) -> np.ndarray:
        """Consume this step's input spikes; return this step's output spikes."""
        if self.r is not None:
            self.r = trace_step(self.r, s_in, self.c)
        self.v, s = lif_step(self.v, synaptic_drive(s_in, w_in_major), self.thr, self.keep, self.c)
        return s
