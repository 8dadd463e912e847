"""cocotb testbench of rtl.accelerator.Accelerator; golden.network.GoldenNet is the scoreboard.

Per sample the per-class spike counts and the predicted class must equal
golden's. ``DESIRE_IMAGES`` sets how many Fashion-MNIST test images
:func:`test_fashion_mnist` runs (default 10); ``DESIRE_TRAIN_SAMPLES`` how many
Fashion-MNIST training samples :func:`test_training` trains on (default 3).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
from collections.abc import Iterator

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.handle import HierarchyObject
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiBus, AxiRam, AxiRamRead, AxiReadBus

from desire.config import Config
from golden.fixed import Constants, constants, signed_range
from golden.network import GoldenNet, strict_argmax
from golden.prng import XorShift32, dropout_draws
from rtl.accelerator import READ_LATENCY, Accelerator, Mode, Status
from rtl.axi_weight_reader import unpack_words, word_geometry
from rtl.cycle_model import training_cycle_model
from rtl.host_bus import threshold_range
from sim import coverage
from sim.drivers import (
    BusPlayer,
    MmioMaster,
    StreamPlayer,
    StreamSink,
    env_config,
    reset,
    stimulus_rng,
)
from sim.harness import CLOCK_NS
from sim.runner import ENV_COCOTB_CLOCK

#: Environment variable: number of Fashion-MNIST images of test_fashion_mnist.
ENV_IMAGES = "DESIRE_IMAGES"
#: Environment variable: number of training samples of test_training.
ENV_TRAIN_SAMPLES = "DESIRE_TRAIN_SAMPLES"
#: Environment variable: probability of a pause per cycle on every channel of the
#: external weight memory (``weights = external``; default :data:`AXI_PAUSE`);
#: ``DESIRE_AXI_PAUSE_CHANNELS`` (e.g. ``r_channel,ar_channel``) limits them to some.
ENV_AXI_PAUSE = "DESIRE_AXI_PAUSE"
#: Default pause probability per cycle and channel: a fifth of the cycles paused.
AXI_PAUSE = 0.2
#: Byte address of the weight table in the external memory (not 0: a design that
#: ignored WEIGHT_BASE would read the wrong bytes).
WEIGHT_BASE = 0x1000


def _pauses(rng: np.random.Generator, p: float) -> Iterator[bool]:
    """Pause pattern for a cocotbext-axi channel: each cycle paused with probability ``p``."""
    while True:
        yield bool(rng.random() < p)


class ExternalMemory:
    """The weight table in cocotbext-axi's AXI RAM model (read-only half for an
    inference build, the whole RAM when on-chip training writes back), at
    :data:`WEIGHT_BASE`, with random pauses on every channel."""

    def __init__(self, dut: HierarchyObject, cfg: Config, model: Accelerator) -> None:
        c, hw = constants(cfg), cfg.hardware
        self.cfg, self.model = cfg, model
        self.lanes, self.bits, self.bytes = hw.lanes, c.weight_bits, hw.axi_bytes
        _, self.stride = word_geometry(hw.lanes, c.weight_bits, hw.axi_bytes)
        words = len(model.table_words())
        size = 1 << (WEIGHT_BASE + words * self.stride).bit_length()
        if hw.training:
            self.ram = AxiRam(AxiBus.from_prefix(dut, "axi_"), dut.clk, dut.rst, size=size)
        else:
            self.ram = AxiRamRead(AxiReadBus.from_prefix(dut, "axi_"), dut.clk, dut.rst, size=size)
        # cocotbext-axi logs every burst at INFO: millions of lines on a real network
        for part in (getattr(self.ram, "read_if", self.ram), getattr(self.ram, "write_if", None)):
            if part is not None:
                part.log.setLevel(logging.WARNING)
        p = float(os.environ.get(ENV_AXI_PAUSE, str(AXI_PAUSE)))
        rng = stimulus_rng("axi pauses")
        channels = ["ar_channel", "r_channel"]
        if hw.training:
            channels = ["write_if.aw_channel", "write_if.w_channel", "write_if.b_channel"]
            channels += ["read_if.ar_channel", "read_if.r_channel"]
        only = os.environ.get("DESIRE_AXI_PAUSE_CHANNELS")  # e.g. "r_channel,ar_channel"
        if only:
            channels = [c for c in channels if c.split(".")[-1] in only.split(",")]
        for name in channels:
            obj = self.ram
            for part in name.split("."):
                obj = getattr(obj, part)
            obj.set_pause_generator(_pauses(rng, p))
        self.words = words

    def write_table(self, weights: list[np.ndarray]) -> None:
        self.ram.write(WEIGHT_BASE, self.model.weight_image(weights))

    def layer_weights(self, layer: int) -> np.ndarray:
        """Layer ``layer``'s (n_out, n_in) weights as the memory holds them now."""
        c = constants(self.cfg)
        image = self.ram.read(WEIGHT_BASE, self.words * self.stride)
        rows = unpack_words(image, self.lanes, self.bits, self.bytes)
        span = self.model.table_words(layer)
        n_in, n_out = c.layers[layer], c.layers[layer + 1]
        table = np.array(rows[span.start : span.stop]).reshape(n_in, -1)
        return table[:, :n_out].T


