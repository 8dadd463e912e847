"""rtl.dropout.DropoutMasks in the Amaranth simulator against golden's dropout draws."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator, SimulatorContext

from desire.config import Config, load_config
from golden.fixed import constants
from golden.network import GoldenNet
from golden.prng import XorShift32 as GoldenXorShift
from golden.prng import dropout_mask
from rtl.dropout import DropoutMasks

SMALL = load_config().replace(network={"layers": (20, 12, 6), "tsteps": 6}, hardware={"lanes": 4})
DEEP = load_config().replace(network={"layers": (9, 5, 7, 3), "tsteps": 8}, hardware={"lanes": 2})


def _bits(x: int, n: int) -> np.ndarray:
    return np.array([x >> i & 1 for i in range(n)], dtype=bool)


@pytest.mark.parametrize(
    "cfg",
    [SMALL, DEEP, DEEP.replace(network={"dropout": (0.0, 0.3)})],
    ids=["small", "deep", "hidden-only"],
)
def test_sim_masks_match_golden(cfg: Config) -> None:
    """Sample after sample (the stream continues): draw until ``last``, then every mask
    equals golden's ``draw_keep``; the stream's state equals golden's."""
    dut = DropoutMasks.for_config(cfg)
    c = constants(cfg)
    net = GoldenNet.init_random(cfg, seed=0)
    got: list[tuple[list[np.ndarray], int, int]] = []

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(dut.enable, 1)
        for _ in range(3):
            ctx.set(dut.draw, 1)
            draws = 1
            while not ctx.get(dut.last):
                await ctx.tick()
                draws += 1
                assert draws <= dut.draws, "no last draw"  # fail, do not hang
            await ctx.tick()
            ctx.set(dut.draw, 0)
            masks = [_bits(ctx.get(dut.keep(j)), n) for j, n in enumerate(c.layers[:-1])]
            got.append((masks, draws, ctx.get(dut.state)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    for k, (masks, draws, state) in enumerate(got):
        want = net.draw_keep()
        assert draws == dut.draws, f"sample {k}"
        for j, mask in enumerate(masks):
            np.testing.assert_array_equal(mask, want[j], err_msg=f"sample {k}, layer {j}")
        assert state == net.dropout_rng.state, f"sample {k}"


def _first_keep(drop_p: int, seed: int) -> int:
    """Keep bit of a one-neuron layer after one draw of a stream seeded ``seed``."""
    dut = DropoutMasks([1], [drop_p], prob_bits=16, seed=seed)
    seen: list[int] = []

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(dut.enable, 1)
        ctx.set(dut.draw, 1)
        await ctx.tick()
        ctx.set(dut.draw, 0)
        seen.append(ctx.get(dut.keep(0)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return seen[0]


@pytest.mark.parametrize("seed", [7, 0xDEAD_BEEF])
def test_sim_draw_equal_to_threshold_keeps(seed: int) -> None:
    """A neuron is dropped iff the top ``prob_bits`` of its draw are *below* ``drop_p``:
    ``drop_p`` is set to the first draw's top bits, so that draw hits the threshold
    exactly (1 in 65,536 per random draw); one above and one below it as well."""
    first = GoldenXorShift(seed).next() >> 16
    got, want = [], []
    for drop_p in (first, first + 1, first - 1):
        got.append(_first_keep(drop_p, seed))
        want.append(int(dropout_mask(GoldenXorShift(seed), 1, drop_p, 16)[0]))
    assert got == want == [1, 0, 1]


def test_sim_disabled_keeps_everything() -> None:
    """Outside training every keep bit is 1, whatever the registers hold."""
    dut = DropoutMasks([8, 5], [2**15, 2**15], prob_bits=16, seed=7)
    seen: dict[str, list[int]] = {}

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(dut.draw, 1)
        await ctx.tick().repeat(dut.draws)
        ctx.set(dut.draw, 0)
        seen["disabled"] = [ctx.get(dut.keep(j)) for j in range(2)]
        ctx.set(dut.enable, 1)
        seen["enabled"] = [ctx.get(dut.keep(j)) for j in range(2)]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert seen["disabled"] == [0xFF, 0x1F]
    assert seen["enabled"] != seen["disabled"], "half the neurons should drop"


def test_init() -> None:
    dut = DropoutMasks([8, 5, 3], [0, 100, 0], prob_bits=16, seed=7)
    assert dut.draws == 5 and [len(dut.keep(j)) for j in range(3)] == [8, 5, 3]
    assert DropoutMasks([4], [0], prob_bits=8, seed=1).draws == 0


def test_wrong_arguments() -> None:
    with pytest.raises(ValueError, match="sizes and drop_p must name the same layers, not 2 and 1"):
        DropoutMasks([8, 5], [3], prob_bits=16, seed=7)
    with pytest.raises(ValueError, match=r"drop_p\[0\] must be >= 0 and <= 256, not 257"):
        DropoutMasks([8], [257], prob_bits=8, seed=7)
    with pytest.raises(ValueError, match="seed must be >= 1"):
        DropoutMasks([8], [0], prob_bits=8, seed=0)
    with pytest.raises(ValueError, match="j must be >= 0 and <= 0, not 1"):
        DropoutMasks([8], [0], prob_bits=8, seed=1).keep(1)
