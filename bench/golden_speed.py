"""Golden-model speed: integer inference and online training samples/s, per preset.

    python bench/golden_speed.py [--out bench/results/golden_speed.json]

Uses real Fashion-MNIST images and random Kaiming weights (speed does not
depend on training, only on spike activity, which random weights keep realistic).

golden/ computes with numpy integer operations, which run on one thread (no BLAS,
no torch), so there is no thread count to choose; ``cpu_cores_used`` (CPU seconds
of the process over wall seconds) records how many cores a measurement used.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from report import emit, out_file  # bench/ is on sys.path when a script here runs

from desire import load_config
from desire.datasets import load_dataset
from golden import GoldenNet


def measure(preset: str, n_infer: int, n_train: int) -> dict:
    cfg = load_config(preset=preset)
    net = GoldenNet.init_random(cfg, 0)
    x, y = load_dataset("fashion-mnist", "test", limit=max(n_infer, n_train))
    t0, c0 = time.perf_counter(), time.process_time()
    net.infer(x[:n_infer])
    infer_s = time.perf_counter() - t0
    lr = net.c.lr_int(0)
    t1 = time.perf_counter()
    for i in range(n_train):
        net.train_step(x[i], int(y[i]), lr)
    train_s = time.perf_counter() - t1
    cores = (time.process_time() - c0) / (time.perf_counter() - t0)
    return {
        "preset": preset,
        "layers": list(cfg.network.layers),
        "infer_samples_per_s": round(n_infer / infer_s, 1),
        "train_samples_per_s": round(n_train / train_s, 1),
        "infer_samples": n_infer,
        "train_samples": n_train,
        "cpu_cores_used": round(cores, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=out_file, help="write the JSON here too")
    p.add_argument("--samples", type=int, default=500)
    args = p.parse_args()
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "runs": [measure(pr, args.samples, args.samples // 2) for pr in ("default", "fmnist-1000")],
    }
    emit(results, args.out)


if __name__ == "__main__":
    main()