class AccelEnv:
    """DUT (in its sim.harness harness) plus drivers, speaking in networks and samples.

    Bulk traffic (a sample's pixels, weight loads and read-backs) goes through the
    harness's players, single register accesses through :class:`MmioMaster`: both
    drive the accelerator's own bus and stream ports.
    """

    def __init__(self, dut: HierarchyObject) -> None:
        self.dut = dut
        self.cfg: Config = env_config()
        if os.environ.get(ENV_COCOTB_CLOCK) == "1":  # the harness makes no clock
            Clock(dut.clk, CLOCK_NS, unit="ns").start()
        self.model = Accelerator(self.cfg)  # addresses and layouts only, never elaborated
        self.model._MustUse__silence = True  # type: ignore[attr-defined]
        self.pixels = StreamPlayer(dut, "pixels__", dut.clk)
        self.result = StreamSink(dut, "result__", dut.clk)
        self.bus = MmioMaster(dut, "bus__", dut.clk, READ_LATENCY)
        self.bulk = BusPlayer(dut, "bus__", dut.clk)
        self.tsteps = self.cfg.network.tsteps
        self.cover = coverage.points("accelerator")
        #: back-pressure on the result stream: cycles ``ready`` stays low after ``valid``
        self.stalls = stimulus_rng("accelerator.result ready")
        self.results = 0  # results taken so far (result_payload)
        self.memory: ExternalMemory | None = None
        if self.cfg.hardware.weights == "external":
            self.memory = ExternalMemory(dut, self.cfg, self.model)

    def addresses(self, layer: int) -> np.ndarray:
        """Bus address of every weight of ``layer``, as (n_out, n_in)."""
        return _weight_addresses(self.cfg.to_json(), layer)

    async def load(self, net: GoldenNet) -> None:
        """Weights over the bus, one write per cycle, input by input; or (``weights =
        external``) the table into the AXI RAM and its address into WEIGHT_BASE."""
        if self.memory is not None:
            self.memory.write_table(net.weights)
            await self.bus.write(self.model.regs.WEIGHT_BASE, WEIGHT_BASE)
            return
        for l, w in enumerate(net.weights):
            await self.bulk.write_many(self.addresses(l).T.ravel(), w.T.ravel())

    async def read_weights(self, layer: int) -> np.ndarray:
        """Layer ``layer``'s weights read back over the bus (pipelined, one read per cycle),
        or from the external memory."""
        if self.memory is not None:
            return self.memory.layer_weights(layer)
        addrs = self.addresses(layer)
        return (await self.bulk.read_many(addrs.ravel())).reshape(addrs.shape)

    async def set_thresholds(self, thresholds: list[int]) -> None:
        for l, thr in enumerate(thresholds):
            await self.bus.write(self.model.regs.THRESHOLD + l, thr)

    def decode(self, raw: int) -> tuple[list[int], int, int]:
        """(counts, cls, valid_class) from the flat result payload (StructLayout order)."""
        bits, n_cls = self.tsteps.bit_length(), self.cfg.network.layers[-1]
        counts = [(raw >> (bits * k)) & ((1 << bits) - 1) for k in range(n_cls)]
        raw >>= bits * n_cls
        cls_bits = n_cls.bit_length()
        return counts, raw & ((1 << cls_bits) - 1), (raw >> cls_bits) & 1

    async def result_payload(self) -> int:
        """The next result, taken at once or after a random stall of up to 7 cycles. A
        test's first result is taken at once and its second held, whatever the seed: each
        test restarts the same stall stream and some take only a few results, so a seed
        whose first draws are all stalls (or none) would leave a cover point unhit."""
        self.results += 1
        pick = {1: [0], 2: [1, 2, 7]}.get(self.results, [0, 0, 1, 2, 7])
        stall = int(self.stalls.choice(pick))
        self.cover["result"](stall)
        return await self.result.recv(stall)

    async def sample(self, image: np.ndarray) -> tuple[list[int], int, int]:
        await self.pixels.send(image)
        return self.decode(await self.result_payload())

    async def check(self, net: GoldenNet, images: np.ndarray) -> list[int]:
        """Run ``images``; assert counts and class equal golden's; return cycles per sample."""
        want = net.infer(images)
        cycles = []
        for k, image in enumerate(images):
            counts, cls, valid = await self.sample(image)
            pred = int(strict_argmax(want[k]))
            self.cover["argmax"](pred < 0)
            assert counts == want[k].tolist(), f"sample {k}: counts {counts} != {want[k].tolist()}"
            expect = (pred, 1) if pred >= 0 else (self.model.no_class, 0)
            assert (cls, valid) == expect, f"sample {k}: class {(cls, valid)} != {expect}"
            cycles.append(await self.bus.read(self.model.regs.CYCLES))
        return cycles


