"""Training and evaluation loops, per-epoch JSONL log and atomic checkpoints.

A run directory holds ``config.json``, ``log.jsonl`` (one line per epoch),
``last.pt`` (written every epoch) and ``best.pt`` (written when the test
accuracy improves). Checkpoints carry the RNG states of the dropout masks and
of the shuffling, so ``resume`` continues exactly where ``last.pt`` left off;
a crash loses at most the epoch in progress.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from desire.config import Config
from desire.datasets import load_dataset
from desire.errors import UserError
from model.network import DesireNet, class_activity

__all__ = [
    "DEFAULT_BATCH",
    "CheckpointError",
    "Dataset",
    "EvalStats",
    "TrainOptions",
    "default_run_dir",
    "evaluate",
    "load_checkpoint",
    "load_data",
    "net_from_checkpoint",
    "save_checkpoint",
    "train",
    "train_epoch",
]

CHECKPOINT_FORMAT = 1
#: Fastest batch size within 0.3 points of batch 1 after equal epochs (bench/batch_study.py).
DEFAULT_BATCH = 8
DEFAULT_DATASET = "fashion-mnist"
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}


class CheckpointError(UserError, ValueError):
    """A checkpoint file is missing, unreadable or does not fit the network."""


@dataclass(frozen=True)
class Dataset:
    """Images ``(N, 784)`` uint8 and labels ``(N,)`` int64, already on the device."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]


@dataclass(frozen=True)
class TrainOptions:
    """Everything about a run that is not part of the network config."""

    out: Path
    dataset: str = DEFAULT_DATASET
    epochs: int = 1
    batch_size: int = 1
    eval_batch_size: int = 500
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    data_dir: Path | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    quiet: bool = False
    resume: bool = False


@dataclass
class EvalStats:
    """Accuracy, mean local loss per layer and throughput of one evaluation."""

    accuracy: float
    local_loss: list[float]
    samples_per_s: float
    activity: list[Tensor] = field(default_factory=list)


def default_run_dir(dataset: str) -> Path:
    return Path("runs") / f"{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def load_data(
    dataset: str,
    split: str,
    device: torch.device,
    data_dir: Path | None = None,
    limit: int | None = None,
) -> Dataset:
    """Load a split through :mod:`desire.datasets` and move it to the device once."""
    images, labels = load_dataset(dataset, split=split, data_dir=data_dir, limit=limit)
    return Dataset(
        torch.from_numpy(images).to(device),
        torch.from_numpy(labels).to(device=device, dtype=torch.long),
    )


