"""Training and evaluation throughput of the float trainer, printed as JSON.

For every device (CPU, and CUDA when present), preset and batch size: one
warm-up batch, then timed batches until ``--budget-s`` seconds have passed
(at least one, at most ``--max-batches``). Random pixels are used: the
batched trainer's cost is dense and does not depend on the data, and the
benchmark then needs no dataset (batch 1 on the CPU does depend on it: one
repeated random image only shows its order of magnitude; ``--online`` below).

    python bench/train_speed.py                       # all defaults, ~2 min on CPU
    python bench/train_speed.py --presets default --batch-sizes 1 32 --threads 1

``--online N`` measures batch 1 instead, the online training of the reference: N
Fashion-MNIST training samples in order (at batch 1 the cost depends on the data: the
update touches only the neurons that have a desire and spiked), once on the
single-sample path and once on the batched formulation it replaces (the same network,
``DesireNet.single_sample_path = False``), in alternating blocks so that both see the
same machine load; both must end with identical weights. ``--reference-samples K``
also times K samples of the reference implementation's operations as transcribed in
``tests/test_model_reference.py`` (one sample at a time, as the authors' code does).

    python bench/train_speed.py --online 2000 --presets fmnist-1000 --threads 1

The torch thread counts are part of the result (``meta.cpu_threads``,
``meta.interop_threads``): on CPU the rates depend on them, so a figure without
them cannot be compared; the load average before and after is recorded too (``meta.load``),
since the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from report import emit, out_file  # bench/ is on sys.path when a script here runs

from desire.cli import add_threads_flag, apply_threads
from desire.config import PRESETS, Config
from model.cuda_graph import GraphedStep
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
    images, labels = _random_batch(cfg, batch, device)
    lr = cfg.network.lr
    train = _rate(lambda: net.train_step(images, labels, lr), batch, device, budget_s, max_batches)
    evaluate = _rate(lambda: net.evaluate(images, labels), batch, device, budget_s, max_batches)
    out = {
        "device": device.type,
        "preset": preset,
        "layers": list(cfg.network.layers),
        "batch_size": batch,
        "train_samples_per_s": round(train, 2),
        "eval_samples_per_s": round(evaluate, 2),
    }
    if device.type == "cuda":
        try:
            step = GraphedStep(net, batch, lr)
            graphed = _rate(lambda: step(images, labels), batch, device, budget_s, max_batches)
            out["train_cuda_graph_samples_per_s"] = round(graphed, 2)
            out["cuda_graph_identical_to_eager"] = graph_matches_eager(preset, batch, device)
        except RuntimeError as exc:  # recorded as a result: the eager figures still stand
            out["cuda_graph_error"] = str(exc).splitlines()[0]
    return out


def _random_batch(
    cfg: Config, batch: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random pixels and labels, the same for every call with the same shape."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, cfg.network.layers[0]), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, cfg.network.layers[-1], (batch,), generator=gen)
    return images.to(device), labels.to(device)


def graph_matches_eager(preset: str, batch: int, device: torch.device, steps: int = 20) -> bool:
    """Whether ``steps`` replayed batches leave the weights bit for bit where eager ones do.

    Both networks start from the same weights and draw the same dropout masks; the
    images are the same random batch each step (the weights still change every step).
    """
    cfg = PRESETS[preset]
    images, labels = _random_batch(cfg, batch, device)
    lr = cfg.network.lr
    eager = DesireNet.from_config(cfg, device=device, seed=0)
    graphed = DesireNet.from_config(cfg, device=device, seed=0)
    step = GraphedStep(graphed, batch, lr)
    for _ in range(steps):
        eager.train_step(images, labels, lr)
        step(images, labels)
    return all(torch.equal(a, b) for a, b in zip(eager.weights, graphed.weights, strict=True))


def _fmnist(samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``samples`` Fashion-MNIST training images and labels."""
    from desire.datasets import load_dataset

    x, y = load_dataset("fashion-mnist", "train", limit=samples)
    return torch.from_numpy(x), torch.from_numpy(y)