@functools.cache
def _weight_addresses(cfg_json: str, layer: int) -> np.ndarray:
    """``Accelerator.weight_address`` of every weight of ``layer``, as (n_out, n_in).

    Cached: the tests of one run load and read back the same layers, and the
    per-weight calls took a second per 25 000 weights.
    """
    cfg = Config.from_dict(json.loads(cfg_json))
    model = Accelerator(cfg)  # addresses only, never elaborated
    model._MustUse__silence = True  # type: ignore[attr-defined]
    n_in, n_out = cfg.network.layers[layer : layer + 2]
    return np.array(
        [[model.weight_address(layer, o, i) for i in range(n_in)] for o in range(n_out)]
    )


def _random_net(cfg: Config, rng: np.random.Generator) -> GoldenNet:
    """Kaiming weights scaled 1..4x (hidden and output layers spike more)."""
    net = GoldenNet.init_random(cfg, seed=int(rng.integers(1 << 30)))
    lo, hi = signed_range(net.c.weight_bits)
    net.weights = [np.clip(w * rng.uniform(1, 4), lo, hi).astype(np.int32) for w in net.weights]
    return net


@cocotb.test()
async def test_random(dut: HierarchyObject) -> None:
    """Random net, random thresholds (register), constrained-random images."""
    env = AccelEnv(dut)  # drives every input before reset ends
    await reset(dut)
    rng = stimulus_rng("accelerator.random")
    net = _random_net(env.cfg, rng)
    theta = float(rng.choice([1.0, 0.75, 0.5]))
    net = GoldenNet(env.cfg.replace(network={"mempot_thres": theta}), net.weights)
    await env.load(net)
    await env.set_thresholds([net.c.thr_eval] * net.c.n_linear)
    n_in = env.cfg.network.layers[0]
    images = rng.integers(0, 256, (3, n_in)).astype(np.uint8)
    images[1] = np.where(rng.random(n_in) < 0.5, 0, images[1])  # sparse
    # constrained: golden picks more random images until one has a strict maximum
    # (cover point accelerator.argmax; on a small random net half the images tie)
    for _ in range(50):
        if (strict_argmax(net.infer(images)) >= 0).any():
            break
        images = np.concatenate([images, rng.integers(0, 256, (1, n_in)).astype(np.uint8)])
    await env.check(net, images)


@cocotb.test()
async def test_all_zero_and_all_full(dut: HierarchyObject) -> None:
    """Black (no spikes anywhere: a tie, no class) and white (every pixel every step)."""
    env = AccelEnv(dut)  # drives every input before reset ends
    await reset(dut)
    net = _random_net(env.cfg, stimulus_rng("accelerator.corners"))
    await env.load(net)
    n_in = env.cfg.network.layers[0]
    images = np.stack([np.zeros(n_in, np.uint8), np.full(n_in, 255, np.uint8)])
    await env.check(net, images)


