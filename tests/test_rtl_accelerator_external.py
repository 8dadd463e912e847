"""The shared-pool accelerator with its weights in external memory (``weights = external``),
in the Amaranth simulator, against golden.network.GoldenNet.

The AXI slave here is a testbench responder (random ``arready``, latency and ``rvalid``
gaps) over the image :meth:`Accelerator.weight_image` makes; the cocotb bench checks the
same reader against cocotbext-axi's AxiRam.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from typing import Any

import numpy as np
import pytest
from amaranth.sim import Simulator, SimulatorContext

from desire.config import Config, load_config
from golden.network import GoldenNet
from rtl.accelerator import Accelerator, Status
from rtl.cycle_model import cycle_model
from tests.test_rtl_accelerator import _images, _read, _transfer, _write

BASE = 0x3000  # WEIGHT_BASE: not 0, so that a reader ignoring it fails
SMALL = load_config().replace(
    network={"layers": (20, 12, 6), "tsteps": 6},
    hardware={"lanes": 4, "architecture": "shared", "weights": "external", "training": False},
)
DEEP = SMALL.replace(network={"layers": (9, 5, 7, 3), "tsteps": 8}, hardware={"lanes": 2})


def _slave(
    dut: Accelerator,
    image: bytes,
    *,
    latency: tuple[int, int],
    gaps: float,
    seed: int,
    error_at: int | None = None,
) -> Any:
    """An AXI4 read slave holding ``image`` at ``BASE``: ``arready`` and each beat's
    ``rvalid`` withheld with probability ``gaps``, the first beat ``latency`` cycles after
    the address; the beat at byte ``error_at`` answers SLVERR."""
    axi, d = dut.axi, dut.config.hardware.axi_bytes

    async def slave(ctx: SimulatorContext) -> None:
        rng = random.Random(seed)
        due: deque[tuple[int, int, int, bool]] = deque()
        cycle = 0
        while True:
            ctx.set(axi.arready, rng.random() >= gaps)
            offer = due[0] if due and due[0][0] <= cycle and rng.random() >= gaps else None
            ctx.set(axi.rvalid, offer is not None)
            if offer is not None:
                ctx.set(axi.rdata, offer[1])
                ctx.set(axi.rresp, offer[2])
                ctx.set(axi.rlast, offer[3])
            if ctx.get(axi.arvalid) and ctx.get(axi.arready):
                addr, beats = ctx.get(axi.araddr) - BASE, ctx.get(axi.arlen) + 1
                assert addr >= 0 and addr + beats * d <= len(image), f"read outside: {addr:#x}"
                start = cycle + rng.randint(*latency)
                for k in range(beats):
                    a = addr + k * d
                    resp = 2 if a == error_at else 0
                    data = int.from_bytes(image[a : a + d], "little")
                    due.append((start + k, data, resp, k == beats - 1))
            if offer is not None and ctx.get(axi.rready):
                due.popleft()
            await ctx.tick()
            cycle += 1

    return slave


def _net(cfg: Config) -> GoldenNet:
    net = GoldenNet.init_random(cfg, seed=3)
    net.weights = [np.clip(w * 3, -(2**15), 2**15 - 1) for w in net.weights]
    return net


def _run(
    cfg: Config, n_images: int, *, latency: tuple[int, int], gaps: float, seed: int
) -> tuple[GoldenNet, np.ndarray, list[tuple[list[int], int]]]:
    net = _net(cfg)
    dut = Accelerator(cfg)
    image = dut.weight_image(net.weights)
    images = _images(cfg, n_images, seed=2)
    got: list[tuple[list[int], int]] = []

    async def host(ctx: SimulatorContext) -> None:
        await _write(ctx, dut, dut.regs.WEIGHT_BASE, BASE)
        for img in images:
            res = await _transfer(ctx, dut, img)
            got.append(([int(x) for x in res.counts], await _read(ctx, dut, dut.regs.CYCLES)))
        assert await _read(ctx, dut, dut.regs.STATUS) == 0, "an error flagged"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.add_testbench(_slave(dut, image, latency=latency, gaps=gaps, seed=seed), background=True)
    sim.run()
    return net, images, got


@pytest.mark.parametrize(
    ("cfg", "axi_bytes", "latency", "gaps"),
    [
        (SMALL, 4, (1, 1), 0.0),
        (SMALL, 8, (3, 12), 0.3),
        (DEEP, 2, (1, 20), 0.5),
        (DEEP, 16, (2, 2), 0.0),
    ],
    ids=["small-4B", "small-8B-random", "deep-2B-random", "deep-16B"],
)
def test_sim_counts_match_golden(cfg: Config, axi_bytes: int, latency: tuple, gaps: float):
    """Every spike count equals golden's whatever the memory's latency and gaps, and a
    sample never takes fewer cycles than with the weights on chip."""
    cfg = cfg.replace(hardware={"axi_bytes": axi_bytes})
    net, images, got = _run(cfg, 4, latency=latency, gaps=gaps, seed=axi_bytes)
    want = net.forward(images, record=True)
    on_chip = cfg.replace(hardware={"weights": "on-chip"})
    assert any(sum(c) for c, _ in got), "the test needs output spikes to mean anything"
    for k, (counts, cycles) in enumerate(got):
        np.testing.assert_array_equal(counts, want.counts[-1][k], err_msg=f"sample {k}")
        spikes = [s[:, k] for s in want.spikes]
        assert cycles >= cycle_model(on_chip, want.input_spikes[:, k], spikes).cycles


def test_sim_weight_window_refused_and_memory_error_flagged() -> None:
    """With the weights outside, a write to the weight window is refused (ERR_WRITE) and
    reads 0; an error answer of the memory sets STATUS.ERR_MEMORY (and stays)."""
    cfg = SMALL
    net = _net(cfg)
    dut = Accelerator(cfg)
    image = dut.weight_image(net.weights)
    seen: dict[str, int] = {}

    async def host(ctx: SimulatorContext) -> None:
        await _write(ctx, dut, dut.weight_address(0, 0, 0), 5)
        seen["window"] = await _read(ctx, dut, dut.weight_address(0, 0, 0))
        seen["status"] = await _read(ctx, dut, dut.regs.STATUS)
        await _write(ctx, dut, dut.regs.STATUS, Status.ERR_WRITE)
        await _write(ctx, dut, dut.regs.WEIGHT_BASE, BASE)
        seen["base"] = await _read(ctx, dut, dut.regs.WEIGHT_BASE)
        await _transfer(ctx, dut, np.full(cfg.network.layers[0], 255, np.uint8))
        seen["after"] = await _read(ctx, dut, dut.regs.STATUS)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    slave = _slave(dut, image, latency=(1, 1), gaps=0.0, seed=1, error_at=0)
    sim.add_testbench(slave, background=True)
    sim.run()
    assert seen == {
        "window": 0,
        "status": Status.ERR_WRITE,
        "base": BASE,
        "after": Status.ERR_MEMORY,
    }


def test_external_weights_are_not_built_in() -> None:
    with pytest.raises(ValueError, match="live in external memory"):
        Accelerator(SMALL, _net(SMALL).weights)


def test_table_words_cover_the_weight_image() -> None:
    """The shared pool's table, layer by layer, back to back, as long as the image the
    external memory gets; the per-layer architecture has no single table."""
    cfg = DEEP
    dut = Accelerator(cfg)
    net = GoldenNet.init_random(cfg, seed=1)
    spans = [dut.table_words(l) for l in range(len(net.weights))]
    assert spans[0].start == 0 and spans[-1].stop == len(dut.table_words())
    assert all(a.stop == b.start for a, b in itertools.pairwise(spans))
    lanes = cfg.hardware.lanes
    for span, w in zip(spans, net.weights, strict=True):
        assert len(span) == w.shape[1] * -(-w.shape[0] // lanes)
    stride = len(dut.weight_image(net.weights)) // len(dut.table_words())
    assert stride * len(dut.table_words()) == len(dut.weight_image(net.weights))
    with pytest.raises(ValueError, match="per-layer"):
        Accelerator(
            cfg.replace(hardware={"architecture": "per-layer", "weights": "on-chip"})
        ).table_words()
