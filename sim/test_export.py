"""cocotb test: an exported network (``DESIRE_EXPORT``) on the accelerator, scored by golden/.

Runs the first ``DESIRE_IMAGES`` Fashion-MNIST test images and writes the RTL's
per-class counts, golden's counts and the cycles per sample as JSON to
``DESIRE_RESULTS``: the demo's and the trained-network regression's evidence.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.handle import HierarchyObject

from desire.datasets import load_dataset
from golden.export import load_export
from golden.network import GoldenNet
from sim.drivers import reset
from sim.test_accelerator import AccelEnv

ENV_EXPORT = "DESIRE_EXPORT"
ENV_RESULTS = "DESIRE_RESULTS"


@cocotb.test()
async def test_export(dut: HierarchyObject) -> None:
    env = AccelEnv(dut)
    await reset(dut)
    cfg, weights, _ = load_export(os.environ[ENV_EXPORT])
    assert cfg == env.cfg, "the DUT was built for another config than the export's"
    net = GoldenNet(cfg, weights)
    await env.load(net)
    images, _ = load_dataset(
        "fashion-mnist", "test", limit=int(os.environ.get("DESIRE_IMAGES", "5"))
    )
    counts, cycles = [], []
    for image in images:
        counts.append((await env.sample(image))[0])
        cycles.append(await env.bus.read(env.model.regs.CYCLES))
    golden = net.infer(images).tolist()
    result = {
        "counts": counts,
        "golden_counts": golden,
        "identical": counts == golden,
        "cycles": cycles,
        "cycles_mean": sum(cycles) / len(cycles),
    }
    Path(os.environ[ENV_RESULTS]).write_text(json.dumps(result))
    assert result["identical"], "RTL spike counts differ from golden/"
