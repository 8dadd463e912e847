"""rtl.accelerator.Accelerator in the Amaranth simulator against golden.network.GoldenNet."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import numpy as np
import pytest
from amaranth.sim import Simulator, SimulatorContext

from desire.config import Config, load_config
from golden.network import GoldenNet, StepRecord, strict_argmax
from rtl.accelerator import READ_LATENCY, Accelerator, Mode, Status
from rtl.cycle_model import cycle_model, training_cycle_model

SMALL = load_config().replace(network={"layers": (20, 12, 6), "tsteps": 6}, hardware={"lanes": 4})
DEEP = load_config().replace(network={"layers": (9, 5, 7, 3), "tsteps": 8}, hardware={"lanes": 2})
#: The output layer has one block: update rows of one word, loaded back to back.
ONE_BLOCK = SMALL.replace(network={"layers": (12, 6, 3)})
#: hardware.architecture, each of which every end-to-end test below runs on.
ARCHS = ["per-layer", "shared"]
#: ... and the inference tests also on the iCE40 UltraPlus's layout (``compact``: the shared
#: pool with single-ported (SPRAM) weight banks and the spike vectors in block RAM), and on
#: each of those two options alone.
INFERENCE_ARCHS = [*ARCHS, "compact", "per-layer-single-port", "shared-vector-memory"]
_INFERENCE_ONLY = {
    "compact": {"architecture": "shared", "weight_ports": 1, "spike_vectors": "memory"},
    "per-layer-single-port": {"architecture": "per-layer", "weight_ports": 1},
    "shared-vector-memory": {"architecture": "shared", "spike_vectors": "memory"},
}


def _arch(cfg: Config, arch: str) -> Config:
    if arch in _INFERENCE_ONLY:
        return cfg.replace(hardware={"training": False, **_INFERENCE_ONLY[arch]})
    return cfg.replace(hardware={"architecture": arch})


async def _write(ctx: SimulatorContext, dut: Accelerator, addr: int, value: int) -> None:
    ctx.set(dut.bus.addr, addr)
    ctx.set(dut.bus.wdata, value & 0xFFFF_FFFF)
    ctx.set(dut.bus.we, 1)
    await ctx.tick()
    ctx.set(dut.bus.we, 0)


async def _read(ctx: SimulatorContext, dut: Accelerator, addr: int) -> int:
    """Signed 32-bit value at ``addr`` (rdata is valid READ_LATENCY cycles after the address)."""
    ctx.set(dut.bus.addr, addr)
    await ctx.tick().repeat(READ_LATENCY)
    value = ctx.get(dut.bus.rdata)
    return value - (1 << 32) if value >> 31 else value


Sample = tuple[list[int], int, int, int]  # counts, cls, valid_class, CYCLES


async def _transfer(ctx: SimulatorContext, dut: Accelerator, values: Iterable[int]) -> Any:
    """Stream ``values`` into the pixel port, then take one result payload."""
    ctx.set(dut.pixels.valid, 1)
    for x in values:
        ctx.set(dut.pixels.payload, int(x))
        await ctx.tick().until(dut.pixels.ready)
    ctx.set(dut.pixels.valid, 0)
    ctx.set(dut.result.ready, 1)
    await ctx.tick().until(dut.result.valid)
    ctx.set(dut.result.ready, 0)
    return ctx.get(dut.result.payload)


async def _sample(ctx: SimulatorContext, dut: Accelerator, pixels: np.ndarray) -> Sample:
    """Send one image, wait for its result: (counts, cls, valid_class, cycles)."""
    res = await _transfer(ctx, dut, pixels)
    counts = [int(x) for x in res.counts]
    cycles = await _read(ctx, dut, dut.regs.CYCLES)
    return counts, int(res.cls), int(res.valid_class), cycles


def _run(dut: Accelerator, testbench: Callable[[SimulatorContext], Awaitable[None]]) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def _images(cfg: Config, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, cfg.network.layers[0]))
    x[0] = 0  # all-zero image: every class 0 spikes, a tie
    if n > 1:
        x[1] = 255
    return x.astype(np.uint8)


def _check_against_golden(net: GoldenNet, dut: Accelerator, images: np.ndarray) -> list[Sample]:
    want = net.infer(images)
    got: list[Sample] = []

    async def testbench(ctx: SimulatorContext) -> None:
        for img in images:
            got.append(await _sample(ctx, dut, img))

    _run(dut, testbench)
    for k, (counts, cls, valid, _) in enumerate(got):
        np.testing.assert_array_equal(counts, want[k], err_msg=f"sample {k}")
        pred = int(strict_argmax(want[k]))
        assert (cls, valid) == ((pred, 1) if pred >= 0 else (dut.no_class, 0)), f"sample {k}"
    return got


@pytest.mark.parametrize("arch", INFERENCE_ARCHS)
@pytest.mark.parametrize("cfg", [SMALL, DEEP], ids=["small", "deep"])
def test_sim_counts_match_golden(cfg: Config, arch: str) -> None:
    cfg = _arch(cfg, arch)
    net = GoldenNet.init_random(cfg, seed=3)
    net.weights = [
        np.clip(w * 3, -(2**15), 2**15 - 1) for w in net.weights
    ]  # stronger drive: hidden and output layers spike
    dut = Accelerator(cfg, net.weights)
    images = _images(cfg, 4, seed=2)
    got = _check_against_golden(net, dut, images)
    assert any(sum(g[0]) > 0 for g in got), "the test needs output spikes to mean anything"
    # the cycle model used for the large presets is exact on the RTL
    rec = net.forward(images, record=True)
    for k, g in enumerate(got):
        spikes = [s[:, k] for s in rec.spikes]
        assert cycle_model(cfg, rec.input_spikes[:, k], spikes).cycles == g[3], f"sample {k}"


@pytest.mark.parametrize("arch", INFERENCE_ARCHS)
def test_sim_bus_weights_thresholds_and_misuse(arch: str) -> None:
    cfg = _arch(SMALL, arch)
    net = GoldenNet.init_random(cfg, seed=9)
    net.weights = [w * 3 for w in net.weights]
    dut = Accelerator(cfg)  # weights come over the bus
    regs = dut.regs
    images = _images(cfg, 2, seed=4)
    net_thr = 3000
    results: dict[str, object] = {}

    async def testbench(ctx: SimulatorContext) -> None:
        for l, w in enumerate(net.weights):
            for o in range(w.shape[0]):
                for i in range(w.shape[1]):
                    await _write(ctx, dut, dut.weight_address(l, o, i), int(w[o, i]))
        results["readback"] = await _read(ctx, dut, dut.weight_address(1, 5, 7))
        for l in range(len(net.weights)):
            await _write(ctx, dut, regs.THRESHOLD + l, net_thr)
        await _write(ctx, dut, regs.THRESHOLD, 0)  # invalid: ignored, flagged
        results["status_bad"] = await _read(ctx, dut, regs.STATUS)
        await _write(ctx, dut, regs.STATUS, Status.ERR_WRITE)
        results["status_clear"] = await _read(ctx, dut, regs.STATUS)
        results["thr"] = await _read(ctx, dut, regs.THRESHOLD)
        # start a sample, then misuse the interface while it runs
        ctx.set(dut.pixels.valid, 1)
        for x in images[0]:
            ctx.set(dut.pixels.payload, int(x))
            await ctx.tick().until(dut.pixels.ready)
        ctx.set(dut.pixels.payload, 17)  # an extra pixel: must stall, not be taken
        await ctx.tick()
        results["ready_busy"] = ctx.get(dut.pixels.ready)
        await _write(ctx, dut, dut.weight_address(0, 0, 0), 1234)  # ignored while busy
        await _write(ctx, dut, regs.THRESHOLD, 100)  # ignored while busy
        results["status_busy"] = await _read(ctx, dut, regs.STATUS)
        ctx.set(dut.pixels.valid, 0)
        ctx.set(dut.result.ready, 1)
        await ctx.tick().until(dut.result.valid)
        ctx.set(dut.result.ready, 0)
        results["first"] = [int(x) for x in ctx.get(dut.result.payload).counts]
        results["stalls"] = await _read(ctx, dut, regs.STALLS)
        results["events"] = [await _read(ctx, dut, regs.EVENTS + l) for l in range(2)]
        results["second"] = (await _sample(ctx, dut, images[1]))[0]

    _run(dut, testbench)
    assert results["readback"] == net.weights[1][5, 7]
    assert results["status_bad"] & Status.ERR_WRITE
    assert not results["status_clear"] & Status.ERR_WRITE
    assert results["thr"] == net_thr
    assert results["ready_busy"] == 0
    assert results["status_busy"] & (Status.ERR_BUSY | Status.BUSY) == Status.ERR_BUSY | Status.BUSY
    assert results["stalls"] > 0
    # the run used the bus-written weights and thresholds, not the ones written while busy
    ref = GoldenNet(cfg.replace(network={"mempot_thres": net_thr / 2**12}), net.weights)
    assert ref.c.thr_eval == net_thr
    want = ref.forward(images, record=True)
    np.testing.assert_array_equal(results["first"], want.counts[-1][0])
    np.testing.assert_array_equal(results["second"], want.counts[-1][1])
    # layer 1 sees layer 0 one step late: layer 0's last step is never consumed
    assert results["events"] == [
        int(want.input_spikes[:, 0].sum()),
        int(want.spikes[0][:-1, 0].sum()),
    ]


def test_wrong_arguments() -> None:
    with pytest.raises(TypeError, match=r"cfg must be a desire\.config\.Config"):
        Accelerator({"layers": (4, 2)})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected 2 weight layers, got 1"):
        Accelerator(SMALL, [np.zeros((12, 20), np.int32)])
    with pytest.raises(ValueError, match="out must be >= 0 and <= 5"):
        Accelerator(SMALL).weight_address(1, 6, 0)


def _train_on_rtl(
    cfg: Config, net: GoldenNet, images: np.ndarray, labels: np.ndarray, lr_int: int
) -> dict[str, object]:
    """Train the RTL on (images, labels) in MODE = TRAINING; returns results, registers, weights."""
    dut = Accelerator(cfg, net.weights)
    regs, c = dut.regs, net.c
    got: dict[str, object] = {"counts": [], "cycles": []}

    async def testbench(ctx: SimulatorContext) -> None:
        await _write(ctx, dut, regs.MODE, Mode.TRAINING)
        await _write(ctx, dut, regs.LR_INT, lr_int)
        for l in range(c.n_linear):
            await _write(ctx, dut, regs.THRESHOLD + l, c.thr_train[l])
        got["mode"] = await _read(ctx, dut, regs.MODE)
        got["lr"] = await _read(ctx, dut, regs.LR_INT) & 0xFFFF_FFFF
        for img, label in zip(images, labels, strict=True):
            res = await _transfer(ctx, dut, [*img, label])  # the label follows the pixels
            got["counts"].append([int(x) for x in res.counts])
            parts = (regs.CYCLES, regs.CYCLES_BACKWARD, regs.CYCLES_UPDATE)
            got["cycles"].append([await _read(ctx, dut, a) for a in parts])
        states = [await _read(ctx, dut, a) for a in (regs.DROPOUT_STATE, regs.ROUNDING_STATE)]
        got["states"] = [s & 0xFFFF_FFFF for s in states]
        got["weights"] = [
            np.array(
                [
                    [await _read(ctx, dut, dut.weight_address(l, o, i)) for i in range(w.shape[1])]
                    for o in range(w.shape[0])
                ]
            )
            for l, w in enumerate(net.weights)
        ]

    _run(dut, testbench)
    return got


@pytest.mark.parametrize(
    ("cfg", "rounding", "arch"),
    [
        (SMALL, "stochastic", "per-layer"),
        (DEEP, "stochastic", "per-layer"),
        (DEEP, "nearest", "per-layer"),
        (ONE_BLOCK, "stochastic", "per-layer"),
        (SMALL, "stochastic", "shared"),
        (DEEP, "nearest", "shared"),
        (ONE_BLOCK, "stochastic", "shared"),
    ],
    ids=[
        "small",
        "deep",
        "deep-nearest",
        "one-block",
        "shared-small",
        "shared-deep-nearest",
        "shared-one-block",
    ],
)
def test_sim_training_matches_golden(cfg: Config, rounding: str, arch: str) -> None:
    """Online training with dropout: counts, weights, PRNG states and cycles equal golden's
    (the shared pool: the training passes read and write every layer in one memory)."""
    _check_training(_arch(cfg, arch).replace(formats={"rounding": rounding}))


@pytest.mark.parametrize("arch", ARCHS)
def test_sim_training_dropped_neuron_has_no_desire(arch: str) -> None:
    """A dropped hidden neuron gets desire 0 whatever its ``S``. It matters only below
    another hidden layer (``E * q`` of a dropped neuron with ``q = +1`` is ``R``, its count
    being 0) and when such a neuron's ``|S|`` reaches the threshold with ``S > 0``; half
    the hidden neurons of DEEP dropped make that happen in these 4 samples."""
    records = _check_training(_arch(DEEP, arch).replace(network={"dropout": (0.0, 0.5)}))
    upper = 2  # neuron layer 2, the upper hidden layer (desire lists start at layer 1)
    assert any(
        (~rec.keep[upper] & rec.active[upper - 1] & (rec.sign[upper - 1] > 0)).any()
        for rec in records
    ), "the case needs a dropped neuron with positive desire"


def _check_training(cfg: Config) -> list[StepRecord]:
    """Train 4 samples on the RTL and on golden; counts, cycles, weights and PRNG states
    must be equal. Returns golden's records."""
    net = GoldenNet.init_random(cfg, seed=3)
    net.weights = [np.clip(w * 3, -(2**15), 2**15 - 1).astype(np.int32) for w in net.weights]
    lr_int = net.c.lr_int(0) * 256  # large enough that weights change every sample
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (4, cfg.network.layers[0])).astype(np.uint8)
    labels = rng.integers(0, cfg.network.layers[-1], 4)
    start = [w.copy() for w in net.weights]
    got = _train_on_rtl(cfg, net, images, labels, lr_int)
    assert got["mode"] == Mode.TRAINING and got["lr"] == lr_int
    records = []
    for k, (img, label) in enumerate(zip(images, labels, strict=True)):
        rec = net.train_step(img[None], int(label), lr_int, record=True)
        records.append(rec)
        assert got["counts"][k] == rec.counts[-1].tolist(), f"sample {k}"
        spikes = [s[:, 0] for s in rec.forward.spikes]
        model = training_cycle_model(cfg, rec.forward.input_spikes[:, 0], spikes)
        assert got["cycles"][k] == [model.total, model.backward, model.update], f"sample {k}"
    for l, w in enumerate(net.weights):
        assert (w != start[l]).any(), f"layer {l} never changed: the test would prove nothing"
        np.testing.assert_array_equal(got["weights"][l], w, err_msg=f"layer {l}")
    assert got["states"] == [net.dropout_rng.state, net.rounding_rng.state]
    return records


