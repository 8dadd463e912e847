"""``--arith fixed``: golden/'s integer arithmetic on torch tensors (CPU or CUDA).

Same formulas, same order and the same PRNG streams as golden/network.py
(docs/fixed-point.md), so weights, spike counts and desire values are
bit-identical to golden/ while running batched inference on a GPU. The PRNG
streams stay on the host (golden.prng): they are sequential by definition and
cost a few microseconds per sample.

Matrix products use int64 on the CPU. CUDA has no integer matmul, so there
they run in float64 on integer-valued operands: every product and partial sum
is an integer below 2^53 (checked at construction), where float64 is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from desire.config import Config
from golden.desire_unit import hidden_desire, local_error, output_desire, ternary
from golden.fixed import PIXEL_FULL, constants
from golden.network import check_lr_int
from golden.prng import XorShift32, dropout_mask
from golden.update_unit import rounding_offsets

__all__ = ["FixedNet", "FixedStep"]

EXACT_F64 = 2**53


@dataclass(frozen=True)
class FixedStep:
    """One online step: spike counts and desire (active, sign) of every layer."""

    counts: list[np.ndarray]
    active: list[np.ndarray]
    sign: list[np.ndarray]


class FixedNet:
    """Integer network on a torch device; weights are (n_out, n_in) int64 tensors."""

    def __init__(self, cfg: Config, weights: list[np.ndarray], device: str | torch.device = "cpu"):
        self.cfg, self.c = cfg, constants(cfg)
        self.device = torch.device(device)
        self.weights = [
            torch.as_tensor(np.asarray(w), dtype=torch.int64, device=self.device) for w in weights
        ]
        fan_in = max(w.shape[1] for w in self.weights)
        if fan_in * 2 ** (self.c.weight_bits - 1) >= EXACT_F64:
            raise ValueError("formats too wide for exact float64 products on CUDA")
        self.dropout_rng = XorShift32(self.c.dropout_seed)
        self.rounding_rng = XorShift32(self.c.rounding_seed)

    def _mm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Exact integer a @ b (see module docstring for CUDA)."""
        if self.device.type == "cuda":
            return torch.round(a.double() @ b.double()).to(torch.int64)
        return a.to(torch.int64) @ b.to(torch.int64)

    def _sat(self, x: torch.Tensor, bits: int) -> torch.Tensor:
        return x.clamp(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)

    def forward(
        self, pixels: torch.Tensor, keep: list[torch.Tensor | None] | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """T steps of a batch (B, n_in) uint8 -> counts, spikes (T,B,n), traces (T,B,n_in)."""
        c, training = self.c, keep is not None
        keep = keep if keep is not None else [None] * len(c.layers)
        x = pixels.to(self.device, torch.int64)
        batch = x.shape[0]
        acc_in = torch.zeros_like(x)
        v = [torch.zeros(batch, n, dtype=torch.int64, device=self.device) for n in c.layers[1:]]
        r = [torch.zeros(batch, n, dtype=torch.int64, device=self.device) for n in c.layers[:-1]]
        prev = [torch.zeros(batch, n, dtype=torch.bool, device=self.device) for n in c.layers[1:]]
        spikes: list[list[torch.Tensor]] = [[] for _ in self.weights]
        traces: list[list[torch.Tensor]] = [[] for _ in self.weights]
        for _ in range(c.tsteps):
            acc_in += x
            s_in = acc_in >= PIXEL_FULL
            acc_in -= PIXEL_FULL * s_in
            if keep[0] is not None:
                s_in &= keep[0]
            ins = [s_in, *prev[:-1]]
            for l, w in enumerate(self.weights):
                thr = c.threshold(l, training)
                if training:
                    r[l] = (r[l] - (r[l] >> c.decay_shift) + c.trace_one * ins[l]).clamp(
                        max=c.trace_max
                    )
                    traces[l].append(r[l])
                vl = v[l] - (v[l] >> c.decay_shift)
                vl = self._sat(vl + self._mm(ins[l], w.T), c.membrane_bits)
                s = vl >= thr
                if keep[l + 1] is not None:
                    s &= keep[l + 1]
                v[l] = vl - thr * s
                prev[l] = s
                spikes[l].append(s)
        spk = [torch.stack(s) for s in spikes]
        counts = [s.sum(0) for s in spk]
        return counts, spk, [torch.stack(t) for t in traces] if training else []

    def infer(self, pixels: np.ndarray | torch.Tensor, batch_size: int = 1024) -> np.ndarray:
        """Output spike counts (N, n_classes), batched, no dropout."""
        x = torch.as_tensor(pixels)
        parts = [
            self.forward(x[i : i + batch_size])[0][-1].cpu() for i in range(0, len(x), batch_size)
        ]
        return torch.cat(parts).numpy()

    def int_weights(self) -> list[np.ndarray]:
        return [w.cpu().numpy().astype(np.int32) for w in self.weights]

    def _draw_keep(self) -> list[torch.Tensor | None]:
        masks: list[torch.Tensor | None] = []
        for j, n in enumerate(self.c.layers[:-1]):
            m = dropout_mask(self.dropout_rng, n, self.c.drop_p[j], self.c.prob_bits)
            masks.append(torch.as_tensor(m, device=self.device))
        return [*masks, None]

    def train_step(self, pixels: np.ndarray, label: int, lr_int: int) -> FixedStep:
        """One online sample: forward, desire (golden's desire unit on host), update on device."""
        check_lr_int(lr_int)
        c = self.c
        keep = self._draw_keep()
        counts_t, spk, trc = self.forward(torch.as_tensor(pixels).reshape(1, -1), keep)
        counts = [cnt[0].cpu().numpy() for cnt in counts_t]
        keep_np = [k.cpu().numpy() if k is not None else None for k in keep]
        active, sign = output_desire(counts[-1], label, c)
        acts, signs = [active], [sign]
        for l in range(c.n_linear - 1, 0, -1):
            q = ternary(acts[0], signs[0], keep_np[l + 1])
            a, s, _ = hidden_desire(
                self.weights[l].cpu().numpy(), local_error(counts[l], signs[0], c), q, c
            )
            acts.insert(0, a)
            signs.insert(0, s)
        for l, w in enumerate(self.weights):
            gate_np = ternary(acts[l], signs[l], keep_np[l + 1])
            rows_np = np.flatnonzero(gate_np)  # only desired neurons learn
            rnd = rounding_offsets(c, self.rounding_rng, w.shape[1], rows_np)
            rows = torch.as_tensor(rows_np, device=self.device)
            gate = torch.as_tensor(gate_np[rows_np], dtype=torch.int64, device=self.device)
            acc = self._mm(spk[l][:, 0, rows].T, trc[l][:, 0])
            mag = (lr_int * acc + torch.as_tensor(rnd, device=self.device)) >> c.lr_shift
            w[rows] = self._sat(w[rows] + gate[:, None] * mag, c.weight_bits)
        return FixedStep(counts, acts, signs)
