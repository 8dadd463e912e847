"""Training and evaluation throughput of the float trainer, printed as JSON.

For every device (CPU, and CUDA when present), preset and batch size: one
warm-up batch, then timed batches until ``--budget-s`` seconds have passed
(at least one, at most ``--max-batches``). Random pixels are used: the
trainer's cost is dense and does not depend on the data, and the benchmark
then needs no dataset.

    python bench/train_speed.py                       # all defaults, ~2 min on CPU
    python bench/train_speed.py --presets default --batch-sizes 1 32 --threads 1

The torch thread counts are part of the result (``meta.cpu_threads``,
``meta.interop_threads``): on CPU the rates depend on them, so a figure without
them cannot be compared.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from report import emit  # bench/ is on sys.path when a script here runs

from desire.cli import add_threads_flag, apply_threads
from desire.config import PRESETS
from model.network import DesireNet

DEFAULT_PRESETS = ("fmnist-1000", "mnist-1600")
DEFAULT_BATCHES = (1, 8, 32, 128, 512)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(
    run_batch: Callable[[], Any],
    batch: int,
    device: torch.device,
    budget_s: float,
    max_batches: int,
) -> float:
    """Samples per second of ``run_batch`` after one warm-up call."""
    run_batch()
    _sync(device)
    done = 0
    start = time.perf_counter()
    while True:
        run_batch()
        done += 1
        _sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s or done >= max_batches:
            return done * batch / elapsed


def measure(
    preset: str, batch: int, device: torch.device, budget_s: float, max_batches: int
) -> dict:
    cfg = PRESETS[preset]
    net = DesireNet.from_config(cfg, device=device, seed=0)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, cfg.network.layers[0]), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, cfg.network.layers[-1], (batch,), generator=gen)
    images, labels = images.to(device), labels.to(device)
    lr = cfg.network.lr
    train = _rate(lambda: net.train_step(images, labels, lr), batch, device, budget_s, max_batches)
    evaluate = _rate(lambda: net.evaluate(images, labels), batch, device, budget_s, max_batches)
    return {
        "device": device.type,
        "preset": preset,
        "layers": list(cfg.network.layers),
        "batch_size": batch,
        "train_samples_per_s": round(train, 2),
        "eval_samples_per_s": round(evaluate, 2),
    }


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", choices=sorted(PRESETS), default=list(DEFAULT_PRESETS))
    p.add_argument("--batch-sizes", type=int, nargs="+", default=list(DEFAULT_BATCHES))
    p.add_argument("--devices", nargs="+", help="default: cpu, plus cuda when available")
    p.add_argument("--budget-s", type=float, default=1.5, help="timed seconds per measurement")
    p.add_argument("--max-batches", type=int, default=50)
    add_threads_flag(p)
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)
    apply_threads(args.threads)
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = [
        measure(preset, batch, torch.device(dev), args.budget_s, args.max_batches)
        for dev in devices
        for preset in args.presets
        for batch in args.batch_sizes
    ]
    meta = {
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "machine": platform.machine(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    emit({"meta": meta, "results": results}, args.out)


if __name__ == "__main__":
    main()