def _sync(device: torch.device) -> None:
    """Wait for queued kernels so wall-clock throughput is honest on CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _progress(total: int, desc: str, quiet: bool) -> tqdm:
    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="sample", disable=disable, leave=False)


def train_epoch(
    net: DesireNet,
    data: Dataset,
    epoch: int,
    batch_size: int,
    shuffle: torch.Generator,
    quiet: bool = True,
) -> dict[str, Any]:
    """One pass over a reshuffled training set at the epoch's learning rate.

    Accuracy (strict max, with dropout active) and local losses are summed on
    the device and read back once at the end, to keep the GPU queue full.
    """
    lr = net.network.lr_at(epoch)
    order = torch.randperm(len(data), generator=shuffle).to(data.labels.device)
    correct = torch.zeros((), device=net.device, dtype=torch.long)
    loss = torch.zeros(len(net.layers), device=net.device, dtype=net.dtype)
    start = time.perf_counter()
    with _progress(len(data), f"epoch {epoch}", quiet) as bar:
        for first in range(0, len(data), batch_size):
            idx = order[first : first + batch_size]
            step = net.train_step(data.images[idx], data.labels[idx], lr)
            correct += step.correct.sum()
            loss += step.local_loss
            bar.update(idx.shape[0])
    _sync(net.device)
    elapsed = time.perf_counter() - start
    n = len(data)
    return {
        "lr": lr,
        "train_acc": correct.item() / n,
        "train_local_loss": (loss / n).tolist(),
        "train_samples_per_s": n / elapsed,
    }


@torch.no_grad()
def evaluate(
    net: DesireNet,
    data: Dataset,
    batch_size: int = 500,
    activity: bool = False,
    quiet: bool = True,
) -> EvalStats:
    """Strict-max accuracy, local loss per layer and optionally per-class spike activity.

    ``activity`` gives, per neuron layer above the input, the mean spike
    count per class ``(n_classes, n)`` (the paper's Fig. 7).
    """
    n_classes = net.network.layers[-1]
    correct = torch.zeros((), device=net.device, dtype=torch.long)
    loss = torch.zeros(len(net.layers), device=net.device, dtype=net.dtype)
    sums = [
        torch.zeros(n_classes, n, device=net.device, dtype=net.dtype)
        for n in net.network.layers[1:]
    ]
    per_class = torch.zeros(n_classes, device=net.device, dtype=torch.long)
    start = time.perf_counter()
    with _progress(len(data), "eval", quiet) as bar:
        for first in range(0, len(data), batch_size):
            images = data.images[first : first + batch_size]
            labels = data.labels[first : first + batch_size]
            res = net.evaluate(images, labels)
            correct += res.correct.sum()
            loss += res.local_loss
            if activity:
                for total, counts in zip(sums, res.counts, strict=True):
                    s, k = class_activity(counts, labels, n_classes)
                    total += s
                per_class += k
            bar.update(labels.shape[0])
    _sync(net.device)
    elapsed = time.perf_counter() - start
    n = len(data)
    means = [(s / per_class.clamp(min=1).unsqueeze(1)).cpu() for s in sums] if activity else []
    return EvalStats(correct.item() / n, (loss / n).tolist(), n / elapsed, means)


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a temp file in the same folder, then ``os.replace``.

    A crash mid-write therefore never leaves a truncated ``last.pt``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    missing = {"format", "weights", "config", "epoch"} - set(
        state if isinstance(state, dict) else ()
    )
    if missing:
        raise CheckpointError(f"{path} is not a desire checkpoint (missing {sorted(missing)})")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: unsupported checkpoint format {state['format']}")
    return state


def _checkpoint_state(
    net: DesireNet, epoch: int, best_acc: float, shuffle: torch.Generator, opts: TrainOptions
) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "weights": [w.detach().cpu() for w in net.weights],
        "config": net.config.to_dict(),
        "epoch": epoch,
        "best_test_acc": best_acc,
        "rng": {"mask": net.mask_generator.get_state(), "shuffle": shuffle.get_state()},
        "dataset": opts.dataset,
        "seed": opts.seed,
    }


def net_from_checkpoint(
    state: dict[str, Any],
    config: Config | None = None,
    device: str = "cpu",
    dtype: str = "float32",
) -> DesireNet:
    """Network with the checkpoint's weights; ``config`` overrides the stored one.

    Shapes are checked against the config so that a checkpoint of another
    network fails with a message instead of a matmul error.
    """
    cfg = config if config is not None else Config.from_dict(state["config"])
    net = DesireNet.from_config(cfg, device=device, dtype=DTYPES[dtype], seed=state.get("seed", 0))
    try:
        net.load_weights(list(state["weights"]))
    except ValueError as exc:
        raise CheckpointError(
            f"checkpoint does not fit layers {list(cfg.network.layers)}: {exc}"
        ) from exc
    return net


# ---------------------------------------------------------------- the run


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_log(path: Path, entries: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))


def _start(cfg: Config, opts: TrainOptions) -> tuple[DesireNet, torch.Generator, int, float]:
    """Fresh network, or the state of ``last.pt`` when resuming."""
    shuffle = torch.Generator().manual_seed(opts.seed + 2)
    last = opts.out / "last.pt"
    if not opts.resume or not last.is_file():
        # a fresh run in a used folder starts a fresh log (it would append otherwise)
        _write_log(opts.out / "log.jsonl", [])
        net = DesireNet.from_config(cfg, opts.device, DTYPES[opts.dtype], opts.seed)
        return net, shuffle, 0, -1.0
    state = load_checkpoint(last)
    net = net_from_checkpoint(state, None, opts.device, opts.dtype)
    if net.config != cfg and not opts.quiet:
        print(f"resuming with the config stored in {last}, not the one given", flush=True)
    try:
        net.mask_generator.set_state(state["rng"]["mask"])
        shuffle.set_state(state["rng"]["shuffle"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(
            f"cannot restore the RNG state of {last} on device {opts.device} "
            f"(resume on the device it was saved on): {exc}"
        ) from exc
    log = opts.out / "log.jsonl"
    _write_log(log, [e for e in _read_log(log) if e["epoch"] <= state["epoch"]])
    return net, shuffle, state["epoch"] + 1, state["best_test_acc"]


def train(cfg: Config, opts: TrainOptions) -> list[dict[str, Any]]:
    """Train for ``opts.epochs`` epochs (in total, counting resumed ones); return the log.

    With ``resume`` the config stored in ``last.pt`` wins over ``cfg``.
    """
    device = torch.device(opts.device)
    opts.out.mkdir(parents=True, exist_ok=True)
    net, shuffle, first_epoch, best = _start(cfg, opts)
    (opts.out / "config.json").write_text(net.config.to_json() + "\n")
    train_set = load_data(opts.dataset, "train", device, opts.data_dir, opts.train_limit)
    test_set = load_data(opts.dataset, "test", device, opts.data_dir, opts.test_limit)
    log_path = opts.out / "log.jsonl"
    for epoch in range(first_epoch, opts.epochs):
        entry: dict[str, Any] = {"epoch": epoch}
        entry |= train_epoch(net, train_set, epoch, opts.batch_size, shuffle, opts.quiet)
        stats = evaluate(net, test_set, opts.eval_batch_size, quiet=opts.quiet)
        entry |= {
            "test_acc": stats.accuracy,
            "test_local_loss": stats.local_loss,
            "eval_samples_per_s": stats.samples_per_s,
            "n_train": len(train_set),
            "n_test": len(test_set),
        }
        with log_path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        improved = stats.accuracy > best
        best = max(best, stats.accuracy)
        state = _checkpoint_state(net, epoch, best, shuffle, opts)
        save_checkpoint(opts.out / "last.pt", state)
        if improved:
            save_checkpoint(opts.out / "best.pt", state)
        if not opts.quiet:
            print(_summary(entry), flush=True)
    return _read_log(log_path)


def _summary(e: dict[str, Any]) -> str:
    losses = " ".join(f"{x:.4f}" for x in e["test_local_loss"])
    return (
        f"epoch {e['epoch']}: train {e['train_acc']:.2%} test {e['test_acc']:.2%} "
        f"lr {e['lr']:.3g} loss [{losses}] "
        f"{e['train_samples_per_s']:.0f}/{e['eval_samples_per_s']:.0f} samples/s train/eval"
    )
