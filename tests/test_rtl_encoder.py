"""rtl.encoder.Encoder in the Amaranth simulator against golden.encoder.Encoder."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator, SimulatorContext

from golden.encoder import Encoder as GoldenEncoder
from rtl.encoder import Encoder


def _simulate(
    enc: Encoder,
    samples: list[np.ndarray],
    keep: np.ndarray,
    steps: int,
    *,
    start_while_busy: bool = False,
) -> np.ndarray:
    """Load each sample's pixels, run ``steps`` steps; return spikes (samples, steps, n).
    ``start_while_busy``: ``start`` (and ``first``) stay high in every busy cycle, which
    the encoder must ignore."""
    out = np.zeros((len(samples), steps, enc.words * enc.lanes), dtype=bool)

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(enc.keep, int("".join("1" if k else "0" for k in keep[::-1]), 2))
        for k, pixels in enumerate(samples):
            ctx.set(enc.pix_we, 1)
            for i, x in enumerate(pixels):
                ctx.set(enc.pix_word, i // enc.lanes)
                ctx.set(enc.pix_lane, i % enc.lanes)
                ctx.set(enc.pix_data, int(x))
                await ctx.tick()
            ctx.set(enc.pix_we, 0)
            for t in range(steps):
                ctx.set(enc.start, 1)
                ctx.set(enc.first, t == 0)
                await ctx.tick()
                ctx.set(enc.start, start_while_busy)
                ctx.set(enc.first, start_while_busy)
                for _ in range(enc.words + 2 * Encoder.STAGES):  # bounded: a step must end
                    if not ctx.get(enc.busy):
                        break
                    if ctx.get(enc.spk_valid):
                        w, bits = ctx.get(enc.spk_word), ctx.get(enc.spk_bits)
                        for j in range(enc.lanes):
                            out[k, t, w * enc.lanes + j] = (bits >> j) & 1
                    await ctx.tick()
                else:
                    raise AssertionError(f"sample {k}, step {t}: still busy")
                ctx.set(enc.start, 0)

    sim = Simulator(enc)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out[:, :, : enc.n]


def _golden(samples: list[np.ndarray], keep: np.ndarray, steps: int) -> np.ndarray:
    ref = GoldenEncoder(np.stack(samples), keep)
    return np.stack([ref.step() for _ in range(steps)], axis=1)


@pytest.mark.parametrize(("n", "lanes"), [(30, 8), (13, 4), (5, 8), (7, 1)])
def test_sim_random_matches_golden(n: int, lanes: int) -> None:
    rng = np.random.default_rng(n * 10 + lanes)
    samples = [rng.integers(0, 256, n).astype(np.uint8) for _ in range(2)]
    samples[1][:3] = [0, 255, 128]  # corner values
    keep = rng.random(n) < 0.8
    got = _simulate(Encoder(n, lanes), samples, keep, steps=7)
    np.testing.assert_array_equal(got, _golden(samples, keep, 7))


def test_sim_all_zero_and_all_full() -> None:
    n = 10
    samples = [np.zeros(n, np.uint8), np.full(n, 255, np.uint8)]
    keep = np.ones(n, dtype=bool)
    got = _simulate(Encoder(n, 4), samples, keep, steps=3)
    assert not got[0].any() and got[1].all()


def test_sim_start_while_busy_is_ignored() -> None:
    """``start`` held high through a step (the drain included) starts no second step: the
    accelerator's sequencer never does that, so only this test sees the gating."""
    rng = np.random.default_rng(11)
    samples = [rng.integers(0, 256, 13).astype(np.uint8) for _ in range(2)]
    keep = np.ones(13, dtype=bool)
    got = _simulate(Encoder(13, 4), samples, keep, steps=5, start_while_busy=True)
    np.testing.assert_array_equal(got, _golden(samples, keep, 5))


def test_wrong_arguments() -> None:
    with pytest.raises(ValueError, match="n must be >= 1, not 0"):
        Encoder(0, 4)
    with pytest.raises(TypeError, match="lanes must be an integer, not True"):
        Encoder(4, True)
    assert Encoder(784, 8).words == 98
