"""Architecture study for issue 12: cycles per sample of three lane organisations.

    python bench/arch_study.py [--images 20] [--latency 20] [--out bench/results/arch_study.json]

For each network (784-64-10 with 16 lanes in all, 784-1000-100-10 with 24: the lanes
today's design has, one core of 8 per layer), a Kaiming-initialised quantised net
(golden/) runs Fashion-MNIST test images and ``rtl.perf_model`` counts, per image:

- today's per-layer design (``rtl.cycle_model.cycle_model``, exact: equal to CYCLES);
- per-layer cores with the lanes split in proportion to the measured work;
- one shared pool of all lanes, layers time-shared inside each step, on chip and with
  weights in external memory at 2, 4, 8 and 16 bytes/cycle (the planning model);
- the shared-pool RTL (``hardware.architecture = "shared"``), on chip: its exact cycle
  model, equal to CYCLES in the Amaranth tests, inference and training forward (with
  the dropout draws).

Each against the lane bound (useful synaptic operations / all lanes) and, for external
memory, the memory bound (weight bytes moved / bandwidth). Prints a Markdown table and
writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from report import emit, out_file  # bench/ is on sys.path when a script here runs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from desire import load_config
from desire.config import Config
from desire.datasets import load_dataset
from golden import GoldenNet
from rtl.cycle_model import cycle_model, training_cycle_model
from rtl.perf_model import Memory, Workload, lane_bound, proportional, shared, split_lanes

NETWORKS = {"default": 2 * 8, "fmnist-1000": 3 * 8}
BANDWIDTHS = (2, 4, 8, 16)


def _workloads(preset: str, images: int) -> tuple[list[Workload], list, object]:
    cfg = load_config(preset=preset)
    net = GoldenNet.init_random(cfg, 0)
    x, _ = load_dataset("fashion-mnist", "test", limit=images)
    rec = net.forward(x, record=True)
    records = [(rec.input_spikes[:, k], [s[:, k] for s in rec.spikes]) for k in range(images)]
    work = [Workload.from_record(cfg.network.layers, i, s) for i, s in records]
    return work, records, cfg


def _row(name: str, cycles: list[float], bounds: list[float]) -> dict:
    c, b = float(np.mean(cycles)), float(np.mean(bounds))
    return {"architecture": name, "cycles": c, "bound": b, "ratio": c / b}


def _training(cfg: Config, images: int) -> tuple[list[float], list[float]]:
    """Forward cycles (dropout draws included) of training samples on the shared-pool RTL
    and their lane bounds, from golden's training steps on the same images."""
    net = GoldenNet.init_random(cfg, 0)
    x, y = load_dataset("fashion-mnist", "test", limit=images)
    cycles, bounds = [], []
    lr_int = net.c.lr_int(0)
    for img, label in zip(x, y, strict=True):
        rec = net.train_step(img[None], int(label), lr_int, record=True).forward
        inputs, spikes = rec.input_spikes[:, 0], [s[:, 0] for s in rec.spikes]
        cycles.append(training_cycle_model(cfg, inputs, spikes).forward)
        work = Workload.from_record(cfg.network.layers, inputs, spikes)
        bounds.append(lane_bound(work, cfg.hardware.lanes))
    return cycles, bounds


def study(preset: str, total: int, images: int, latency: int) -> list[dict]:
    """Rows of one network: architecture, mean cycles/sample, mean bound, ratio."""
    work, records, cfg = _workloads(preset, images)
    lanes_bound = [lane_bound(w, total) for w in work]
    today = [cycle_model(cfg, i, s).cycles for i, s in records]
    rows = [_row(f"per-layer, {cfg.hardware.lanes} lanes/layer (today)", today, lanes_bound)]
    ops = np.mean([w.events().sum(axis=0) for w in work], axis=0) * np.array(cfg.network.layers[1:])
    split = split_lanes(list(ops / ops.sum()), total)
    prop = [proportional(w, split) for w in work]
    rows.append(_row(f"per-layer, lanes {split}", [r.cycles for r in prop], lanes_bound))
    on_chip = [shared(w, total) for w in work]
    rows.append(_row(f"shared pool of {total}, on chip", [r.cycles for r in on_chip], lanes_bound))
    pool = cfg.replace(hardware={"lanes": total, "architecture": "shared"})
    rtl = [cycle_model(pool, i, s).cycles for i, s in records]
    rows.append(_row(f"shared-pool RTL of {total}, on chip (exact)", rtl, lanes_bound))
    name = f"shared-pool RTL of {total}, training forward (exact)"
    rows.append(_row(name, *_training(pool, images)))
    for bw in BANDWIDTHS:
        mem = Memory(bytes_per_cycle=bw, latency=latency, weight_bits=cfg.formats.weight_bits)
        ext = [shared(w, total, mem) for w in work]
        rows.append(
            _row(
                f"shared pool of {total}, external {bw} B/cycle, latency {latency}",
                [r.cycles for r in ext],
                [r.bound for r in ext],
            )
        )
    for row in rows:
        row |= {"preset": preset, "layers": list(cfg.network.layers), "total_lanes": total}
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--latency", type=int, default=20, help="external memory, cycles")
    p.add_argument("--out", type=out_file, help="also write the JSON here")
    args = p.parse_args()
    rows = [
        r
        for preset, total in NETWORKS.items()
        for r in study(preset, total, args.images, args.latency)
    ]
    print("| network | architecture | cycles/sample | bound | ratio |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        net = "-".join(map(str, r["layers"]))
        figures = f"{r['cycles']:.0f} | {r['bound']:.0f} | {r['ratio']:.2f}x"
        print(f"| {net} | {r['architecture']} | {figures} |")
    emit({"images": args.images, "latency": args.latency, "rows": rows}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
