"""cocotb bench of rtl.axi_shell.AxiShell with cocotbext-axi (AxiLiteMaster, AXI-Stream).

Run by sim.runner as the block ``axi_shell`` (the shell's Verilog as the top
``desire_axi_shell``, the config as JSON in ``DESIRE_CONFIG``; default the small network
of tests/test_rtl_axi_shell.py); the bench drives the clock itself. The weights come over
``s_axis_weights`` (:meth:`_Bench.load_weights`), so the Verilog needs none built in.
The point of this bench next to the Amaranth-simulator tests: third-party AXI models,
not our own, bind to the ports by name (``from_prefix(dut, "s_axil_")`` finds
``s_axil__awaddr``) and drive them with their own idea of the protocol, with pauses on
every channel."""

from __future__ import annotations

import itertools
import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.handle import HierarchyObject
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import (
    AxiLiteBus,
    AxiLiteMaster,
    AxiStreamBus,
    AxiStreamFrame,
    AxiStreamSink,
    AxiStreamSource,
)

from desire.config import Config, load_config
from golden.network import GoldenNet, strict_argmax
from rtl.axi_shell import RESP_OKAY, RESP_SLVERR, AxiShell
from rtl.register_map import Status
from sim import coverage

ENV_CONFIG = "DESIRE_CONFIG"
SMALL = load_config().replace(network={"layers": (20, 12, 6), "tsteps": 6}, hardware={"lanes": 4})


def _config() -> Config:
    text = os.environ.get(ENV_CONFIG)
    return Config.from_dict(json.loads(text)) if text else SMALL


def _net(cfg: Config) -> GoldenNet:
    """The bench's network: random weights, three times Kaiming so that outputs spike."""
    net = GoldenNet.init_random(cfg, seed=3)
    net.weights = [np.clip(w * 3, -(2**15), 2**15 - 1).astype(np.int32) for w in net.weights]
    return net


def _pauses(rng: random.Random, busy: float) -> itertools.cycle:
    """A pause pattern (True = pause) with random stretches, for set_pause_generator."""
    pattern = []
    while len(pattern) < 997:
        pattern += [rng.random() < busy] * rng.randint(1, 12)
    return itertools.cycle(pattern)


class _Bench:
    def __init__(self, dut: HierarchyObject, seed: int) -> None:
        self.dut, self.cfg = dut, _config()
        self.rng = random.Random(seed)
        # the same design as the Verilog's, never elaborated: its layout and addresses
        self.shell = AxiShell(self.cfg)
        self.regs = self.shell.regs
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
        self.pixels = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_"), dut.clk, dut.rst)
        self.results = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_"), dut.clk, dut.rst)
        for channel in (self.pixels, self.results, self.axil.write_if.b_channel):
            channel.set_pause_generator(_pauses(self.rng, 0.5))
        self.axil.read_if.r_channel.set_pause_generator(_pauses(self.rng, 0.5))
        self.cover = coverage.points("axi_shell")

    async def reset(self) -> None:
        cocotb.start_soon(Clock(self.dut.clk, 10, unit="ns").start())
        self.dut.rst.value = 1
        self.dut.s_axis_weights__tvalid.value = 0  # an undriven valid is X in Icarus
        await ClockCycles(self.dut.clk, 4)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    async def load_weights(self, net: GoldenNet) -> None:
        """All weights over ``s_axis_weights`` (32-bit beats, ``tlast`` at the end), with
        random pauses."""
        dut = self.dut
        beats = self.shell.weight_beats(net.weights)
        stream = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_weights_"), dut.clk, dut.rst)
        stream.set_pause_generator(_pauses(self.rng, 0.3))
        await stream.send(AxiStreamFrame(b"".join(b.to_bytes(4, "little") for b in beats)))
        await stream.wait()

    async def write(self, word: int, value: int, length: int = 4) -> int:
        resp = await self.axil.write(4 * word, (value & 0xFFFF_FFFF).to_bytes(4, "little")[:length])
        self.cover["register_write"](int(resp.resp))
        return int(resp.resp)

    async def read(self, word: int) -> int:
        resp = await self.axil.read(4 * word, 4)
        assert int(resp.resp) == RESP_OKAY
        return int.from_bytes(resp.data, "little")


@cocotb.test()
async def test_samples_errors_and_registers(dut: HierarchyObject) -> None:
    """Samples with wrong-length frames between them, register traffic alongside: the good
    samples' results equal golden's, ERR_FRAME is set and clears, a partial write is
    refused with SLVERR."""
    bench = _Bench(dut, seed=int(os.environ.get("SEED", "1")))
    await bench.reset()
    cfg, regs = bench.cfg, bench.regs
    n_in = cfg.network.layers[0]
    net = _net(cfg)
    await bench.load_weights(net)
    rng = np.random.default_rng(2)
    good = rng.integers(0, 256, (4, n_in)).astype(np.uint8)
    frames = []
    bad = [bytes(5), bytes([200]) * (2 * n_in + 1), bytes(n_in - 1)]
    for k, img in enumerate(good):
        frames.append(bytes(img))
        if k < len(bad):
            frames.append(bad[k])
    for f in frames:
        bench.cover["frame"](len(f), n_in)
        await bench.pixels.send(AxiStreamFrame(f))

    thr = net.c.thr_eval
    assert await bench.read(regs.THRESHOLD) == thr
    assert await bench.write(regs.THRESHOLD, 7, length=2) == RESP_SLVERR
    assert await bench.read(regs.THRESHOLD) == thr
    assert await bench.write(regs.IRQ_ENABLE, 0xFFFF_FFFF) == RESP_OKAY
    assert await bench.read(regs.IRQ_ENABLE) == 0b111110

    fmt = bench.shell.result_format
    want = net.infer(good)
    for k in range(len(good)):
        frame = await bench.results.recv()
        counts, cls, valid = fmt.decode(bytes(frame.tdata))
        assert counts == [int(x) for x in want[k]], f"sample {k}"
        pred = int(strict_argmax(want[k]))
        assert (cls, valid) == ((pred, 1) if pred >= 0 else (bench.shell.core.no_class, 0))
    await bench.pixels.wait()
    status = await bench.read(regs.STATUS)
    bench.cover["irq"](int(dut.irq.value))
    assert status & Status.ERR_FRAME and dut.irq.value == 1
    assert await bench.write(regs.STATUS, Status.ERR_FRAME) == RESP_OKAY
    assert await bench.read(regs.STATUS) & Status.ERR_FRAME == 0
    bench.cover["irq"](int(dut.irq.value))
    assert dut.irq.value == 0


@cocotb.test()
async def test_weight_stream_round_trip(dut: HierarchyObject) -> None:
    """Weights over s_axis_weights (32-bit beats, tlast at the end): the readback over
    AXI-Lite equals them and no error is flagged."""
    bench = _Bench(dut, seed=2)
    await bench.reset()
    regs = bench.regs
    net = _net(bench.cfg)
    await bench.load_weights(net)
    for l, w in enumerate(net.weights):
        o, i = w.shape[0] - 1, w.shape[1] - 1
        got = await bench.read(bench.shell.core.weight_address(l, o, i))
        assert got == int(w[o, i]) & 0xFFFF_FFFF, f"layer {l}"
    assert await bench.read(regs.STATUS) & (Status.ERR_FRAME | Status.ERR_BUSY) == 0


@cocotb.test()
async def test_coverage(dut: HierarchyObject) -> None:
    """Last: write this run's cover points for the regression to merge and check."""
    coverage.save()