def test_sim_inference_only_build() -> None:
    """hardware.training = false: no learning units, same counts and cycles, MODE = 1 refused."""
    cfg = SMALL.replace(hardware={"training": False})
    net = GoldenNet.init_random(cfg, seed=3)
    net.weights = [np.clip(w * 3, -(2**15), 2**15 - 1) for w in net.weights]
    dut = Accelerator(cfg, net.weights)
    assert not dut.training and Accelerator(SMALL).training
    images = _images(cfg, 3, seed=5)
    got = _check_against_golden(net, dut, images)
    rec = net.forward(images, record=True)
    for k, g in enumerate(got):
        spikes = [s[:, k] for s in rec.spikes]
        assert cycle_model(cfg, rec.input_spikes[:, k], spikes).cycles == g[3], f"sample {k}"
    dut = Accelerator(cfg, net.weights)
    regs = dut.regs
    seen: dict[str, int] = {}

    async def testbench(ctx: SimulatorContext) -> None:
        await _write(ctx, dut, regs.MODE, Mode.TRAINING)
        seen["status"] = await _read(ctx, dut, regs.STATUS)
        seen["mode"] = await _read(ctx, dut, regs.MODE)
        seen["dropout"] = await _read(ctx, dut, regs.DROPOUT_STATE)

    _run(dut, testbench)
    assert seen == {"status": Status.ERR_WRITE, "mode": Mode.INFERENCE, "dropout": 0}