def _train_block(
    net: DesireNet, images: torch.Tensor, labels: torch.Tensor, lr: float
) -> tuple[float, float]:
    """Wall-clock and CPU milliseconds per sample of online training on ``images``.

    The process's CPU time leaves out the time other jobs on a shared machine hold the
    core (not what they do to the caches); with one thread it is the wall-clock time of
    an idle machine.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(len(labels)):
        net.train_step(images[i : i + 1], labels[i : i + 1], lr)
    n = len(labels)
    return (time.perf_counter() - wall) / n * 1e3, (time.process_time() - cpu) / n * 1e3


def _reference_ms(preset: str, samples: int) -> float | None:
    """Median CPU milliseconds per online sample of the reference's transcribed operations."""
    if samples <= 0:
        return None
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.test_model_reference import ReferenceNet

    cfg = PRESETS[preset]
    net = DesireNet.from_config(cfg, seed=0)
    ref = ReferenceNet(cfg, net.weights, torch.float32)
    images, labels = _fmnist(samples + 1)
    times = []
    for i in range(samples + 1):  # the first is warm-up
        masks = [m[0] for m in net.draw_masks(1)]
        start = time.process_time()
        ref.train_sample(images[i], int(labels[i]), cfg.network.lr, masks)
        times.append((time.process_time() - start) * 1e3)
    return statistics.median(times[1:])


def online_batch1(preset: str, samples: int, blocks: int, reference_samples: int) -> dict:
    """Batch-1 online training, ms per sample: single-sample path vs batched formulation."""
    cfg = PRESETS[preset]
    images, labels = _fmnist(samples)
    lr = cfg.network.lr
    nets = {"single_sample_path": DesireNet.from_config(cfg, seed=0)}
    nets["batched_formulation"] = DesireNet.from_config(cfg, seed=0)
    nets["batched_formulation"].single_sample_path = False
    for net in nets.values():  # warm-up: tables, buffers, first-call costs
        _train_block(net, images[:5], labels[:5], lr)
    size = max(1, samples // blocks)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in nets}
    for first in range(0, samples - size + 1, size):
        for name, net in nets.items():
            block = slice(first, first + size)
            times[name].append(_train_block(net, images[block], labels[block], lr))
    identical = all(
        torch.equal(a, b) for a, b in zip(*(net.weights for net in nets.values()), strict=True)
    )
    cpu = {name: statistics.median(c for _, c in t) for name, t in times.items()}
    ref = _reference_ms(preset, reference_samples)
    fast = cpu["single_sample_path"]
    return {
        "preset": preset,
        "layers": list(cfg.network.layers),
        "samples": size * len(times["single_sample_path"]),
        "block_samples": size,
        "data": "fashion-mnist train, in order",
        "ms_per_sample": {name: _spread(t) for name, t in times.items()},
        "speedup_cpu_median": round(cpu["batched_formulation"] / fast, 2),
        "identical_weights_at_end": identical,
        "reference_transcription_cpu_ms_per_sample": None if ref is None else round(ref, 1),
        "reference_samples": reference_samples,
        "reference_over_single_sample_path_cpu": None if ref is None else round(ref / fast, 1),
    }


def _spread(blocks: list[tuple[float, float]]) -> dict[str, dict[str, float]]:
    """Median, min and max over blocks of the wall-clock and the CPU ms per sample."""
    out = {}
    for i, name in enumerate(("wall", "cpu")):
        values = [b[i] for b in blocks]
        out[name] = {
            "median": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
        }
    return out


def _load() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"1min": one, "5min": five, "15min": fifteen, "cores": os.cpu_count() or 0}


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", choices=sorted(PRESETS), default=list(DEFAULT_PRESETS))
    p.add_argument("--batch-sizes", type=int, nargs="+", default=list(DEFAULT_BATCHES))
    p.add_argument("--devices", nargs="+", help="default: cpu, plus cuda when available")
    p.add_argument("--budget-s", type=float, default=1.5, help="timed seconds per measurement")
    p.add_argument("--max-batches", type=int, default=50)
    p.add_argument("--online", type=int, metavar="N", help="batch-1 online mode, N samples")
    p.add_argument("--blocks", type=int, default=10, help="alternating blocks in --online")
    p.add_argument("--reference-samples", type=int, default=0, metavar="K")
    add_threads_flag(p)
    p.add_argument("--out", type=out_file, help="also write the JSON here")
    args = p.parse_args(argv)
    apply_threads(args.threads)
    load_before = _load()
    if args.online:
        results = [
            online_batch1(preset, args.online, args.blocks, args.reference_samples)
            for preset in args.presets
        ]
    else:
        devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        results = [
            measure(preset, batch, torch.device(dev), args.budget_s, args.max_batches)
            for dev in devices
            for preset in args.presets
            for batch in args.batch_sizes
        ]
    meta = {
        "load": {"before": load_before, "after": _load()},
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "machine": platform.machine(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    emit({"meta": meta, "results": results}, args.out)


if __name__ == "__main__":
    main()
