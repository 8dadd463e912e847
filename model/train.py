"""Training and evaluation loops, per-epoch JSONL log and atomic checkpoints.

A run directory holds ``config.json``, ``log.jsonl`` (one line per epoch),
``last.pt`` (written every epoch) and ``best.pt`` (written when the test
accuracy improves). Checkpoints carry the RNG states of the dropout masks and
of the shuffling, so ``resume`` continues exactly where ``last.pt`` left off;
a crash loses at most the epoch in progress.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from desire.atomic import atomic_write, atomic_write_text
from desire.config import Config, load_config
from desire.datafit import check_fits_data
from desire.datasets import load_dataset
from desire.errors import UserError
from desire.rundir import LOG_NAME, RunFolder, Start, append_log, read_log, write_log
from model.checkpoint import (
    CHECKPOINT_FORMAT,
    DTYPES,
    CheckpointError,
    load_checkpoint,
    net_from_checkpoint,
    save_checkpoint,
)
from model.cuda_graph import GraphedStep
from model.network import DesireNet, class_activity

__all__ = [
    "DEFAULT_BATCH",
    "PLOT_FILES",
    "RUN_MARKS",
    "Dataset",
    "EvalStats",
    "TrainOptions",
    "batch_lr",
    "batch_sizes",
    "default_run_dir",
    "evaluate",
    "load_data",
    "run_folder",
    "train",
    "train_epoch",
]

#: Largest batch size measured within 0.5 points of batch 1 after equal full-data epochs,
#: with the summed update at the online rate (bench/results/batching_rule.json: batch 32
#: -0.10 points on 784-1000-100-10 after 3 epochs, +0.03 on 784-256-10 after 4; batch
#: 128 lost 0.9 on both).
DEFAULT_BATCH = 32
DEFAULT_DATASET = "fashion-mnist"
#: names whose presence means a folder holds a run of the trainer
RUN_MARKS = ("config.json", LOG_NAME, "last.pt", "best.pt")
#: The weights a run started from, written before its first step: a run killed before
#: its first epoch ended resumes from them (a ``--model-path`` start included), not from
#: new random weights.
INITIAL = "initial.npz"
#: figures ``python -m model plot`` writes into a run folder (owned by the run too)
PLOT_FILES = ("accuracy.png", "local_loss.png", "spike_activity.png")


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
    force: bool = False
    download: bool = False
    #: batch learning-rate rule, :func:`batch_lr` (0: the summed update at the online rate)
    lr_batch_power: float = 0.0
    #: training samples over which the batch grows from 1 to ``batch_size``, :func:`batch_sizes`
    batch_warmup: int = 0
    #: replay each full training batch as a recorded CUDA graph (CUDA devices only)
    cuda_graph: bool = False
    #: a fresh run's starting weights (float, checked against the config); None: random
    initial_weights: list[np.ndarray] | None = None


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
    download: bool = False,
) -> Dataset:
    """Load a split through :mod:`desire.datasets` and move it to the device once."""
    images, labels = load_dataset(dataset, split, data_dir, download, limit)
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


def batch_lr(lr: float, batch_size: int, power: float) -> float:
    """Learning rate applied to a batch's *summed* update: ``lr * batch_size ** -power``.

    ``power`` 0 applies the sum at the online rate (every sample's update at full size,
    all computed from the same weights), 1 applies the mean, 0.5 lies between; a
    negative power raises the rate with the batch (bench/sweep.py measures which keeps
    batch 1's accuracy after equal epochs: bench/results/batching_rule.json).
    """
    return lr * batch_size**-power


def batch_sizes(n: int, start: int, batch_size: int, warmup: int) -> list[int]:
    """Sizes of the batches that cover ``n`` samples, from the run's sample ``start`` on.

    Within the first ``warmup`` samples of a run the batch is ``batch_size`` times the
    fraction of the warm-up done, rounded down to a power of two (at least 1): batch 1
    for the first ``warmup / batch_size`` samples, then 2, 4, ... Early training is
    where a large batch's stale weights cost most (every sample's update computed from
    the same weights); the small batches cover few samples, so the warm-up costs little
    time (bench/results/batch_warmup.json).
    """
    sizes, seen = [], start
    while seen < start + n:
        b = batch_size
        if seen < warmup:
            ramp = max(1, batch_size * seen // warmup)
            b = min(batch_size, 1 << (ramp.bit_length() - 1))
        b = min(b, start + n - seen)
        sizes.append(b)
        seen += b
    return sizes


def _graphed_step(net: DesireNet, batch_size: int, lr: float) -> GraphedStep | None:
    """The recorded step, or None (eager steps, said on stderr) where recording fails."""
    try:
        return GraphedStep(net, batch_size, lr)
    except RuntimeError as exc:
        print(f"CUDA graph not recorded, training eagerly: {exc}", file=sys.stderr, flush=True)
        return None


def train_epoch(
    net: DesireNet,
    data: Dataset,
    epoch: int,
    batch_size: int,
    shuffle: torch.Generator,
    quiet: bool = True,
    lr_batch_power: float = 0.0,
    cuda_graph: bool = False,
    batch_warmup: int = 0,
) -> dict[str, Any]:
    """One pass over a reshuffled training set at the epoch's learning rate.

    Accuracy (strict max, with dropout active) and local losses are summed on
    the device and read back once at the end, to keep the GPU queue full. With
    ``cuda_graph`` (CUDA only) every full batch replays one recorded step
    (:mod:`model.cuda_graph`); shorter ones (the warm-up's, the last) run eagerly.
    """
    epoch_lr = net.network.lr_at(epoch)
    lr = batch_lr(epoch_lr, batch_size, lr_batch_power)
    order = torch.randperm(len(data), generator=shuffle).to(data.labels.device)
    correct = torch.zeros((), device=net.device, dtype=torch.long)
    loss = torch.zeros(len(net.layers), device=net.device, dtype=net.dtype)
    graphed = _graphed_step(net, batch_size, lr) if cuda_graph else None
    start = time.perf_counter()
    with _progress(len(data), f"epoch {epoch}", quiet) as bar:
        first = 0
        for size in batch_sizes(len(data), epoch * len(data), batch_size, batch_warmup):
            idx = order[first : first + size]
            first += size
            if graphed is not None and size == batch_size:
                ok, step_loss = graphed(data.images[idx], data.labels[idx])
            else:
                step_lr = lr if size == batch_size else batch_lr(epoch_lr, size, lr_batch_power)
                step = net.train_step(data.images[idx], data.labels[idx], step_lr)
                ok, step_loss = step.correct, step.local_loss
            correct += ok.sum()
            loss += step_loss
            bar.update(idx.shape[0])
    _sync(net.device)
    elapsed = time.perf_counter() - start
    n = len(data)
    return {
        "lr": lr,
        "batch_size": batch_size,
        "lr_batch_power": lr_batch_power,
        "batch_warmup": batch_warmup,
        "cuda_graph": graphed is not None,
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


# ---------------------------------------------------------------- the run


def _checkpoint_state(
    net: DesireNet,
    epoch: int,
    best: tuple[float, int],
    shuffle: torch.Generator,
    opts: TrainOptions,
    log: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "weights": [w.detach().cpu() for w in net.weights],
        "config": net.config.to_dict(),
        "epoch": epoch,
        "best_test_acc": best[0],
        "best_epoch": best[1],
        "rng": {"mask": net.mask_generator.get_state(), "shuffle": shuffle.get_state()},
        "dataset": opts.dataset,
        "seed": opts.seed,
        # the log up to this epoch: a resume rebuilds log.jsonl from it, so the log never
        # holds an epoch the checkpoint does not, nor misses one it does
        "log": log,
    }


def run_folder(path: Path) -> RunFolder:
    """The trainer's run folder: its checkpoints, log and config, and the plots of it."""
    return RunFolder(Path(path), RUN_MARKS, (*RUN_MARKS, *PLOT_FILES, INITIAL), "model train")


@dataclass
class _Run:
    """The state a run starts from: fresh, or ``last.pt``'s when resuming."""

    net: DesireNet
    shuffle: torch.Generator
    first_epoch: int
    best: tuple[float, int]
    log: list[dict[str, Any]]


def _fresh(cfg: Config, opts: TrainOptions) -> _Run:
    shuffle = torch.Generator().manual_seed(opts.seed + 2)
    net = DesireNet.from_config(cfg, opts.device, DTYPES[opts.dtype], opts.seed)
    if opts.initial_weights is not None:
        net.load_weights([torch.from_numpy(w) for w in opts.initial_weights])
    return _Run(net, shuffle, 0, (-1.0, -1), [])


def _resume(cfg: Config, opts: TrainOptions) -> _Run:
    """The state of ``last.pt``; the run's stored config wins over ``cfg``."""
    last = opts.out / "last.pt"
    if not last.is_file():
        # killed before its first epoch ended: start that run again, with its config and
        # the weights it started from
        stored = opts.out / "config.json"
        if (opts.out / INITIAL).is_file():
            opts = dataclasses.replace(opts, initial_weights=_load_initial(opts.out / INITIAL))
        return _fresh(load_config(stored) if stored.is_file() else cfg, opts)
    state = load_checkpoint(last)
    net = net_from_checkpoint(state, None, opts.device, opts.dtype)
    if net.config != cfg and not opts.quiet:
        print(f"resuming with the config stored in {last}, not the one given", flush=True)
    shuffle = torch.Generator()
    try:
        net.mask_generator.set_state(state["rng"]["mask"])
        shuffle.set_state(state["rng"]["shuffle"])
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(
            f"cannot restore the RNG state of {last} on device {opts.device} "
            f"(resume on the device it was saved on): {exc}"
        ) from exc
    epoch = state["epoch"]
    log = state.get("log") or [e for e in read_log(opts.out / LOG_NAME) if e["epoch"] <= epoch]
    best = (state["best_test_acc"], state.get("best_epoch", -1))
    _repair_best(opts.out, state, best[1])
    return _Run(net, shuffle, epoch + 1, best, log)


def _save_initial(out: Path, net: DesireNet) -> None:
    arrays = [w.detach().cpu().numpy() for w in net.weights]
    atomic_write(out / INITIAL, lambda f: np.savez(f, *arrays))


def _load_initial(path: Path) -> list[np.ndarray]:
    try:
        with np.load(path) as saved:
            return [saved[f"arr_{i}"] for i in range(len(saved.files))]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"cannot read the run's start weights {path}: {exc}") from None


