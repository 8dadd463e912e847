"""On-chip training with the weights in external memory (``weights = external``,
``training = true``), in the Amaranth simulator, against golden.network.GoldenNet.

One memory image serves the accelerator's reads and takes its writes: the read slave of
tests/test_rtl_accelerator_external.py (random latency, ``arready`` and ``rvalid`` gaps)
reads the same bytearray the write slave of tests/test_rtl_axi_weight_writer.py writes
(random ``awready`` / ``wready`` gaps and response delays). After 4 online samples the
counts, the PRNG states and every weight, unpacked from the image, equal golden's.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator, SimulatorContext

from desire.config import Config
from golden.fixed import constants
from golden.network import GoldenNet
from rtl import shared_pool
from rtl.accelerator import Accelerator, Mode, Status
from rtl.axi_weight_reader import unpack_words
from rtl.cycle_model import training_cycle_model
from rtl.shared_pool import TrainingReads, shared_core
from rtl.training_sequencer import TrainingSchedule, TrainingSequencer
from tests.test_rtl_accelerator import _read, _transfer, _write
from tests.test_rtl_accelerator_external import BASE, DEEP, SMALL, _slave
from tests.test_rtl_axi_weight_writer import WriteLog, write_slave
from tests.test_rtl_training_sequencer import _issued, _reference

TRAIN_SMALL = SMALL.replace(hardware={"training": True})
TRAIN_DEEP = DEEP.replace(hardware={"training": True})


def _net(cfg: Config) -> GoldenNet:
    net = GoldenNet.init_random(cfg, seed=3)
    net.weights = [np.clip(w * 3, -(2**15), 2**15 - 1).astype(np.int32) for w in net.weights]
    return net


def _weights(dut: Accelerator, image: bytes, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
    """The weights in an image :meth:`Accelerator.weight_image` laid out."""
    cfg, p = dut.config, dut.config.hardware.lanes
    words = unpack_words(image, p, constants(cfg).weight_bits, cfg.hardware.axi_bytes)
    core = shared_core(cfg)
    out = []
    for l, (n_out, n_in) in enumerate(shapes):
        w = np.zeros((n_out, n_in), np.int64)
        for o in range(n_out):
            for i in range(n_in):
                w[o, i] = words[core.word_address(l, i, o // p)][o % p]
        out.append(w)
    return out


def _train(
    cfg: Config,
    net: GoldenNet,
    images: np.ndarray,
    labels: np.ndarray,
    lr_int: int,
    *,
    latency: tuple[int, int],
    gaps: float,
    b_delay: tuple[int, int],
    seed: int,
    error_at: int | None = None,
) -> dict[str, object]:
    dut = Accelerator(cfg)
    memory = bytearray(dut.weight_image(net.weights))
    regs, c = dut.regs, net.c
    got: dict[str, object] = {"counts": [], "cycles": []}
    log = WriteLog()

    async def host(ctx: SimulatorContext) -> None:
        await _write(ctx, dut, regs.WEIGHT_BASE, BASE)
        await _write(ctx, dut, regs.MODE, Mode.TRAINING)
        await _write(ctx, dut, regs.LR_INT, lr_int)
        for l in range(c.n_linear):
            await _write(ctx, dut, regs.THRESHOLD + l, c.thr_train[l])
        for img, label in zip(images, labels, strict=True):
            res = await _transfer(ctx, dut, [*img, label])
            got["counts"].append([int(x) for x in res.counts])
            parts = (regs.CYCLES, regs.CYCLES_BACKWARD, regs.CYCLES_UPDATE)
            got["cycles"].append([await _read(ctx, dut, a) for a in parts])
            got.setdefault("responses", []).append((log.responses, len(log.bursts)))
        states = [await _read(ctx, dut, a) for a in (regs.DROPOUT_STATE, regs.ROUNDING_STATE)]
        got["states"] = [s & 0xFFFF_FFFF for s in states]
        got["status"] = await _read(ctx, dut, regs.STATUS)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    reads = _slave(dut, memory, latency=latency, gaps=gaps, seed=seed)  # type: ignore[arg-type]
    writes = write_slave(
        dut.axi,
        memory,
        BASE,
        gaps=gaps,
        b_delay=b_delay,
        seed=seed + 1,
        error_at=error_at,
        log=log,
    )
    sim.add_testbench(reads, background=True)
    sim.add_testbench(writes, background=True)
    sim.run()
    got["weights"] = _weights(dut, bytes(memory), [w.shape for w in net.weights])
    return got


def _check(
    cfg: Config, *, latency: tuple[int, int], gaps: float, b_delay: tuple[int, int], seed: int
) -> None:
    """Train 4 samples on the RTL (weights outside) and on golden; counts, weights and PRNG
    states equal, and no sample faster than with the weights on chip."""
    net = _net(cfg)
    lr_int = net.c.lr_int(0) * 256  # large enough that weights change every sample
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (4, cfg.network.layers[0])).astype(np.uint8)
    labels = rng.integers(0, cfg.network.layers[-1], 4)
    start = [w.copy() for w in net.weights]
    got = _train(
        cfg, net, images, labels, lr_int, latency=latency, gaps=gaps, b_delay=b_delay, seed=seed
    )
    on_chip = cfg.replace(hardware={"weights": "on-chip"})
    for k, (img, label) in enumerate(zip(images, labels, strict=True)):
        rec = net.train_step(img[None], int(label), lr_int, record=True)
        assert got["counts"][k] == rec.counts[-1].tolist(), f"sample {k}"
        spikes = [s[:, 0] for s in rec.forward.spikes]
        model = training_cycle_model(on_chip, rec.forward.input_spikes[:, 0], spikes)
        total, backward, update = got["cycles"][k]
        assert total >= model.total and backward >= model.backward, f"sample {k}"
        assert update >= model.update, f"sample {k}"
        responses, bursts = got["responses"][k]
        assert responses == bursts, f"sample {k}: the result came before every write landed"
    for l, w in enumerate(net.weights):
        assert (w != start[l]).any(), f"layer {l} never changed: the test would prove nothing"
        np.testing.assert_array_equal(got["weights"][l], w, err_msg=f"layer {l}")
    assert got["states"] == [net.dropout_rng.state, net.rounding_rng.state]
    assert got["status"] == 0


@pytest.mark.parametrize(
    ("cfg", "axi_bytes", "latency", "gaps", "b_delay"),
    [
        (TRAIN_SMALL, 8, (1, 1), 0.0, (0, 0)),
        (TRAIN_SMALL, 4, (3, 14), 0.3, (0, 12)),
        (TRAIN_DEEP, 2, (1, 20), 0.4, (2, 30)),
        (TRAIN_DEEP, 16, (2, 2), 0.1, (1, 3)),
    ],
    ids=["small-8B", "small-4B-random", "deep-2B-random", "deep-16B"],
)
def test_sim_training_matches_golden(
    cfg: Config, axi_bytes: int, latency: tuple, gaps: float, b_delay: tuple
) -> None:
    """Online training with dropout, the weights in external memory: every read and every
    write-back through AXI, bit-exact with golden after 4 samples."""
    cfg = cfg.replace(hardware={"axi_bytes": axi_bytes}, network={"dropout": (0.1, 0.4)})
    if len(cfg.network.layers) == 4:
        cfg = cfg.replace(formats={"rounding": "nearest"})
    _check(cfg, latency=latency, gaps=gaps, b_delay=b_delay, seed=axi_bytes)


def test_sim_write_error_sets_err_memory() -> None:
    """An SLVERR answer to a write-back sets STATUS.ERR_MEMORY; the sample still ends."""
    cfg = TRAIN_SMALL
    net = _net(cfg)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (1, cfg.network.layers[0])).astype(np.uint8)
    stride = len(Accelerator(cfg).weight_image(net.weights)) // shared_core(cfg).depth
    # the row of the brightest pixel spikes, so its words are written back
    error_at = shared_core(cfg).word_address(0, int(images[0].argmax()), 0) * stride
    got = _train(
        cfg,
        net,
        images,
        np.array([2]),
        net.c.lr_int(0) * 256,
        latency=(1, 3),
        gaps=0.0,
        b_delay=(0, 2),
        seed=1,
        error_at=error_at,
    )
    assert got["status"] == Status.ERR_MEMORY, got["status"]


def test_sim_training_reads_order() -> None:
    """TrainingReads posts the backward rows (weight layers L-1 .. 1, every row in memory
    order) and then the row of every input a layer integrated a spike of (layer 0: steps
    0 .. T-1 of the encoder; layer l > 0: steps 0 .. T-2 of neuron layer l, not its last),
    layer 0 first, inputs ascending; a second sample starts from no active input."""
    layers, lanes, tsteps, stride, base = (9, 5, 7, 3), 2, 4, 6, 0x140
    core = shared_core(TRAIN_DEEP)
    bases = [core.word_address(l, 0, 0) for l in range(3)]
    blocks = [-(-n // lanes) for n in layers[1:]]
    dut = TrainingReads(layers, lanes, tsteps, stride=stride, word_base=bases)
    rng = random.Random(5)
    got: list[list[tuple[int, int]]] = []
    want: list[list[tuple[int, int]]] = []

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(dut.base, base)
        for _sample in range(2):
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            active = [[False] * n for n in layers[:-1]]
            for phase in range(tsteps + 1):
                ctx.set(dut.phase, phase)
                for j, n in enumerate(layers[:-1]):
                    if (j == 0 and phase == tsteps) or (j > 0 and phase == 0):
                        continue
                    for w in range(-(-n // lanes)):
                        span = range(w * lanes, (w + 1) * lanes)
                        bits = [i < n and rng.random() < 0.15 for i in span]
                        if j == 1 and w == 0:  # neuron 0 of layer 1 spikes in its last step
                            bits[0] = phase == tsteps  # only, which layer 2 never sees
                        ctx.set(dut.spk_valid, 1 << j)
                        ctx.set(dut.spk_word[j], w)
                        ctx.set(dut.spk_bits[j], sum(int(b) << k for k, b in enumerate(bits)))
                        if j == 0 or phase < tsteps:
                            for i, b in zip(span, bits, strict=True):
                                if i < n:
                                    active[j][i] = active[j][i] or b
                        await ctx.tick()
                ctx.set(dut.spk_valid, 0)
            rows = [(l, g) for l in range(len(blocks) - 1, 0, -1) for g in range(layers[l])]
            rows += [(l, i) for l in range(len(blocks)) for i in range(layers[l]) if active[l][i]]
            want.append([(base + (bases[l] + i * blocks[l]) * stride, blocks[l]) for l, i in rows])
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            seen: list[tuple[int, int]] = []
            for _ in range(400):
                ready = rng.random() < 0.6
                ctx.set(dut.requests.ready, ready)
                if ready and ctx.get(dut.requests.valid):
                    payload = ctx.get(dut.requests.payload)
                    seen.append((int(payload.addr), int(payload.words)))
                await ctx.tick()
            got.append(seen)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert got == want
    with pytest.raises(ValueError, match="word bases"):
        TrainingReads(layers, 2, 8, stride=4, word_base=bases[:-1])


def test_sim_training_waits_on_a_full_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer of one credit behind a slow memory: the sequencer waits on ``room`` before
    every update word; nothing is lost or reordered."""
    monkeypatch.setattr(shared_pool, "write_buffer_words", lambda blocks, latency: 1)
    cfg = TRAIN_SMALL.replace(hardware={"axi_bytes": 8})
    _check(cfg, latency=(1, 4), gaps=0.5, b_delay=(5, 40), seed=7)


