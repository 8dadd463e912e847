"""Dropout keep masks, drawn from the dropout stream at the start of a training sample.

Mirrors :meth:`golden.network.GoldenNet.draw_keep` (docs/fixed-point.md, section 7):
one xorshift32 draw per neuron of every layer with dropout, input layer first,
neuron 0 first; a neuron is dropped when the top ``prob_bits`` of its draw are
below the layer's ``drop_p``. A draw is shifted into its mask from the top, so
that draw ``i`` of a layer ends at bit ``i`` without any decoding.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from desire.config import Config
from golden.fixed import constants
from rtl import check_int, index_shape
from rtl.prng import XorShift32

__all__ = ["DropoutMasks"]


class DropoutMasks(wiring.Component):
    """Keep masks of neuron layers of ``sizes[j]`` neurons with dropout thresholds
    ``drop_p[j]`` (0 = no dropout) on ``prob_bits``, from a stream seeded with ``seed``.

    Ports
    -----
    enable : In(1)
        Training mode: the masks apply; otherwise every keep bit is 1.
    draw : In(1)
        One draw from the dropout stream, into the mask it belongs to.
    last : Out(1)
        The next draw is the last of a sample (always 1 without dropout); the draw
        after it starts over with the first layer.
    keep0, keep1, ... : Out(sizes[j])
        Keep mask of layer ``j`` (:meth:`keep`): its register while ``enable``,
        else all ones; always all ones for a layer without dropout.
    state : Out(32)
        The stream's state (seeded at reset, never reseeded).
    """

    def __init__(
        self, sizes: Sequence[int], drop_p: Sequence[int], *, prob_bits: int, seed: int
    ) -> None:
        self._prob_bits = check_int("prob_bits", prob_bits, 1, 32)
        self._sizes = tuple(check_int(f"sizes[{j}]", n, 1) for j, n in enumerate(sizes))
        self._drop_p = tuple(
            check_int(f"drop_p[{j}]", p, 0, 1 << prob_bits) for j, p in enumerate(drop_p)
        )
        if not self._sizes:
            raise ValueError("sizes must name at least one layer")
        if len(self._drop_p) != len(self._sizes):
            raise ValueError(
                f"sizes and drop_p must name the same layers, not {len(self._sizes)} "
                f"and {len(self._drop_p)}"
            )
        self._rng = XorShift32(seed)
        super().__init__(
            {
                "enable": In(1),
                "draw": In(1),
                "last": Out(1),
                **{f"keep{j}": Out(n, init=(1 << n) - 1) for j, n in enumerate(self._sizes)},
                "state": Out(32, init=seed),
            }
        )

    @classmethod
    def for_config(cls, cfg: Config) -> DropoutMasks:
        """The masks of every layer but the output layer (which never drops)."""
        c = constants(cfg)
        return cls(
            c.layers[:-1], c.drop_p[: c.n_linear], prob_bits=c.prob_bits, seed=c.dropout_seed
        )

    @property
    def draws(self) -> int:
        """Draws per sample: one per neuron of each layer with dropout."""
        return sum(n for n, p in zip(self._sizes, self._drop_p, strict=True) if p > 0)

    def keep(self, j: int) -> Signal:
        """The port ``keep<j>``."""
        check_int("j", j, 0, len(self._sizes) - 1)
        return getattr(self, f"keep{j}")

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.rng = rng = self._rng
        m.d.comb += [self.state.eq(rng.state), rng.draw.eq(self.draw)]
        k = Signal(index_shape(self.draws))  # this draw's index within the sample
        m.d.comb += self.last.eq(k == self.draws - 1 if self.draws else 1)
        with m.If(self.draw):
            m.d.sync += k.eq(Mux(self.last, 0, k + 1))
        top = rng.value[32 - self._prob_bits :]
        start = 0
        for j, (n, p) in enumerate(zip(self._sizes, self._drop_p, strict=True)):
            ones = (1 << n) - 1
            if p == 0:
                m.d.comb += self.keep(j).eq(ones)
                continue
            mask = Signal(n, name=f"mask{j}")
            mine = (k < start + n) if start == 0 else (k >= start) & (k < start + n)
            with m.If(self.draw & mine):
                m.d.sync += mask.eq(Cat(mask[1:], top >= p))
            m.d.comb += self.keep(j).eq(Mux(self.enable, mask, ones))
            start += n
        return m
