"""Update unit: ternary desire-gated STDP (docs/fixed-point.md, section 6).

For weight w[o, i] with gate g_o = sign_o * active_o * keep_o in {-1, 0, +1}:

    acc[o, i] = sum over steps t with a post spike s_o[t] of the trace r_i[t]
    mag[o, i] = (lr_int * acc[o, i] + rnd[o, i]) >> lr_shift
    w[o, i]   = sat(w[o, i] + g_o * mag[o, i], weight_bits)

rnd is 0 (truncate), 2^(lr_shift-1) (round to nearest) or a Weyl offset from
the rounding stream (stochastic rounding, unbiased).
"""

from __future__ import annotations

import numpy as np

from golden.fixed import Constants, sat
from golden.neuron_core import trace_step
from golden.prng import XorShift32, weyl_rounding

__all__ = ["rounding_offsets", "stdp_accumulate", "update_from_trains", "weight_update"]


def stdp_accumulate(post: np.ndarray, traces: np.ndarray) -> np.ndarray:
    """acc (n_out, n_in) from post spikes (T, n_out) bool and traces (T, n_in) of the same steps.

    A loop over the T steps adding the trace vector to the rows that fired: the
    update unit's own order, and much faster than an integer matmul in numpy.
    """
    acc = np.zeros((post.shape[1], traces.shape[1]), dtype=np.int64)
    for fired, trace in zip(post, traces, strict=True):
        acc[fired] += trace
    return acc


def rounding_offsets(
    c: Constants, rng: XorShift32 | None, n_in: int, rows: np.ndarray
) -> np.ndarray:
    """Offsets rnd (len(rows), n_in) for output neurons ``rows`` of a layer with ``n_in`` inputs.

    Stochastic rounding draws one word per input row i, all n_in of them, whichever
    output rows are updated, so the stream position never depends on the desire.
    """
    if c.rounding == "truncate":
        return np.zeros((1, 1), dtype=np.int64)
    if c.rounding == "nearest":
        return np.full((1, 1), 1 << (c.lr_shift - 1), dtype=np.int64)
    if rng is None:
        raise ValueError("stochastic rounding needs the rounding stream")
    return weyl_rounding(rng.draw(n_in), rows, c.lr_shift).T


def update_from_trains(
    c: Constants,
    w: np.ndarray,
    pre: np.ndarray,
    post: np.ndarray,
    gate: np.ndarray,
    lr_int: int,
    words: np.ndarray,
) -> np.ndarray:
    """New weights (n_out, n_in) from spike trains, as the update unit sees them.

    The hardware stores spike trains, not traces: ``pre`` (T, n_in) and ``post``
    (T, n_out) are bit trains, traces are rebuilt from ``pre`` with the neuron
    core's rule, and ``words`` are the rounding stream's row words (one per input).
    """
    r = np.zeros(pre.shape[1], dtype=np.int64)
    traces = []
    for s in pre:
        r = trace_step(r, s, c)
        traces.append(r)
    if c.rounding == "stochastic":
        rnd = weyl_rounding(words, np.arange(w.shape[0]), c.lr_shift).T
    else:
        rnd = rounding_offsets(c, None, pre.shape[1], np.arange(w.shape[0]))
    return weight_update(w, stdp_accumulate(post, np.stack(traces)), gate, lr_int, rnd, c)[0]


def weight_update(
    w: np.ndarray, acc: np.ndarray, gate: np.ndarray, lr_int: int, rnd: np.ndarray, c: Constants
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the gated update; returns (new weights, applied delta) both (n_out, n_in)."""
    mag = (lr_int * acc + rnd) >> c.lr_shift
    new = sat(w.astype(np.int64) + gate.astype(np.int64)[:, None] * mag, c.weight_bits)
    return new.astype(w.dtype), new - w
