"""RTL speed: cycles per sample (exact cycle models) per preset, and simulator speed.

    python bench/rtl_speed.py [--presets default fmnist-1000] [--images 20]
        [--synth build/synth/ecp5_85k/result.json] [--sims icarus verilator]
        [--sim-images 5] [--sim-train 3] [--out bench/results/rtl_speed.json]

Part 1, per preset: a Kaiming-initialised quantised net (golden/) runs
Fashion-MNIST test images; ``rtl.cycle_model.cycle_model`` and
``training_cycle_model`` (equal to the RTL's CYCLES registers, which the tests
assert) give cycles per inference and per training sample, the lane use and the
bounds. With ``--synth`` (a ``rtl.synth`` result.json), samples/s at its Fmax.

Part 2: the accelerator on the CI config (784-32-10) under each simulator:
inference and training samples/s and simulated cycles/s, read off the cocotb
tests' report lines (every sample is also checked against golden/ there), per
second of wall time and per second of the simulator process's CPU time. The
CPU figure is the one to compare across runs on a shared machine: the wall
figure moves with the load (the load averages before and after are recorded).
Builds are reused (sim.runner), so a second run measures the simulation alone;
``build_seconds`` says whether this one built.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
from report import emit, out_file  # bench/ is on sys.path when a script here runs

from desire import load_config
from desire.datasets import load_dataset
from golden import GoldenNet
from rtl.cycle_model import cycle_model, training_cycle_model
from sim.runner import CI_CONFIG, available, run


def cycles(preset: str, n_images: int, fmax_mhz: float | None) -> dict:
    """Mean cycles per inference and training sample of ``preset`` on ``n_images`` images."""
    cfg = load_config(preset=preset)
    p, n_layers = cfg.hardware.lanes, len(cfg.network.layers) - 1
    net = GoldenNet.init_random(cfg, 0)
    x, y = load_dataset("fashion-mnist", "test", limit=n_images)
    rec = net.forward(x, record=True)
    reports = [
        cycle_model(cfg, rec.input_spikes[:, k], [s[:, k] for s in rec.spikes])
        for k in range(n_images)
    ]
    infer = float(np.mean([r.cycles for r in reports]))
    lane_ops = float(np.mean([r.lane_ops for r in reports]))
    lr = net.c.lr_int(0)
    split = []
    for k in range(n_images):
        step = net.train_step(x[k : k + 1], int(y[k]), lr, record=True)
        fwd = step.forward
        t = training_cycle_model(cfg, fwd.input_spikes[:, 0], [s[:, 0] for s in fwd.spikes])
        split.append((t.forward, t.backward, t.update, t.update_bound))
    fwd, bwd, upd, upd_bound = (float(v) for v in np.mean(split, axis=0))
    out = {
        "preset": preset,
        "layers": list(cfg.network.layers),
        "lanes": p,
        "images": n_images,
        "inference_cycles": round(infer),
        "inference_bound_parallel": round(float(np.mean([r.bound_parallel for r in reports]))),
        "inference_bound_sum": round(float(np.mean([r.bound_sum for r in reports]))),
        "lane_use_all_lanes": round(lane_ops / (infer * p * n_layers), 3),
        "training_cycles": {
            "forward": round(fwd),
            "backward": round(bwd),
            "update": round(upd),
            "update_bound": round(upd_bound),
            "total": round(fwd + bwd + upd),
        },
    }
    if fmax_mhz:
        out["at_fmax"] = {
            "fmax_mhz": fmax_mhz,
            "inference_samples_per_s": round(fmax_mhz * 1e6 / infer, 1),
            "training_samples_per_s": round(fmax_mhz * 1e6 / (fwd + bwd + upd), 1),
        }
    return out


#: The rates at the end of the cocotb tests' report lines (sim/test_accelerator.py).
_RATES = r"([\d.]+) samples/s, (\d+) cycles/s, (\d+) cycles per CPU second"


def simulator_speed(sim: str, n_images: int, n_train: int) -> dict:
    """Samples/s and cycles/s of the CI-config accelerator under ``sim``, from the cocotb
    report lines."""
    log = Path("build") / f"rtl_speed_{sim}.log"
    log.parent.mkdir(exist_ok=True)
    env = {"DESIRE_IMAGES": str(n_images), "DESIRE_TRAIN_SAMPLES": str(n_train)}
    load_before = os.getloadavg()
    result = run(
        "accelerator",
        sim,
        CI_CONFIG,
        testcase=["test_fashion_mnist", "test_training"],
        extra_env=env,
        log_file=log,
    )
    text = log.read_text()
    infer = re.search(rf"fashion-mnist: .*?; {_RATES}", text)
    train = re.search(rf"training: \d+ samples identical.*?; {_RATES}", text)
    return {
        "simulator": sim,
        "layers": list(CI_CONFIG.network.layers),
        "passed": result.ok,
        "seconds": round(result.seconds, 1),
        "build_seconds": round(result.build_seconds, 1),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "inference_images": n_images,
        "inference_samples_per_s": float(infer.group(1)) if infer else None,
        "simulated_cycles_per_s": int(infer.group(2)) if infer else None,
        "simulated_cycles_per_cpu_s": int(infer.group(3)) if infer else None,
        "training_samples": n_train,
        "training_samples_per_s": float(train.group(1)) if train else None,
        "training_cycles_per_s": int(train.group(2)) if train else None,
        "training_cycles_per_cpu_s": int(train.group(3)) if train else None,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--presets", nargs="+", default=["default", "fmnist-1000"])
    p.add_argument("--images", type=int, default=20, help="images per preset (cycle models)")
    p.add_argument("--synth", help="a rtl.synth result.json: samples/s at its Fmax")
    p.add_argument("--sims", nargs="*", default=["icarus", "verilator"])
    p.add_argument("--sim-images", type=int, default=5)
    p.add_argument("--sim-train", type=int, default=3)
    p.add_argument("--out", type=out_file, help="also write the JSON here")
    args = p.parse_args()
    if args.images < 1 or args.sim_images < 1 or args.sim_train < 1:
        p.error("--images, --sim-images and --sim-train must be >= 1")
    fmax = None
    if args.synth:
        fmax = json.loads(Path(args.synth).read_text())["fmax_mhz"]
    out = {
        "command": " ".join(["python bench/rtl_speed.py", *sys.argv[1:]]),
        "cycle_models": [cycles(preset, args.images, fmax) for preset in args.presets],
        "simulators": [
            simulator_speed(sim, args.sim_images, args.sim_train)
            for sim in args.sims
            if available(sim)
        ],
    }
    emit(out, args.out)


if __name__ == "__main__":
    main()
