"""Weights in external memory: cycles per sample of the RTL against its bounds.

    python bench/external_memory.py [--preset default] [--lanes 16] [--images 3]
        [--bytes 2 4 8 16] [--latency 20] [--out bench/results/external_memory.json]
    python bench/external_memory.py --models [--images 20] [--bytes 2 4 8 16]
        [--latency 20] [--out bench/results/external_cycle_model.json]

Simulation (the default). For each AXI data width (bytes per cycle), the shared-pool
accelerator with ``weights = external`` runs Fashion-MNIST test images in the Amaranth
simulator, its weight table served by a fixed-latency AXI slave (one beat per cycle, no
gaps: the bandwidth the width gives), and every spike count is checked against golden.
Per image it records ``CYCLES`` and compares it with:

- the lane bound (useful synaptic operations / lanes) and the memory bound (weight
  bytes the events need / bytes per cycle): the issue's goal is within 1.15x of the
  larger at 8 bytes/cycle or more;
- the exact cycle model of the external path (``rtl.external_cycle_model``, which must
  equal ``CYCLES``: the run stops otherwise), the on-chip design's exact cycles
  (``rtl.cycle_model``) and the planning model (``rtl.perf_model.shared`` with the same
  memory).

The Amaranth simulator runs about 1,000 cycles/s here, so this is for the small
network. ``--models`` needs no simulation: the exact models alone (equal to ``CYCLES``
in the tests) count 784-64-10 on a pool of 16 lanes and 784-1000-100-10 on a pool of
24 (docs/accelerator-v2.md), on chip and external at each width, the buffer sized for
the memory's latency, on Kaiming-initialised quantised nets (seed 0) and the first
``--images`` Fashion-MNIST test images, as ``bench/arch_study.py`` does.
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
from rtl.external_cycle_model import external_cycle_model
from rtl.perf_model import Memory, Workload, lane_bound, shared
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


#: The networks of ``--models`` and their pools (docs/accelerator-v2.md: the lanes of
#: today's per-layer design, 8 per layer, in one pool).
NETWORKS = {"default": 16, "fmnist-1000": 24}


def _external(preset: str, lanes: int, data_bytes: int, latency: int) -> Config:
    """The inference build of ``preset`` with a pool of ``lanes`` and its weights behind a
    bus of ``data_bytes``, the buffer sized for ``latency``."""
    return load_config(preset=preset).replace(
        hardware={
            "lanes": lanes,
            "architecture": "shared",
            "weights": "external",
            "training": False,
            "axi_bytes": data_bytes,
            "axi_latency": latency,
        }
    )


def measure(preset: str, lanes: int, images: int, data_bytes: int, latency: int) -> dict:
    """One bandwidth: per-image cycles, bounds and models, and the means."""
    cfg = _external(preset, lanes, data_bytes, latency)
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
        exact = external_cycle_model(cfg, rec.input_spikes[:, k], spikes, latency, base=BASE)
        if exact.cycles != g["cycles"]:
            raise SystemExit(f"image {k}: CYCLES {g['cycles']}, exact model {exact.cycles}")
        rows.append(
            {
                "cycles": g["cycles"],
                "exact_model": exact.cycles,
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


def _mean_row(design: str, cycles: list[int], lane: list[float], memory: list[float]) -> dict:
    """One design's means over the images; the ratio is to the larger mean bound."""
    row = {
        "design": design,
        "cycles": float(np.mean(cycles)),
        "lane_bound": float(np.mean(lane)),
        "memory_bound": float(np.mean(memory)),
    }
    return row | {"ratio": row["cycles"] / max(row["lane_bound"], row["memory_bound"])}


