"""Hardware pseudo-random numbers: xorshift32 streams and the Weyl rounding sequence.

xorshift32 (Marsaglia 2003, shifts 13, 17, 5) is a linear-feedback shift
register over GF(2) with period 2^32 - 1: three shift-XORs, one cycle in
hardware. Two independent streams exist (docs/fixed-point.md, section 7):

* the dropout stream draws one word per neuron of every layer with dropout,
  at the start of every training sample;
* the rounding stream draws one word per weight row at update time; the
  row's synapses then use a Weyl sequence seeded by it, which a P-lane update
  unit produces with adders instead of P chained generators.
"""

from __future__ import annotations

import functools

import numpy as np

from golden.fixed import WEYL_STEP

__all__ = ["XorShift32", "dropout_draws", "dropout_mask", "seed_with_draw", "weyl_rounding"]

MASK32 = 0xFFFF_FFFF


class XorShift32:
    """A 32-bit xorshift generator; ``next()`` advances once and returns the new state."""

    def __init__(self, seed: int) -> None:
        if not 0 < seed <= MASK32:
            raise ValueError(f"xorshift32 seed must be a non-zero 32-bit value, got {seed}")
        self.state = seed

    def next(self) -> int:
        x = self.state
        x ^= (x << 13) & MASK32
        x ^= x >> 17
        x ^= (x << 5) & MASK32
        self.state = x
        return x

    def draw(self, n: int) -> np.ndarray:
        """The next ``n`` states as uint32, in order (same as ``n`` calls of ``next``).

        Vectorised with the generator's linearity: state j of a block is the
        XOR of the precomputed images M^j e_b of the set bits b of the start state.
        """
        out = np.empty(n, dtype=np.uint32)
        table = _jump_table()
        for start in range(0, n, _BLOCK):
            k = min(_BLOCK, n - start)
            bits = [b for b in range(32) if self.state >> b & 1]
            out[start : start + k] = np.bitwise_xor.reduce(table[:k, bits], axis=1)
            self.state = int(out[start + k - 1])
        return out


_BLOCK = 1024


@functools.cache
def _jump_table() -> np.ndarray:
    """(BLOCK, 32) uint32: entry [j, b] is the state j + 1 steps after the state 1 << b."""
    x = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
    table = np.empty((_BLOCK, 32), dtype=np.uint32)
    for j in range(_BLOCK):
        x = x ^ (x << np.uint32(13))
        x = x ^ (x >> np.uint32(17))
        x = x ^ (x << np.uint32(5))
        table[j] = x
    return table


def dropout_mask(rng: XorShift32, n: int, p_int: int, prob_bits: int) -> np.ndarray:
    """Keep mask of ``n`` neurons: neuron j is dropped iff top ``prob_bits`` of draw j < p_int.

    A layer without dropout (``p_int == 0``) draws nothing, so adding dropout
    to one layer does not shift the stream seen by the others more than needed.
    """
    if p_int == 0:
        return np.ones(n, dtype=bool)
    return dropout_draws(rng, n, prob_bits) >= p_int


def dropout_draws(rng: XorShift32, n: int, prob_bits: int) -> np.ndarray:
    """The ``n`` values a layer's dropout compares with its probability: the top
    ``prob_bits`` of each draw (exposed so that testbenches can see a draw land
    exactly on the probability, the one value where ``<`` and ``<=`` differ)."""
    return rng.draw(n) >> np.uint32(32 - prob_bits)


def seed_with_draw(value: int, prob_bits: int, within: int) -> int:
    """The smallest seed whose first ``within`` dropout draws include ``value``.

    A config with this ``dropout_seed`` makes the first training sample draw a
    value exactly equal to ``value`` (the dropout boundary: kept, since a neuron is
    dropped only below it), which random seeds reach once in ``2^prob_bits`` draws.
    """
    for seed in range(1, MASK32 + 1):
        if (dropout_draws(XorShift32(seed), within, prob_bits) == value).any():
            return seed
    raise ValueError(f"no seed draws {value} within {within} draws")  # pragma: no cover


def weyl_rounding(row_words: np.ndarray, cols: np.ndarray, lr_shift: int) -> np.ndarray:
    """Offsets (rows, len(cols)): top ``lr_shift`` bits of (row_word + col * WEYL_STEP) mod 2^32."""
    col = np.asarray(cols, dtype=np.uint64)
    words = row_words.astype(np.uint64)[:, None] + col[None, :] * np.uint64(WEYL_STEP)
    return ((words & np.uint64(MASK32)) >> np.uint64(32 - lr_shift)).astype(np.int64)
