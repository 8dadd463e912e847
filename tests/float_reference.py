"""The evaluation pass of reference-semantics.md in near-real arithmetic, for golden/.

Used to check that golden/ with very wide formats computes the same network as
the reference's semantics in real arithmetic: the input rule is exact (integers)
and the rest float64. That is not the reference's own rounding: it computes in
float32, whose input spikes differ from exact ones for pixel values 60, 120 and
240 (and float64's for 17, 34, 105, 120, 136, 153, 170, 187, 195, 210, 225, 240).
tests/test_model_reference.py holds the float32 transcription. Deliberately
written without any code from golden/ or model/.
"""

from __future__ import annotations

import numpy as np

from desire.config import Config


def float_eval_counts(cfg: Config, weights: list[np.ndarray], images: np.ndarray) -> np.ndarray:
    """Output spike counts (B, n_classes) of the evaluation pass, float64."""
    net = cfg.network
    theta, beta = net.mempot_thres, net.beta
    # The input rule v += x / 255 is evaluated in units of 1/255 so that it is exact:
    # float sums of x / 255 delay or miss spikes at exact multiples (float64: x = 170
    # at step 2; float32: x = 60 at step 16).
    x = images.astype(np.float64)
    v_in = np.zeros_like(x)
    v = [np.zeros((len(x), w.shape[0])) for w in weights]
    prev = [np.zeros((len(x), w.shape[0])) for w in weights]
    counts = np.zeros((len(x), weights[-1].shape[0]), dtype=np.int64)
    for _ in range(net.tsteps):
        v_in += x
        s_in = (v_in >= 255.0 * theta).astype(np.float64)
        v_in -= 255.0 * theta * s_in
        inputs = [s_in, *prev[:-1]]  # one step of delay after the first linear layer
        out = []
        for l, w in enumerate(weights):
            v[l] = beta * v[l] + inputs[l] @ w.T
            s = (v[l] >= theta).astype(np.float64)
            v[l] -= theta * s
            out.append(s)
        prev = out
        counts += prev[-1].astype(np.int64)
    return counts
