"""Online training with the accelerator's arithmetic: the loop behind ``python -m golden train``.

Works with any integer network that has golden's interface (``GoldenNet``, or
``model.fixed.FixedNet`` on a torch device): ``train_step(image, label,
lr_int)``, ``infer(images)``, ``int_weights()`` and the two PRNG streams. One
sample at a time, like the hardware; the host's only job per epoch is the
learning-rate register.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from desire.config import Config
from golden.export import load_export, write_export
from golden.fixed import Constants
from golden.network import strict_argmax
from golden.prng import XorShift32

__all__ = ["OnlineNet", "OnlineRun", "accuracy", "restore", "train_online"]


class OnlineNet(Protocol):
    cfg: Config
    c: Constants
    dropout_rng: XorShift32
    rounding_rng: XorShift32

    def train_step(self, image: np.ndarray, label: int, lr_int: int) -> Any: ...

    def infer(self, images: np.ndarray) -> np.ndarray: ...

    def int_weights(self) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class OnlineRun:
    """Where and how long: run folder, epochs in total, sample-order seed, progress bar."""

    out: Path
    epochs: int
    seed: int = 0
    quiet: bool = False


def accuracy(net: OnlineNet, x: np.ndarray, y: np.ndarray) -> float:
    """Strict-max accuracy of integer inference."""
    return float((strict_argmax(net.infer(x)) == y).mean()) if len(y) else 0.0


def restore(net: OnlineNet, out: Path) -> tuple[int, float]:
    """Load ``out/last`` into ``net`` (weights are the caller's; PRNG states here)."""
    _, _, manifest = load_export(out / "last")
    st = manifest["golden_state"]
    net.dropout_rng.state, net.rounding_rng.state = st["dropout_rng"], st["rounding_rng"]
    return st["epoch"] + 1, st["best"]


def _save(net: OnlineNet, run: OnlineRun, epoch: int, best: float, improved: bool) -> None:
    state = {
        "golden_state": {
            "epoch": epoch,
            "best": best,
            "seed": run.seed,
            "dropout_rng": net.dropout_rng.state,
            "rounding_rng": net.rounding_rng.state,
        }
    }
    weights = net.int_weights()
    if improved:
        write_export(run.out / "best", net.cfg, weights, state)
    write_export(run.out / "last", net.cfg, weights, state)


def train_online(
    net: OnlineNet,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    run: OnlineRun,
    start: int = 0,
    best: float = -1.0,
) -> list[dict]:
    """Epochs ``start .. run.epochs - 1``; log.jsonl line and exports after each epoch."""
    (x, y), (xt, yt) = train, test
    run.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for epoch in range(start, run.epochs):
        order = np.random.default_rng([run.seed, epoch]).permutation(len(y))
        lr_int = net.c.lr_int(epoch)
        correct, t0 = 0, time.perf_counter()
        bar = tqdm(order, desc=f"epoch {epoch}", disable=run.quiet or not sys.stderr.isatty())
        for i in bar:
            correct += int(
                strict_argmax(net.train_step(x[i], int(y[i]), lr_int).counts[-1]) == y[i]
            )
        train_s = time.perf_counter() - t0
        test_acc = accuracy(net, xt, yt)
        row = {
            "epoch": epoch,
            "lr_int": lr_int,
            "train_acc": correct / len(y),
            "test_acc": test_acc,
            "train_samples_per_s": len(y) / train_s,
        }
        with open(run.out / "log.jsonl", "a") as log:
            log.write(json.dumps(row) + "\n")
        if not run.quiet:
            print(json.dumps(row), flush=True)
        improved = test_acc > best
        best = max(best, test_acc)
        _save(net, run, epoch, best, improved)
        rows.append(row)
    return rows
