"""Integer constants and saturating helpers derived from the config.

Everything the datapath needs as an integer (thresholds, desire thresholds,
learning-rate register, dropout probabilities, saturation bounds) is computed
here once, from :class:`desire.config.Config`, so that golden/, rtl/ and sim/
read the same numbers. Real-valued thresholds are converted with exact rational
arithmetic (:func:`desire.config.exact`) so that the integer comparison is equivalent
to the real one for every integer spike count (docs/fixed-point.md, section 5); the
firing thresholds, ``drop_p`` and the learning-rate register come from the functions
the config checks them with (``Config.fixed_thresholds``, ``Config.fixed_drop_p``,
:func:`desire.config.lr_register`), so a config that loads has constants that fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from desire.config import LR_REGISTER_BITS, Config, exact, lr_register

__all__ = [
    "PIXEL_FULL",
    "WEYL_STEP",
    "Constants",
    "constants",
    "dequantize_weights",
    "quantize_weights",
    "sat",
    "signed_range",
]

#: Weyl increment of the stochastic-rounding sequence: 2^32 / golden ratio, odd.
WEYL_STEP = 0x9E37_79B9
#: Full-scale pixel value: the encoder fires when its accumulator reaches it.
PIXEL_FULL = 255


def signed_range(bits: int) -> tuple[int, int]:
    """Smallest and largest value of a two's-complement number of ``bits`` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def sat(x: np.ndarray, bits: int) -> np.ndarray:
    """Saturate ``x`` to a signed ``bits``-bit range (never wrap)."""
    lo, hi = signed_range(bits)
    return np.clip(x, lo, hi)


@dataclass(frozen=True)
class Constants:
    """Integer view of a :class:`Config` (see docs/fixed-point.md for each item)."""

    layers: tuple[int, ...]
    tsteps: int
    decay_shift: int
    weight_bits: int
    weight_frac: int
    membrane_bits: int
    trace_bits: int
    trace_frac: int
    trace_one: int
    trace_max: int
    thr_eval: int
    thr_train: tuple[int, ...]
    target_count: int
    out_label_below: int
    out_other_above: int
    hid_thr: int
    drop_p: tuple[int, ...]
    prob_bits: int
    lr_shift: int
    rounding: str
    dropout_seed: int
    rounding_seed: int
    lr: float
    lr_decay: float
    lr_scale: int

    @property
    def n_linear(self) -> int:
        """Number of weight layers (layers of LIF neurons after the input)."""
        return len(self.layers) - 1

    @property
    def weight_range(self) -> tuple[int, int]:
        return signed_range(self.weight_bits)

    def threshold(self, layer: int, training: bool) -> int:
        """Firing threshold of linear layer ``layer`` (0-based weight layer)."""
        return self.thr_train[layer] if training else self.thr_eval

    def lr_int(self, epoch: int) -> int:
        """Learning-rate register for ``epoch``: round(lr_e * 2^(lr_shift + wf - tf)).

        :func:`desire.config.lr_register` computes it (the config checks epoch 0 fits).
        """
        value = lr_register(self.lr, self.lr_decay, epoch, self.lr_scale)
        if not 0 <= value < 2**LR_REGISTER_BITS:
            raise ValueError(f"learning-rate register {value} does not fit {LR_REGISTER_BITS} bits")
        return value

    def hidden_acc_bits(self, fan_out: int) -> int:
        """Width of the desire accumulator sum_h w*E*q: exact, never saturates."""
        return self.weight_bits + self.tsteps.bit_length() + max(fan_out - 1, 1).bit_length() + 1


def constants(cfg: Config) -> Constants:
    """Derive every integer constant of the datapath from ``cfg``."""
    n, f = cfg.network, cfg.formats
    one = 1 << f.weight_frac
    r = n.target_count
    thr_eval, thr_train = cfg.fixed_thresholds()
    th_out = exact(n.desire_thres_output)
    return Constants(
        layers=n.layers,
        tsteps=n.tsteps,
        decay_shift=n.mempot_decay,
        weight_bits=f.weight_bits,
        weight_frac=f.weight_frac,
        membrane_bits=f.membrane_bits,
        trace_bits=f.trace_bits,
        trace_frac=f.trace_frac,
        trace_one=1 << f.trace_frac,
        trace_max=(1 << f.trace_bits) - 1,
        thr_eval=thr_eval,
        thr_train=thr_train,
        target_count=r,
        # label neuron desired (+1) while c < (1 - th_out) * R
        out_label_below=math.ceil((1 - th_out) * r),
        # other neurons desired (-1) while c > th_out * R
        out_other_above=math.floor(th_out * r),
        # hidden desire active while |sum w*E*q| >= th_hid * R * 2^wf
        hid_thr=math.ceil(exact(n.desire_thres_hidden) * r * one),
        drop_p=cfg.fixed_drop_p(),
        prob_bits=f.prob_bits,
        lr_shift=f.lr_shift,
        rounding=f.rounding,
        dropout_seed=f.dropout_seed,
        rounding_seed=f.rounding_seed,
        lr=n.lr,
        lr_decay=n.lr_decay,
        lr_scale=f.lr_scale,
    )


def quantize_weights(weights: list[np.ndarray], c: Constants) -> list[np.ndarray]:
    """Float weights (out, in) to saturated integers: round-half-even(w * 2^wf)."""
    lo, hi = c.weight_range
    out = []
    for i, w in enumerate(weights):
        w = np.asarray(w, dtype=np.float64)
        expected = (c.layers[i + 1], c.layers[i])
        if w.shape != expected:
            raise ValueError(f"weight layer {i} has shape {w.shape}, expected {expected}")
        if not np.all(np.isfinite(w)):
            raise ValueError(f"weight layer {i} contains NaN or infinity")
        out.append(np.clip(np.rint(w * 2.0**c.weight_frac), lo, hi).astype(np.int32))
    return out


def dequantize_weights(weights: list[np.ndarray], c: Constants) -> list[np.ndarray]:
    """Integer weights back to floats, for comparison with the trainer."""
    return [np.asarray(w, dtype=np.float64) / 2.0**c.weight_frac for w in weights]