def _repair_best(out: Path, last_state: dict[str, Any], best_epoch: int) -> None:
    """After a crash between writing ``last.pt`` and ``best.pt``, ``best.pt`` is older than
    the best epoch ``last.pt`` records; that epoch *is* ``last.pt``, so copy it over."""
    if best_epoch != last_state["epoch"]:
        return
    best = out / "best.pt"
    try:
        current = load_checkpoint(best)["epoch"] if best.is_file() else None
    except CheckpointError:
        current = None
    if current != best_epoch:
        save_checkpoint(best, last_state)


def _check_fits(cfg: Config, data: Dataset, dataset: str) -> None:
    n_classes = int(data.labels.max()) + 1
    check_fits_data(cfg.network.layers, data.images.shape[1], n_classes, dataset)


def train(cfg: Config, opts: TrainOptions) -> list[dict[str, Any]]:
    """Train for ``opts.epochs`` epochs (in total, counting resumed ones); return the log.

    Data, config and folder are checked before anything is written; the folder is
    locked while the run lasts. With ``resume`` the config stored in the run wins.
    """
    device = torch.device(opts.device)
    if not -1.0 <= opts.lr_batch_power <= 1.0:
        raise UserError(f"--lr-batch-power must be in [-1, 1], got {opts.lr_batch_power}")
    if opts.batch_warmup < 0:
        raise UserError(f"--batch-warmup must be 0 or more samples, got {opts.batch_warmup}")
    if opts.cuda_graph and device.type != "cuda":
        raise UserError(f"CUDA graphs need a CUDA device, not {opts.device}")
    folder = run_folder(opts.out)
    start = Start.from_flags(opts.resume, opts.force)
    folder.check(start)
    train_set = load_data(
        opts.dataset, "train", device, opts.data_dir, opts.train_limit, opts.download
    )
    test_set = load_data(
        opts.dataset, "test", device, opts.data_dir, opts.test_limit, opts.download
    )
    if start is not Start.RESUME:
        _check_fits(cfg, train_set, opts.dataset)
    with folder.open(start):
        run = _resume(cfg, opts) if start is Start.RESUME else _fresh(cfg, opts)
        if start is not Start.RESUME:
            _save_initial(opts.out, run.net)
        _check_fits(run.net.config, train_set, opts.dataset)
        atomic_write_text(opts.out / "config.json", run.net.config.to_json() + "\n")
        write_log(folder.log, run.log)
        _epochs(run, train_set, test_set, opts, folder.log)
    return run.log


