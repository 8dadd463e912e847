"""Rate-coding input encoder: 8-bit pixels to spike trains (docs/fixed-point.md, section 2).

Each pixel owns an accumulator; every time step it adds the pixel value and
fires when the sum reaches 255, then subtracts 255. A pixel of value x fires
floor((t + 1) * x / 255) times in the first t + 1 steps: exactly the
reference's float rule v += x / 255 without its rounding error.
"""

from __future__ import annotations

import numpy as np

from golden.fixed import PIXEL_FULL

__all__ = ["Encoder", "check_pixels"]


def check_pixels(pixels: np.ndarray, n_inputs: int) -> np.ndarray:
    """Validate a batch of images (B, n_inputs) or one image (n_inputs,); return (B, n) uint8."""
    x = np.asarray(pixels)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != n_inputs:
        raise ValueError(f"images must have shape (B, {n_inputs}) or ({n_inputs},), got {x.shape}")
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.integer) or x.min(initial=0) < 0 or x.max(initial=0) > 255:
            raise ValueError("pixels must be integers in [0, 255] (uint8)")
        x = x.astype(np.uint8)
    return x


class Encoder:
    """Deterministic rate coder for a batch of images; ``step`` emits one time step."""

    def __init__(self, pixels: np.ndarray, keep: np.ndarray | None = None) -> None:
        self.pixels = pixels.astype(np.int16)
        self.acc = np.zeros_like(self.pixels)
        self.keep = keep

    def step(self) -> np.ndarray:
        """Advance one step; return spikes (B, n) bool. Dropped pixels never fire."""
        self.acc += self.pixels
        fire = self.acc >= PIXEL_FULL
        self.acc -= np.where(fire, PIXEL_FULL, 0).astype(np.int16)
        if self.keep is not None:
            fire &= self.keep
        return fire
