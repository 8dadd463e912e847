"""rtl.external_cycle_model against the external-memory accelerator in the Amaranth
simulator: the model equals ``CYCLES`` on every sample, behind an ideal memory.

The memory here is the one the model assumes (its docstring): ``arready`` always high,
the first beat of a burst ``latency`` cycles after its AR handshake (or right after the
beats of earlier bursts), one beat per cycle, ``rresp`` OKAY. The cases cover words of
one beat and of several (2, 8 and 16 beats; a word never shares a beat with another,
so a beat wider than a word carries one word and unused bytes), latencies 1, 5 and
20, a buffer sized for a shorter latency than the memory's (the reader's partial
bursts against its credits), rows that cross a 4 KB boundary, and rows longer than
256 beats; the slave records the bursts, so that each case shows it took the path it
is there for.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from amaranth.sim import Simulator, SimulatorContext

from desire.config import Config
from rtl.accelerator import Accelerator
from rtl.axi import AXI_4K, AXI_MAX_BEATS
from rtl.cycle_model import cycle_model
from rtl.external_cycle_model import ReaderGeometry, external_cycle_model
from tests.test_rtl_accelerator import _images, _read, _transfer, _write
from tests.test_rtl_accelerator_external import DEEP, SMALL, _net

#: rows of SMALL's table (3 and 2 words of 8 bytes) straddle 0x4000 from here
NEAR_4K = 0x3F00 + 8


@dataclass(frozen=True)
class Case:
    """One configuration, the memory's latency and ``WEIGHT_BASE``, and what its bursts
    must show: a burst shorter than the request's row that the 4 KB boundary does not
    explain (``partial``: the credits' threshold), one cut at a 4 KB boundary
    (``split_4k``), one of 256 beats cut from a longer row (``split_256``)."""

    cfg: Config
    latency: int
    base: int = 0x3000
    images: int = 4
    partial: bool = False
    split_4k: bool = False
    split_256: bool = False


def _hw(cfg: Config, **hardware: object) -> Config:
    return cfg.replace(hardware=hardware)


CASES = {
    # 4 lanes x 16 bits = 8 bytes: 2 beats a word; the buffer sized for latency 32
    "small-4B-L1": Case(_hw(SMALL, axi_bytes=4), latency=1),
    # 8 beats a word behind latency 20
    "small-1B-L20": Case(_hw(SMALL, axi_bytes=1), latency=20),
    # 2 lanes x 16 bits = 4 bytes, one beat a word; the buffer (26 words) sized for
    # latency 1 behind latency 20: a row of layer 0 (7 words) is more than the burst
    # threshold (6), so the reader cuts it when 6 credits are free
    "narrow-4B-L20": Case(
        SMALL.replace(
            network={"layers": (20, 14, 6)},
            hardware={"lanes": 2, "axi_bytes": 4, "axi_latency": 1},
        ),
        latency=20,
        partial=True,
    ),
    # one beat a word exactly, the table across a 4 KB boundary
    "small-8B-L5": Case(
        _hw(SMALL, axi_bytes=8, axi_latency=5), latency=5, base=NEAR_4K, split_4k=True
    ),
    # 2 lanes x 16 bits = 4 bytes: 2 beats at 2 bytes, one beat (12 bytes unused) at 16
    "deep-2B-L5": Case(_hw(DEEP, axi_bytes=2, axi_latency=5), latency=5),
    "deep-16B-L20": Case(_hw(DEEP, axi_bytes=16, axi_latency=20), latency=20),
    # rows of 17 words of 16 beats (272): a burst of 256 beats, then the rest
    "wide-1B-L5": Case(
        SMALL.replace(
            network={"layers": (10, 136, 4), "tsteps": 2, "error_margin": 1},
            hardware={"lanes": 8, "axi_bytes": 1, "axi_latency": 5},
        ),
        latency=5,
        images=2,
        split_256=True,
    ),
}


def _ideal_slave(
    dut: Accelerator, image: bytes, base: int, latency: int, bursts: list[tuple[int, int]]
) -> Any:
    """The ideal AXI4 read slave of the model, holding ``image`` at ``base``; appends
    every burst (address, beats) to ``bursts``."""
    axi, d = dut.axi, dut.config.hardware.axi_bytes

    async def slave(ctx: SimulatorContext) -> None:
        due: deque[tuple[int, int]] = deque()  # (cycle due, data) per beat
        cycle = 0
        ctx.set(axi.arready, 1)
        ctx.set(axi.rlast, 0)
        while True:
            offer = due[0] if due and due[0][0] <= cycle else None
            ctx.set(axi.rvalid, offer is not None)
            if offer is not None:
                ctx.set(axi.rdata, offer[1])
            if ctx.get(axi.arvalid):
                addr, beats = ctx.get(axi.araddr), ctx.get(axi.arlen) + 1
                bursts.append((addr, beats))
                offset = addr - base
                assert offset >= 0 and offset + beats * d <= len(image), f"read {addr:#x}"
                start = cycle + latency
                for k in range(beats):
                    a = offset + k * d
                    due.append((start + k, int.from_bytes(image[a : a + d], "little")))
            if offer is not None:
                due.popleft()  # rready is always high
            await ctx.tick()
            cycle += 1

    return slave


def _simulate(case: Case, images: np.ndarray) -> tuple[list[list[int]], list[int], list]:
    """Counts and CYCLES of every image on the RTL, and the bursts it read."""
    cfg = case.cfg
    dut = Accelerator(cfg)
    image = dut.weight_image(_net(cfg).weights)
    counts: list[list[int]] = []
    cycles: list[int] = []
    bursts: list[tuple[int, int]] = []

    async def host(ctx: SimulatorContext) -> None:
        await _write(ctx, dut, dut.regs.WEIGHT_BASE, case.base)
        for img in images:
            res = await _transfer(ctx, dut, img)
            counts.append([int(x) for x in res.counts])
            cycles.append(await _read(ctx, dut, dut.regs.CYCLES))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.add_testbench(_ideal_slave(dut, image, case.base, case.latency, bursts), background=True)
    sim.run()
    return counts, cycles, bursts


def _shapes(case: Case, bursts: list[tuple[int, int]]) -> dict[str, bool]:
    """Which of the reader's burst cuts the bursts show (:class:`Case`)."""
    g = ReaderGeometry.for_config(case.cfg)
    rows = {b * g.beats for b in g.blocks}
    cut_4k = [(a + n * g.data_bytes) % AXI_4K == 0 for a, n in bursts]
    return {
        "partial": any(
            n not in rows and not cut and n != AXI_MAX_BEATS
            for (_, n), cut in zip(bursts, cut_4k, strict=True)
        ),
        "split_4k": any(cut and n not in rows for (_, n), cut in zip(bursts, cut_4k, strict=True)),
        "split_256": AXI_MAX_BEATS in {n for _, n in bursts},
    }


@pytest.mark.parametrize("name", list(CASES))
def test_model_equals_cycles(name: str) -> None:
    """Model == CYCLES on every sample; the counts equal golden's; the sample is never
    faster than on chip; the bursts took the path the case is there for."""
    case = CASES[name]
    cfg = case.cfg
    images = _images(cfg, case.images, seed=5)
    counts, cycles, bursts = _simulate(case, images)
    rec = _net(cfg).forward(images, record=True)
    on_chip = _hw(cfg, weights="on-chip")
    slower = 0
    for k, got in enumerate(cycles):
        np.testing.assert_array_equal(counts[k], rec.counts[-1][k], err_msg=f"sample {k}")
        spikes = [s[:, k] for s in rec.spikes]
        inputs = rec.input_spikes[:, k]
        model = external_cycle_model(cfg, inputs, spikes, case.latency, base=case.base)
        assert model.cycles == got, f"sample {k}: model {model.cycles}, CYCLES {got}"
        fast = cycle_model(on_chip, inputs, spikes).cycles
        assert got >= fast
        slower += got > fast
    assert slower, "no sample waited for the memory: the case would prove little"
    shapes = _shapes(case, bursts)
    for shape in ("partial", "split_4k", "split_256"):
        if getattr(case, shape):
            assert shapes[shape], f"no burst shows {shape}"


def test_model_refuses_what_it_does_not_cover() -> None:
    """Only inference builds of the external-memory shared pool, a latency of 1 or more."""
    cfg = _hw(SMALL, weights="external")
    inputs = np.zeros((6, 20), dtype=bool)
    spikes = [np.zeros((6, 12), dtype=bool), np.zeros((6, 6), dtype=bool)]
    assert external_cycle_model(cfg, inputs, spikes, 3).cycles > 0
    with pytest.raises(ValueError, match="inference"):
        external_cycle_model(_hw(cfg, training=True), inputs, spikes, 3)
    with pytest.raises(ValueError, match="weights = external"):
        external_cycle_model(_hw(cfg, weights="on-chip"), inputs, spikes, 3)
    with pytest.raises(ValueError, match="latency"):
        external_cycle_model(cfg, inputs, spikes, 0)
