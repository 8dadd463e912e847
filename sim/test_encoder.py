"""cocotb testbench of rtl.encoder.Encoder; golden.encoder.Encoder is the scoreboard.

Every step's spike words are compared with golden's spikes of that step.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.handle import HierarchyObject
from cocotb.triggers import RisingEdge

from golden.encoder import Encoder as GoldenEncoder
from sim.drivers import BlockMonitor, SequencePlayer, env_config, reset, stimulus_rng


class EncoderEnv:
    """DUT (in its sim.harness harness) plus drivers: load pixels (played by the harness),
    run steps, return the spikes of each step."""

    def __init__(self, dut: HierarchyObject) -> None:
        cfg = env_config()
        self.dut = dut
        self.n, self.lanes = cfg.network.layers[0], cfg.hardware.lanes
        self.words = -(-self.n // self.lanes)
        self.tsteps = cfg.network.tsteps
        dut.start.value = 0
        dut.first.value = 0
        self.pixels = SequencePlayer(dut, "pix_", dut.clk, ("we", "word", "lane", "data"))
        self.monitor = BlockMonitor(dut.clk, dut.spk_valid, dut.spk_word, dut.spk_bits)

    async def load(self, image: np.ndarray) -> None:
        i = np.arange(len(image))
        await self.pixels.run(1, i // self.lanes, i % self.lanes, image)

    def set_keep(self, keep: np.ndarray) -> None:
        self.dut.keep.value = int("".join("1" if k else "0" for k in keep[::-1]), 2)

    async def step(self, first: bool) -> np.ndarray:
        """One time step: (n,) spikes."""
        self.dut.start.value = 1
        self.dut.first.value = int(first)
        await RisingEdge(self.dut.clk)
        self.dut.start.value = 0
        words = await self.monitor.collect(self.words)
        await RisingEdge(self.dut.clk)
        spikes = np.zeros(self.words * self.lanes, dtype=bool)
        for w, bits in words:
            for j in range(self.lanes):
                spikes[w * self.lanes + j] = (bits >> j) & 1
        return spikes[: self.n]

    async def check(self, images: np.ndarray, keep: np.ndarray) -> None:
        """Each image for T steps against golden, step by step."""
        self.set_keep(keep)
        ref = GoldenEncoder(images, keep)
        want = np.stack([ref.step() for _ in range(self.tsteps)], axis=1)
        for k, image in enumerate(images):
            await self.load(image)
            for t in range(self.tsteps):
                got = await self.step(first=t == 0)
                bad = np.flatnonzero(got != want[k, t])
                assert not bad.size, f"image {k} step {t}: spikes differ at pixels {bad[:10]}"


@cocotb.test()
async def test_random_images(dut: HierarchyObject) -> None:
    """Constrained-random pixels (uniform, plus runs of 0 and 255) and dropout masks."""
    env = EncoderEnv(dut)  # drives every input before reset ends
    await reset(dut)
    rng = stimulus_rng("encoder.random")
    images = rng.integers(0, 256, (3, env.n)).astype(np.uint8)
    images[1, rng.random(env.n) < 0.3] = 0
    images[2, rng.random(env.n) < 0.3] = 255
    await env.check(images, rng.random(env.n) < 0.9)


@cocotb.test()
async def test_all_zero_and_all_full(dut: HierarchyObject) -> None:
    """Black never spikes, white spikes every step; all pixels dropped never spikes."""
    env = EncoderEnv(dut)  # drives every input before reset ends
    await reset(dut)
    images = np.stack([np.zeros(env.n, np.uint8), np.full(env.n, 255, np.uint8)])
    await env.check(images, np.ones(env.n, dtype=bool))
    await env.check(images[1:], np.zeros(env.n, dtype=bool))