def models(preset: str, lanes: int, images: int, widths: list[int], latency: int) -> list[dict]:
    """The exact models' rows of one network (``--models``): on chip, then external at
    each width; per row the mean cycles, bounds and planning model, and every image's
    cycles."""
    cfg = _external(preset, lanes, widths[0], latency)
    net = GoldenNet.init_random(cfg, 0)
    x, _ = load_dataset("fashion-mnist", "test", limit=images)
    rec = net.forward(x, record=True)
    samples = [(rec.input_spikes[:, k], [s[:, k] for s in rec.spikes]) for k in range(images)]
    work = [Workload.from_record(cfg.network.layers, i, s) for i, s in samples]
    lane = [lane_bound(w, lanes) for w in work]
    on_chip = cfg.replace(hardware={"weights": "on-chip"})
    cycles = [cycle_model(on_chip, i, s).cycles for i, s in samples]
    rows = [_mean_row("on chip", cycles, lane, [0.0] * images) | {"images": cycles}]
    rows[0]["planning_model"] = float(np.mean([shared(w, lanes).cycles for w in work]))
    for data_bytes in widths:
        start = time.monotonic()
        ext = _external(preset, lanes, data_bytes, latency)
        memory = Memory(
            bytes_per_cycle=data_bytes, latency=latency, weight_bits=ext.formats.weight_bits
        )
        plans = [shared(w, lanes, memory) for w in work]
        cycles = [external_cycle_model(ext, i, s, latency).cycles for i, s in samples]
        row = _mean_row(
            f"external, {data_bytes} B/cycle", cycles, lane, [p.memory_bound for p in plans]
        )
        row |= {
            "bytes_per_cycle": data_bytes,
            "planning_model": float(np.mean([p.cycles for p in plans])),
            "images": cycles,
            "model_seconds": time.monotonic() - start,
        }
        rows.append(row)
    for row in rows:
        row |= {"preset": preset, "layers": list(cfg.network.layers), "lanes": lanes}
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", action="store_true", help="the exact models alone, both networks")
    p.add_argument("--preset", default="default")
    p.add_argument("--lanes", type=int, default=16)
    p.add_argument("--images", type=int, default=None, help="default 3; 20 with --models")
    p.add_argument("--bytes", type=int, nargs="+", default=[2, 4, 8, 16])
    p.add_argument("--latency", type=int, default=20)
    p.add_argument("--out", type=out_file, help="also write the JSON here")
    args = p.parse_args()
    if args.models:
        return _models_main(args)
    images = 3 if args.images is None else args.images
    results = []
    print(
        "| bytes/cycle | cycles/sample | exact model | lane bound | memory bound | ratio "
        "| planning model |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for data_bytes in args.bytes:
        r = measure(args.preset, args.lanes, images, data_bytes, args.latency)
        m = r["mean"]
        print(
            f"| {data_bytes} | {m['cycles']:,.0f} | {m['exact_model']:,.0f} | "
            f"{m['lane_bound']:,.0f} | {m['memory_bound']:,.0f} | {m['ratio']:.2f}x | "
            f"{m['planning_model']:,.0f} |",
            flush=True,
        )
        results.append(r)
    layers = list(load_config(preset=args.preset).network.layers)
    emit({"layers": layers, "lanes": args.lanes, "results": results}, args.out)
    return 0


def _models_main(args: argparse.Namespace) -> int:
    """``--models``: the table of both networks from the exact models."""
    images = 20 if args.images is None else args.images
    rows = [
        r
        for preset, lanes in NETWORKS.items()
        for r in models(preset, lanes, images, args.bytes, args.latency)
    ]
    print(
        "| network | lanes | design | cycles/sample | lane bound | memory bound | ratio "
        "| planning model |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        net = "-".join(map(str, r["layers"]))
        memory = f"{r['memory_bound']:,.0f}" if r["memory_bound"] else "-"
        print(
            f"| {net} | {r['lanes']} | {r['design']} | {r['cycles']:,.0f} | "
            f"{r['lane_bound']:,.0f} | {memory} | {r['ratio']:.2f}x | "
            f"{r['planning_model']:,.0f} |"
        )
    result = {"images": images, "latency": args.latency, "memory": "ideal", "rows": rows}
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