def test_sim_sequencer_stalls_issue_nothing() -> None:
    """The external sequencer issues what the on-chip one does, in the same order, only in
    cycles where the word is there (and, for an update word, the writer has room); a
    stalled cycle issues nothing, and ``done`` waits for the writer to be idle."""
    layers, lanes = (5, 7, 6, 3), 2
    rng = random.Random(11)
    schedule = TrainingSchedule(out_drain=2, hid_drain=3, update_drain=4, row_wait=1)
    silent = [[rng.random() < 0.4 for _ in range(n)] for n in layers[:-1]]
    dut = TrainingSequencer(layers, lanes, schedule, external=True)
    want = [x for x, *_ in _reference(layers, lanes, schedule, silent) if x != ("idle",)]
    got: list[tuple] = []

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(5000):
            valid, room, idle = rng.random() < 0.5, rng.random() < 0.6, rng.random() < 0.2
            ctx.set(dut.w_valid, valid)
            ctx.set(dut.wb_room, room)
            ctx.set(dut.wb_idle, idle)
            i = ctx.get(dut.issue.row_index)
            bits = [i < len(rows) and rows[i] for rows in silent]
            ctx.set(dut.issue.row_silent, sum(int(b) << l for l, b in enumerate(bits)))
            issued = _issued(ctx, dut)
            if issued[0] == "mac":
                assert valid, "a MAC without its word"
            if issued[0] == "upd":
                assert valid and room, "an update word without its word or room"
            if issued != ("idle",):
                got.append(issued)
            if ctx.get(dut.done):
                assert idle, "done before the writer is idle"
                return
            await ctx.tick()
        raise AssertionError("never done")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert got == want