@cocotb.test()
async def test_misuse(dut: HierarchyObject) -> None:
    """Pixels while busy stall; weight/threshold writes while busy are ignored and flagged."""
    env = AccelEnv(dut)  # drives every input before reset ends
    await reset(dut)
    regs = env.model.regs
    rng = stimulus_rng("accelerator.misuse")
    net = _random_net(env.cfg, rng)
    await env.load(net)
    image = rng.integers(0, 256, env.cfg.network.layers[0]).astype(np.uint8)
    await env.pixels.send(image)
    # the sample runs: offer one more pixel for 20 cycles
    dut.pixels__payload.value = 7
    dut.pixels__valid.value = 1
    await ClockCycles(dut.clk, 20)
    dut.pixels__valid.value = 0
    assert await env.bus.read(regs.STALLS) >= 20
    await env.bus.write(env.model.weight_address(0, 0, 0), 1234)
    await env.bus.write(regs.THRESHOLD, 1)
    status = await env.bus.read(regs.STATUS)
    assert status & Status.BUSY and status & Status.ERR_BUSY, f"status {status:#x}"
    counts, _, _ = env.decode(await env.result_payload())
    assert counts == net.infer(image[None])[0].tolist()
    assert await env.bus.read(regs.THRESHOLD) == net.c.thr_eval
    await env.bus.write(regs.STATUS, Status.ERR_BUSY)
    assert not await env.bus.read(regs.STATUS) & Status.ERR_BUSY
    await env.bus.write(regs.THRESHOLD, -5)  # not > 0: refused
    assert await env.bus.read(regs.STATUS) & Status.ERR_WRITE
    if env.memory is None:  # external weights have no bus window: the write went nowhere
        assert await env.bus.read(env.model.weight_address(0, 0, 0)) == net.weights[0][0, 0]
    events = [await env.bus.read(regs.EVENTS + l) for l in range(net.c.n_linear)]
    rec = net.forward(image[None], record=True)
    # layer l > 0 sees layer l - 1 one step late: its last step's spikes are never consumed
    assert events == [int(rec.input_spikes.sum())] + [int(s[:-1].sum()) for s in rec.spikes[:-1]]


@cocotb.test()
async def test_register_edges(dut: HierarchyObject) -> None:
    """THRESHOLD and MODE written at each edge of their ranges: a value inside is taken,
    one outside is refused with ERR_WRITE and leaves the register as it was."""
    env = AccelEnv(dut)
    await reset(dut)
    regs, cfg = env.model.regs, env.cfg
    cover = coverage.points("accelerator")["register_edge"]
    lo, hi = threshold_range(cfg.formats.membrane_bits)
    mode_max = int(Mode.TRAINING if cfg.hardware.training else Mode.INFERENCE)
    edges = [("min", lo), ("max", hi), ("zero", 0), ("above max", hi + 1), ("negative", -1)]
    cases = [
        (regs.THRESHOLD + l, "THRESHOLD", edge, value)
        for l in range(len(cfg.network.layers) - 1)
        for edge, value in edges
    ]
    cases += [(regs.MODE, "MODE", "max", mode_max), (regs.MODE, "MODE", "above max", mode_max + 1)]
    for addr, name, edge, value in cases:
        before = await env.bus.read(addr)
        await env.bus.write(addr, value)
        taken = edge in ("min", "max")
        status = await env.bus.read(regs.STATUS)
        got = await env.bus.read(addr)
        assert got == (value if taken else before), f"{name} {edge} ({value}): reads {got}"
        assert bool(status & Status.ERR_WRITE) != taken, f"{name} {edge}: status {status:#x}"
        await env.bus.write(regs.STATUS, Status.ERR_WRITE)
        cover(name, edge)


@cocotb.test(skip=env_config().network.layers[0] != 28 * 28)
async def test_fashion_mnist(dut: HierarchyObject) -> None:
    """Fashion-MNIST test images on a quantised (Kaiming-initialised) net: counts equal golden."""
    from desire.datasets import load_dataset

    env = AccelEnv(dut)  # drives every input before reset ends
    await reset(dut)
    n = int(os.environ.get(ENV_IMAGES, "10"))
    images, _ = load_dataset("fashion-mnist", "test", limit=n)
    net = GoldenNet.init_random(env.cfg, seed=0)
    await env.load(net)
    start_ns = cocotb.utils.get_sim_time("ns")
    wall, cpu = time.monotonic(), time.process_time()
    cycles = await env.check(net, images)
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    sim_cycles = (cocotb.utils.get_sim_time("ns") - start_ns) / 10
    await RisingEdge(dut.clk)
    print(
        f"fashion-mnist: {n} images identical to golden; cycles/sample mean {np.mean(cycles):.0f} "
        f"(min {min(cycles)}, max {max(cycles)}); {n / wall:.2f} samples/s, "
        f"{sim_cycles / wall:.0f} cycles/s, {sim_cycles / cpu:.0f} cycles per CPU second"
    )


