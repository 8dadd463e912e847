"""Desire unit: ternary desire of every neuron from spike counts (docs/fixed-point.md, section 5).

Counts are integers in [0, T] and R = T - error_margin. All comparisons are
between integers; the thresholds were converted exactly in golden.fixed, so the
result equals the reference's real-valued rule for the same counts and weights.
"""

from __future__ import annotations

import numpy as np

from golden.fixed import Constants

__all__ = ["hidden_desire", "local_error", "output_desire", "ternary"]


def output_desire(counts: np.ndarray, label: int, c: Constants) -> tuple[np.ndarray, np.ndarray]:
    """(active, sign) of the output layer: +1 for the label, -1 for the others.

    The label neuron is desired while c < ceil((1 - th_out) * R); another neuron
    while c > floor(th_out * R).
    """
    n = counts.shape[-1]
    if not 0 <= label < n:
        raise ValueError(f"label {label} out of range for {n} output neurons")
    sign = np.full(n, -1, dtype=np.int8)
    sign[label] = 1
    active = counts > c.out_other_above
    active[label] = counts[label] < c.out_label_below
    return active, sign


def local_error(counts: np.ndarray, sign: np.ndarray, c: Constants) -> np.ndarray:
    """E = |target * R - c|, the absolute local error times R (target 1 for +1, 0 for -1)."""
    target = np.where(sign > 0, c.target_count, 0)
    return np.abs(target - counts.astype(np.int64))


def ternary(active: np.ndarray, sign: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """q = sign * active * keep in {-1, 0, +1}."""
    q = np.where(active, sign, 0).astype(np.int8)
    if keep is not None:
        q = np.where(keep, q, 0).astype(np.int8)
    return q


def hidden_desire(
    w: np.ndarray, err: np.ndarray, q: np.ndarray, c: Constants
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Desire of the layer below: S_g = sum_h w[h, g] * E_h * q_h; active iff |S_g| >= thr.

    ``w`` is the (n_h, n_g) weight matrix between the two layers. Returns
    (active, sign, S); sign is +1 where S > 0, else -1, as in the reference.
    """
    s = (err * q.astype(np.int64)) @ w.astype(np.int64)
    active = np.abs(s) >= c.hid_thr
    sign = np.where(s > 0, 1, -1).astype(np.int8)
    return active, sign, s
