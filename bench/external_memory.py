"""Weights in external memory: cycles per sample of the RTL against its bounds.

    python bench/external_memory.py [--preset default] [--lanes 16] [--images 3]
        [--bytes 2 4 8 16] [--latency 20] [--out bench/results/external_memory.json]

For each AXI data width (bytes per cycle), the shared-pool accelerator with
``weights = external`` runs Fashion-MNIST test images in the Amaranth simulator, its
weight table served by a fixed-latency AXI slave (one beat per cycle, no gaps: the
bandwidth the width gives), and every spike count is checked against golden. Per image
it records ``CYCLES`` and compares it with:

- the lane bound (useful synaptic operations / lanes) and the memory bound (weight
  bytes the events need / bytes per cycle): the issue's goal is within 1.15x of the
  larger at 8 bytes/cycle or more;
- the on-chip design's exact cycles (``rtl.cycle_model``) and the planning model
  (``rtl.perf_model.shared`` with the same memory).

The Amaranth simulator runs about 1,000 cycles/s here, so this is for the small
network; the paper's network needs Verilator.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from report import emit, out_file  # bench/ is on sys.path when a script here runs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amaranth.sim import Simulator

from desire import load_config
from desire.config import Config
from desire.datasets import load_dataset
from golden import GoldenNet
from rtl.accelerator import Accelerator
from rtl.cycle_model import cycle_model
from rtl.perf_model import Memory, Workload, shared
from tests.test_rtl_accelerator import _read, _transfer, _write
from tests.test_rtl_accelerator_external import BASE, _slave


def _simulate(cfg: Config, net: GoldenNet, images: np.ndarray, latency: int) -> list[dict]:
    """CYCLES and counts of every image on the RTL, the slave at a fixed latency."""
    dut = Accelerator(cfg)
    image = dut.weight_image(net.weights)
    got: list[dict] = []

    async def host(ctx: object) -> None:
        await _write(ctx, dut, dut.regs.WEIGHT_BASE, BASE)
        for img in images:
            res = await _transfer(ctx, dut, img)
            cycles = await _read(ctx, dut, dut.regs.CYCLES)
            got.append({"counts": [int(x) for x in res.counts], "cycles": cycles})

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    slave = _slave(dut, image, latency=(latency, latency), gaps=0.0, seed=0)
    sim.add_testbench(slave, background=True)
    sim.run()
    return got


def measure(preset: str, lanes: int, images: int, data_bytes: int, latency: int) -> dict:
    """One bandwidth: per-image cycles, bounds and models, and the means."""
    cfg = load_config(preset=preset).replace(
        hardware={
            "lanes": lanes,
            "architecture": "shared",
            "weights": "external",
            "training": False,
            "axi_bytes": data_bytes,
            "axi_latency": latency,
        }
    )
    net = GoldenNet.init_random(cfg, 0)
    x, _ = load_dataset("fashion-mnist", "test", limit=images)
    start = time.monotonic()
    got = _simulate(cfg, net, x, latency)
    seconds = time.monotonic() - start
    rec = net.forward(x, record=True)
    on_chip = cfg.replace(hardware={"weights": "on-chip"})
    memory = Memory(
        bytes_per_cycle=data_bytes, latency=latency, weight_bits=cfg.formats.weight_bits
    )
    rows = []
    for k, g in enumerate(got):
        spikes = [s[:, k] for s in rec.spikes]
        if g["counts"] != [int(c) for c in rec.counts[-1][k]]:
            raise SystemExit(f"image {k}: RTL counts {g['counts']} differ from golden's")
        work = Workload.from_record(cfg.network.layers, rec.input_spikes[:, k], spikes)
        plan = shared(work, lanes, memory)
        rows.append(
            {
                "cycles": g["cycles"],
                "on_chip": cycle_model(on_chip, rec.input_spikes[:, k], spikes).cycles,
                "planning_model": plan.cycles,
                "lane_bound": plan.lane_bound,
                "memory_bound": plan.memory_bound,
            }
        )
    mean = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
    mean["ratio"] = mean["cycles"] / max(mean["lane_bound"], mean["memory_bound"])
    return {
        "bytes_per_cycle": data_bytes,
        "latency": latency,
        "images": rows,
        "mean": mean,
        "sim_cycles_per_s": sum(g["cycles"] for g in got) / seconds,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="default")
    p.add_argument("--lanes", type=int, default=16)
    p.add_argument("--images", type=int, default=3)
    p.add_argument("--bytes", type=int, nargs="+", default=[2, 4, 8, 16])
    p.add_argument("--latency", type=int, default=20)
    p.add_argument("--out", type=out_file, help="also write the JSON here")
    args = p.parse_args()
    results = []
    print("| bytes/cycle | cycles/sample | lane bound | memory bound | ratio | planning model |")
    print("|---:|---:|---:|---:|---:|---:|")
    for data_bytes in args.bytes:
        r = measure(args.preset, args.lanes, args.images, data_bytes, args.latency)
        m = r["mean"]
        print(
            f"| {data_bytes} | {m['cycles']:.0f} | {m['lane_bound']:.0f} | "
            f"{m['memory_bound']:.0f} | {m['ratio']:.2f}x | {m['planning_model']:.0f} |",
            flush=True,
        )
        results.append(r)
    layers = list(load_config(preset=args.preset).network.layers)
    emit({"layers": layers, "lanes": args.lanes, "results": results}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