def _epochs(
    run: _Run, train_set: Dataset, test_set: Dataset, opts: TrainOptions, log_path: Path
) -> None:
    """Train, evaluate and commit each epoch: ``last.pt`` first (the commit), then
    ``best.pt`` if it improved, then the log line (rebuilt from ``last.pt`` on resume)."""
    net = run.net
    for epoch in range(run.first_epoch, opts.epochs):
        entry: dict[str, Any] = {"epoch": epoch}
        entry |= train_epoch(
            net,
            train_set,
            epoch,
            opts.batch_size,
            run.shuffle,
            opts.quiet,
            opts.lr_batch_power,
            opts.cuda_graph,
            opts.batch_warmup,
        )
        stats = evaluate(net, test_set, opts.eval_batch_size, quiet=opts.quiet)
        entry |= {
            "test_acc": stats.accuracy,
            "test_local_loss": stats.local_loss,
            "eval_samples_per_s": stats.samples_per_s,
            "n_train": len(train_set),
            "n_test": len(test_set),
        }
        run.log.append(entry)
        improved = stats.accuracy > run.best[0]
        if improved:
            run.best = (stats.accuracy, epoch)
        state = _checkpoint_state(net, epoch, run.best, run.shuffle, opts, run.log)
        save_checkpoint(opts.out / "last.pt", state)
        if improved:
            save_checkpoint(opts.out / "best.pt", state)
        append_log(log_path, entry)
        if not opts.quiet:
            print(_summary(entry), flush=True)


def _summary(e: dict[str, Any]) -> str:
    losses = " ".join(f"{x:.4f}" for x in e["test_local_loss"])
    return (
        f"epoch {e['epoch']}: train {e['train_acc']:.2%} test {e['test_acc']:.2%} "
        f"lr {e['lr']:.3g} loss [{losses}] "
        f"{e['train_samples_per_s']:.0f}/{e['eval_samples_per_s']:.0f} samples/s train/eval"
    )
