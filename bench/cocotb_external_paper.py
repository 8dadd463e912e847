"""cocotb module of bench/external_paper.py: the external-memory top against golden/.

Not a regression test (sim/test_accelerator.py is): a benchmark that records, per
sample, the RTL's spike counts next to golden's and the cycle registers, and keeps
going after a mismatch so that a long run reports where it first differed. The DUT,
its drivers and the external memory (cocotbext-axi's ``AxiRam`` at ``WEIGHT_BASE``,
random pauses on every channel, ``DESIRE_AXI_PAUSE``) are sim.test_accelerator's
:class:`AccelEnv`.

Environment: ``DESIRE_IMAGES`` (Fashion-MNIST test images of :func:`inference`),
``DESIRE_TRAIN_SAMPLES`` (consecutive training samples of :func:`training`),
``DESIRE_RESULTS`` (folder: each test writes ``<test>.json`` there after every sample,
so a run stopped early still leaves its figures), ``DESIRE_TIME_LIMIT`` (wall seconds of
one test: past them it starts no new sample, and training still compares the weights of
the samples done; past twice them it ends the test in the middle of a sample, which then
leaves only its progress records), ``DESIRE_PROGRESS`` (simulated cycles between progress records:
simulated cycles against wall time while a sample runs, for a simulator too slow to
finish one).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
from cocotb.handle import HierarchyObject
from cocotb.triggers import Timer

from desire.atomic import atomic_write_text
from desire.datasets import load_dataset
from golden.fixed import constants
from golden.network import GoldenNet
from rtl.accelerator import Mode
from sim.drivers import reset
from sim.harness import CLOCK_NS
from sim.test_accelerator import ENV_IMAGES, ENV_TRAIN_SAMPLES, AccelEnv

#: Environment variable: folder of the JSON results of the tests.
ENV_RESULTS = "DESIRE_RESULTS"
#: Environment variable: wall seconds after which a test starts no new sample.
ENV_TIME_LIMIT = "DESIRE_TIME_LIMIT"
#: Environment variable: simulated cycles between progress records (default 50,000).
ENV_PROGRESS = "DESIRE_PROGRESS"
#: Seed of the Kaiming-initialised quantised net (GoldenNet.init_random), as in
#: bench/arch_study.py and bench/external_memory.py.
NET_SEED = 0


class _Recorder:
    """The JSON of one test, rewritten after every sample; wall, CPU and simulated time."""

    def __init__(self, name: str) -> None:
        folder = os.environ.get(ENV_RESULTS)
        self.path = Path(folder) / f"{name}.json" if folder else None
        self.data: dict[str, Any] = {"samples": [], "progress": [], "done": False}
        self.wall, self.cpu = time.monotonic(), time.process_time()
        self.sim_ns = cocotb.utils.get_sim_time("ns")
        self.limit = float(os.environ.get(ENV_TIME_LIMIT, "inf"))
        self.every = int(os.environ.get(ENV_PROGRESS, "50000"))
        cocotb.start_soon(self._progress())

    def out_of_time(self) -> bool:
        """Whether the wall-time limit has passed (then the test starts no new sample)."""
        over = time.monotonic() - self.wall > self.limit
        if over:
            self.data["stopped_early"] = f"wall-time limit of {self.limit:g} s"
        return over

    async def _progress(self) -> None:
        """(simulated cycles, wall s) every ``every`` cycles: one wake-up, nothing per cycle."""
        while True:
            await Timer(self.every * CLOCK_NS, "ns")
            sim_cycles = (cocotb.utils.get_sim_time("ns") - self.sim_ns) / CLOCK_NS
            wall = round(time.monotonic() - self.wall, 1)
            self.data["progress"].append([int(sim_cycles), wall])
            if wall > 2 * self.limit:
                self.data["stopped_early"] = f"in a sample, at twice the limit of {self.limit:g} s"
                self.save(done=True)
                cocotb.pass_test(self.data["stopped_early"])
            self.save()

    def save(self, **extra: Any) -> None:
        sim_cycles = (cocotb.utils.get_sim_time("ns") - self.sim_ns) / CLOCK_NS
        wall = time.monotonic() - self.wall
        cpu = time.process_time() - self.cpu
        self.data |= extra | {
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "sim_cycles": int(sim_cycles),
            "sim_cycles_per_s": round(sim_cycles / wall, 1) if wall else None,
        }
        if self.path is not None:
            atomic_write_text(self.path, json.dumps(self.data, indent=1) + "\n")


@cocotb.test()
async def inference(dut: HierarchyObject) -> None:
    """The first ``DESIRE_IMAGES`` Fashion-MNIST test images: counts and class against golden,
    ``CYCLES`` of each."""
    env = AccelEnv(dut)  # drives every input before reset ends
    await reset(dut)
    n = int(os.environ.get(ENV_IMAGES, "20"))
    images, _ = load_dataset("fashion-mnist", "test", limit=n)
    net = GoldenNet.init_random(env.cfg, seed=NET_SEED)
    want = net.infer(images)
    load = time.monotonic()
    await env.load(net)
    rec = _Recorder("inference")
    rec.data |= {"net_seed": NET_SEED, "load_s": round(time.monotonic() - load, 1)}
    first = None
    for k, image in enumerate(images):
        if rec.out_of_time():
            break
        counts, cls, valid = await env.sample(image)
        cycles = await env.bus.read(env.model.regs.CYCLES)
        golden = [int(v) for v in want[k]]
        same = counts == golden
        if not same and first is None:
            first = {"sample": k, "rtl": counts, "golden": golden}
        row = {"counts": counts, "golden": golden, "identical": same, "cycles": cycles}
        rec.data["samples"].append(row | {"class": cls if valid else None})
        rec.save(first_mismatch=first)
        print(f"inference {k}: cycles {cycles}, counts {'identical' if same else 'DIFFER'}")
    rec.save(first_mismatch=first, done=True)
    assert first is None, f"first mismatch: {first}"


@cocotb.test()
async def training(dut: HierarchyObject) -> None:
    """``DESIRE_TRAIN_SAMPLES`` consecutive on-chip training samples (the paper's learning
    rate, dropout on): counts and the cycle registers of each, then every weight (read back
    from the AXI RAM) and both PRNG states against golden."""
    env = AccelEnv(dut)  # drives every input before reset ends
    await reset(dut)
    regs, c = env.model.regs, constants(env.cfg)
    n = int(os.environ.get(ENV_TRAIN_SAMPLES, "5"))
    images, labels = load_dataset("fashion-mnist", "train", limit=n)
    net = GoldenNet.init_random(env.cfg, seed=NET_SEED)
    start = [w.copy() for w in net.weights]
    await env.load(net)
    lr_int = c.lr_int(0)
    await env.bus.write(regs.MODE, Mode.TRAINING)
    await env.bus.write(regs.LR_INT, lr_int)
    await env.set_thresholds(list(c.thr_train))
    rec = _Recorder("training")
    rec.data |= {"net_seed": NET_SEED, "lr_int": lr_int}
    first = None
    for k, (image, label) in enumerate(zip(images, labels, strict=True)):
        if rec.out_of_time():
            break
        await env.pixels.send([*image, int(label)])  # the label follows the pixels
        counts, _, _ = env.decode(await env.result_payload())
        golden = [int(v) for v in net.train_step(image[None], int(label), lr_int).counts[-1]]
        same = counts == golden
        if not same and first is None:
            first = {"sample": k, "rtl": counts, "golden": golden}
        got = [
            await env.bus.read(a) for a in (regs.CYCLES, regs.CYCLES_BACKWARD, regs.CYCLES_UPDATE)
        ]
        rec.data["samples"].append(
            {
                "label": int(label),
                "counts": counts,
                "golden": golden,
                "identical": same,
                "cycles": got[0],
                "cycles_backward": got[1],
                "cycles_update": got[2],
            }
        )
        rec.save(first_mismatch=first)
        print(f"training {k}: cycles {got}, counts {'identical' if same else 'DIFFER'}")
    states = [
        await env.bus.read(a) & 0xFFFF_FFFF for a in (regs.DROPOUT_STATE, regs.ROUNDING_STATE)
    ]
    want_states = [net.dropout_rng.state, net.rounding_rng.state]
    layers = []
    for l, w in enumerate(net.weights):
        got_w = await env.read_weights(l)
        bad = np.argwhere(got_w != w)
        layers.append(
            {
                "weights": int(w.size),
                "changed_by_training": int((w != start[l]).sum()),
                "differ": len(bad),
                "first_differ_out_in": bad[0].tolist() if len(bad) else None,
            }
        )
    weights_same = all(layer["differ"] == 0 for layer in layers)
    rec.save(
        first_mismatch=first,
        prng_states_identical=states == want_states,
        layers=layers,
        weights_identical=weights_same,
        status=await env.bus.read(regs.STATUS),
        done=True,
    )
    print(f"training: weights identical {weights_same}, PRNG states {states == want_states}")
    assert first is None, f"first mismatch: {first}"
    assert weights_same and states == want_states