def _crop(images: np.ndarray, n_in: int) -> np.ndarray:
    """Fashion-MNIST images as ``n_in`` inputs: the first ``n_in`` pixels of the centred
    ``ceil(sqrt(n_in))``-square crop (the whole image for 784), so small nets see real data."""
    side = math.isqrt(n_in - 1) + 1
    if side > 28:
        raise ValueError(f"test_training needs at most 28 x 28 inputs, not {n_in}")
    lo = (28 - side) // 2
    crop = images.reshape(-1, 28, 28)[:, lo : lo + side, lo : lo + side]
    return crop.reshape(len(images), -1)[:, :n_in]


def _cover_dropout(c: Constants, probe: XorShift32) -> None:
    """Cover points of a training sample's input dropout draws: the input layer draws
    first, so ``probe`` (a copy of golden's stream before the sample) draws what it will."""
    p = c.drop_p[0]
    if p == 0:
        return
    cover = coverage.points("accelerator_dropout")["dropout_draw"]
    draws = dropout_draws(probe, c.layers[0], c.prob_bits).astype(np.int64)
    for side in np.unique(np.sign(draws - p)).tolist():
        cover(p + side, p)


@cocotb.test(skip=not env_config().hardware.training)
async def test_training(dut: HierarchyObject) -> None:
    """Online training with dropout on Fashion-MNIST training samples: after every sample the
    counts and cycle split, at the end every weight and both PRNG states equal golden's."""
    from desire.datasets import load_dataset

    env = AccelEnv(dut)  # drives every input before reset ends
    await reset(dut)
    regs, c = env.model.regs, constants(env.cfg)
    n = int(os.environ.get(ENV_TRAIN_SAMPLES, "3"))
    images, labels = load_dataset("fashion-mnist", "train", limit=n)
    images = _crop(images, c.layers[0])
    net = GoldenNet.init_random(
        env.cfg, seed=int(stimulus_rng("accelerator.training").integers(99))
    )
    start = [w.copy() for w in net.weights]
    await env.load(net)
    lr_int = c.lr_int(0) * 32  # large, so that weights change on every sample
    await env.bus.write(regs.MODE, Mode.TRAINING)
    await env.bus.write(regs.LR_INT, lr_int)
    await env.set_thresholds(list(c.thr_train))
    wall, cpu = time.monotonic(), time.process_time()
    sim_start = cocotb.utils.get_sim_time("ns")
    split = []
    for k, (image, label) in enumerate(zip(images, labels, strict=True)):
        await env.pixels.send([*image, int(label)])  # the label follows the pixels
        counts, _, _ = env.decode(await env.result_payload())
        _cover_dropout(c, XorShift32(net.dropout_rng.state))
        rec = net.train_step(image[None], int(label), lr_int, record=True)
        assert counts == rec.counts[-1].tolist(), f"sample {k}: counts {counts}"
        model = training_cycle_model(
            env.cfg, rec.forward.input_spikes[:, 0], [s[:, 0] for s in rec.forward.spikes]
        )
        got = [
            await env.bus.read(a) for a in (regs.CYCLES, regs.CYCLES_BACKWARD, regs.CYCLES_UPDATE)
        ]
        if env.memory is None:  # external memory: cycles depend on the memory's timing
            assert got == [model.total, model.backward, model.update], f"sample {k}: cycles {got}"
        split.append((model.forward, model.backward, model.update))
    wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    sim_cycles = (cocotb.utils.get_sim_time("ns") - sim_start) / 10
    states = [
        await env.bus.read(a) & 0xFFFF_FFFF for a in (regs.DROPOUT_STATE, regs.ROUNDING_STATE)
    ]
    assert states == [net.dropout_rng.state, net.rounding_rng.state]
    for l, w in enumerate(net.weights):
        got_w = await env.read_weights(l)
        changed = int((w != start[l]).sum())
        assert changed > 0, f"layer {l} never changed: the test would prove nothing"
        bad = np.argwhere(got_w != w)
        assert bad.size == 0, (
            f"layer {l}: {len(bad)} weights differ, first (out, in) {bad[:3].tolist()}"
        )
        print(f"training: layer {l}: all {w.size} weights identical to golden ({changed} changed)")
    fwd, bwd, upd = np.mean(split, axis=0)
    print(
        f"training: {n} samples identical to golden; cycles/sample forward {fwd:.0f}, backward "
        f"{bwd:.0f}, update {upd:.0f}; {n / wall:.2f} samples/s, {sim_cycles / wall:.0f} "
        f"cycles/s, {sim_cycles / cpu:.0f} cycles per CPU second"
    )


@cocotb.test()
async def test_coverage(dut: HierarchyObject) -> None:
    """Last: write this run's cover points for the regression to merge and check."""
    coverage.save()
