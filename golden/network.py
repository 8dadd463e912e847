"""The whole accelerator in integers: forward pass, desire backprop and update of one sample.

Mirrors the hardware top level: an encoder feeding a chain of neuron cores with
one step of delay between layers, a desire unit and an update unit. Training is
online (one sample at a time, as the hardware does); inference is batched.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from desire.config import LR_REGISTER_BITS, Config
from golden.desire_unit import hidden_desire, local_error, output_desire, ternary
from golden.encoder import Encoder, check_pixels
from golden.fixed import Constants, constants, dequantize_weights, quantize_weights
from golden.neuron_core import NeuronCore
from golden.prng import XorShift32, dropout_mask
from golden.update_unit import rounding_offsets, stdp_accumulate, weight_update

__all__ = ["ForwardRecord", "GoldenNet", "StepRecord", "check_lr_int", "strict_argmax"]


def strict_argmax(counts: np.ndarray) -> np.ndarray:
    """Predicted class per row, or -1 where the maximum is shared (ties count as wrong)."""
    top = counts.max(axis=-1, keepdims=True)
    unique = (counts == top).sum(axis=-1) == 1
    return np.where(unique, counts.argmax(axis=-1), -1)


@dataclass
class ForwardRecord:
    """What one forward pass produced; per-step arrays only when recording was asked for.

    ``spikes[l]`` (T, B, n) are the output spikes of weight layer l, ``traces[l]``
    (T, B, n_in) its input traces after each step's update, ``membranes[l]``
    (T, B, n) its membranes after reset.
    """

    counts: list[np.ndarray]
    spikes: list[np.ndarray] = field(default_factory=list)
    traces: list[np.ndarray] = field(default_factory=list)
    membranes: list[np.ndarray] = field(default_factory=list)
    input_spikes: np.ndarray | None = None


@dataclass
class StepRecord:
    """One online training step: forward record, desire per layer, applied weight deltas."""

    forward: ForwardRecord
    keep: list[np.ndarray | None]
    active: list[np.ndarray]
    sign: list[np.ndarray]
    deltas: list[np.ndarray]

    @property
    def counts(self) -> list[np.ndarray]:
        """Spike counts of every layer for this sample."""
        return [c[0] for c in self.forward.counts]


def check_lr_int(lr_int: int) -> None:
    """Refuse a learning-rate register value the 32-bit unsigned register cannot hold."""
    is_int = isinstance(lr_int, int | np.integer) and not isinstance(lr_int, bool)
    if not (is_int and 0 <= lr_int < 2**LR_REGISTER_BITS):
        raise ValueError(
            f"lr_int must be an integer in [0, 2^{LR_REGISTER_BITS}) (the learning-rate "
            f"register), got {lr_int!r}"
        )


class GoldenNet:
    """Integer weights (one (n_out, n_in) array per layer) plus the two PRNG streams."""

    def __init__(self, cfg: Config, weights: list[np.ndarray]) -> None:
        self.cfg = cfg
        self.c: Constants = constants(cfg)
        self.weights = [self._checked(i, w) for i, w in enumerate(weights)]
        if len(self.weights) != self.c.n_linear:
            raise ValueError(f"expected {self.c.n_linear} weight layers, got {len(weights)}")
        self.dropout_rng = XorShift32(self.c.dropout_seed)
        self.rounding_rng = XorShift32(self.c.rounding_seed)

    def _checked(self, i: int, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w)
        expected = (self.c.layers[i + 1], self.c.layers[i])
        if w.shape != expected:
            raise ValueError(f"weight layer {i} has shape {w.shape}, expected {expected}")
        if not np.issubdtype(w.dtype, np.integer):
            raise ValueError(f"weight layer {i} must be integers, got {w.dtype}")
        lo, hi = self.c.weight_range
        if w.size and (w.min() < lo or w.max() > hi):
            raise ValueError(f"weight layer {i} outside the {self.c.weight_bits}-bit range")
        return w.astype(np.int32)

    @classmethod
    def from_float(cls, cfg: Config, weights: list[np.ndarray]) -> GoldenNet:
        """Quantise float weights (a trainer checkpoint) to the configured format."""
        return cls(cfg, quantize_weights(weights, constants(cfg)))

    @classmethod
    def init_random(cls, cfg: Config, seed: int = 0) -> GoldenNet:
        """Kaiming-normal initial weights (std sqrt(2 / fan_in)), quantised."""
        rng = np.random.default_rng(seed)
        layers = cfg.network.layers
        w = [
            rng.normal(0.0, np.sqrt(2.0 / n_in), (n_out, n_in))
            for n_in, n_out in itertools.pairwise(layers)
        ]
        return cls.from_float(cfg, w)

    def int_weights(self) -> list[np.ndarray]:
        return self.weights

    def float_weights(self) -> list[np.ndarray]:
        return dequantize_weights(self.weights, self.c)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        images: np.ndarray,
        keep: list[np.ndarray | None] | None = None,
        record: bool = False,
    ) -> ForwardRecord:
        """Run T steps. ``keep`` (per neuron layer, None = no dropout) selects training mode."""
        c = self.c
        x = check_pixels(images, c.layers[0])
        batch, training = x.shape[0], keep is not None
        keep = keep if keep is not None else [None] * len(c.layers)
        enc = Encoder(x, keep[0])
        cores = [NeuronCore(c, l, batch, training, keep[l + 1]) for l in range(c.n_linear)]
        w_in_major = [np.ascontiguousarray(w.T) for w in self.weights]
        prev = [np.zeros((batch, n), dtype=bool) for n in c.layers[1:]]
        counts = [np.zeros((batch, n), dtype=np.int64) for n in c.layers[1:]]
        rec = ForwardRecord(counts=counts)
        steps: dict[str, list[list[np.ndarray]]] = {k: [[] for _ in cores] for k in ("s", "r", "v")}
        inputs = []
        for _ in range(c.tsteps):
            s_in = enc.step()
            inputs.append(s_in)
            # layer l > 0 sees layer l-1's output of the previous step (one-step delay)
            ins = [s_in, *prev[:-1]]
            prev = [core.step(s, w) for core, s, w in zip(cores, ins, w_in_major, strict=True)]
            for l, core in enumerate(cores):
                counts[l] += prev[l]
                steps["s"][l].append(prev[l])
                if record or training:
                    steps["r"][l].append(core.r if training else None)
                if record:
                    steps["v"][l].append(core.v.copy())
        if record or training:
            rec.spikes = [np.stack(s) for s in steps["s"]]
            rec.input_spikes = np.stack(inputs)
        if training:
            rec.traces = [np.stack(r) for r in steps["r"]]
        if record:
            rec.membranes = [np.stack(v) for v in steps["v"]]
        return rec

    def infer(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Output spike counts (N, n_classes) of inference (no dropout), in batches."""
        x = check_pixels(images, self.c.layers[0])
        parts = [
            self.forward(x[i : i + batch_size]).counts[-1] for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.c.layers[-1]), np.int64)

    # ----------------------------------------------------------------- training
    def draw_keep(self) -> list[np.ndarray | None]:
        """Dropout masks of one sample, drawn from the dropout stream layer by layer."""
        c = self.c
        masks: list[np.ndarray | None] = []
        for j, n in enumerate(c.layers):
            if j == len(c.layers) - 1:
                masks.append(None)
            else:
                masks.append(dropout_mask(self.dropout_rng, n, c.drop_p[j], c.prob_bits))
        return masks

    def backward(
        self, counts: list[np.ndarray], label: int, keep: list[np.ndarray | None]
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Desire (active, sign) of every non-input neuron layer, from the output down."""
        c = self.c
        active, sign = output_desire(counts[-1], label, c)
        acts, signs = [active], [sign]
        for l in range(c.n_linear - 1, 0, -1):
            err = local_error(counts[l], signs[0], c)
            q = ternary(acts[0], signs[0], keep[l + 1])
            a, s, _ = hidden_desire(self.weights[l], err, q, c)
            acts.insert(0, a)
            signs.insert(0, s)
        return acts, signs

    def train_step(
        self, image: np.ndarray, label: int, lr_int: int, record: bool = False
    ) -> StepRecord:
        """Forward, backward and update of one sample, exactly as the accelerator does.

        ``lr_int`` is the 32-bit unsigned learning-rate register (docs/fixed-point.md,
        section 6); anything outside [0, 2^32) is refused, since a negative value would
        reverse learning and a wider one cannot be written to the hardware.
        """
        check_lr_int(lr_int)
        keep = self.draw_keep()
        fwd = self.forward(image, keep=keep, record=record)
        counts = [cnt[0] for cnt in fwd.counts]
        acts, signs = self.backward(counts, label, keep)
        deltas = []
        for l in range(self.c.n_linear):
            gate = ternary(acts[l], signs[l], keep[l + 1])
            rows = np.flatnonzero(gate)  # only desired neurons learn
            w = self.weights[l]
            rnd = rounding_offsets(self.c, self.rounding_rng, w.shape[1], rows)
            acc = stdp_accumulate(fwd.spikes[l][:, 0, rows], fwd.traces[l][:, 0])
            new, delta_rows = weight_update(w[rows], acc, gate[rows], lr_int, rnd, self.c)
            w[rows] = new
            delta = np.zeros(w.shape, dtype=np.int64)
            delta[rows] = delta_rows
            deltas.append(delta)
        return StepRecord(fwd, keep, acts, signs, deltas)
