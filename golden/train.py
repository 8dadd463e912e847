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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from desire.config import Config
from desire.datafit import check_fits_data
from desire.rundir import LOG_NAME, RunFolder, Start, append_log, read_log, write_log
from golden.export import ExportError, load_export, write_export
from golden.fixed import Constants
from golden.network import strict_argmax
from golden.prng import XorShift32

__all__ = [
    "RUN_MARKS",
    "OnlineNet",
    "OnlineRun",
    "Progress",
    "accuracy",
    "restore",
    "resume_state",
    "run_folder",
    "run_online",
    "train_online",
]

#: what ``last/`` must record to resume a run, with the type of each
_STATE_KEYS = {"epoch": int, "best": float, "dropout_rng": int, "rounding_rng": int}

#: names whose presence means a folder holds an online run (all of them the run's own)
RUN_MARKS = (LOG_NAME, "last", "best")
#: The weights a run started from (an export), written before its first sample: a run
#: killed before its first epoch ended resumes from them, not from new random weights
#: (which would silently drop a ``--model-path`` start).
INITIAL = "initial"


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


@dataclass
class Progress:
    """Where a run stands: the next epoch, the best (test accuracy, epoch), the log so far."""

    first_epoch: int = 0
    best: tuple[float, int] = (-1.0, -1)
    log: list[dict[str, Any]] = field(default_factory=list)


def run_folder(path: Path) -> RunFolder:
    """An online run's folder: its log and the ``last/`` and ``best/`` exports."""
    return RunFolder(Path(path), (*RUN_MARKS, INITIAL), (*RUN_MARKS, INITIAL), "online training")


def accuracy(net: OnlineNet, x: np.ndarray, y: np.ndarray) -> float:
    """Strict-max accuracy of integer inference."""
    return float((strict_argmax(net.infer(x)) == y).mean()) if len(y) else 0.0


def resume_state(out: Path) -> tuple[Config, list[np.ndarray], dict[str, Any]] | None:
    """``out/last``'s config, weights and saved state; None for a run killed in epoch 0."""
    if not (out / "last").exists():
        return None
    cfg, weights, manifest = load_export(out / "last")
    state = manifest.get("golden_state")
    if not _resumable(state):
        raise ExportError(
            f"{out / 'last'} holds no resumable training state (golden_state with "
            f"{', '.join(_STATE_KEYS)}); it is an export, not a run's checkpoint"
        )
    return cfg, weights, state


def _resumable(state: object) -> bool:
    return isinstance(state, dict) and all(
        isinstance(state.get(k), t) and not isinstance(state.get(k), bool)
        for k, t in _STATE_KEYS.items()
    )


def restore(net: OnlineNet, out: Path, state: dict[str, Any]) -> Progress:
    """Put ``last/``'s PRNG states into ``net`` and return where the run stands.

    The log comes from the checkpoint, so log.jsonl never holds an epoch twice; a
    ``best/`` older than the best epoch ``last/`` records (a crash between the two
    writes) is written again from ``last/``'s weights, which are that epoch.
    """
    net.dropout_rng.state, net.rounding_rng.state = state["dropout_rng"], state["rounding_rng"]
    epoch = state["epoch"]
    log = state.get("log") or [e for e in read_log(out / LOG_NAME) if e["epoch"] <= epoch]
    best = (state["best"], state.get("best_epoch", -1))
    if best[1] == epoch and _saved_epoch(out / "best") != epoch:
        write_export(out / "best", net.cfg, net.int_weights(), {"golden_state": state}, True)
    return Progress(epoch + 1, best, log)


def _saved_epoch(export: Path) -> int | None:
    try:
        return load_export(export)[2]["golden_state"]["epoch"]
    except (ExportError, KeyError, TypeError):
        return None


def _save(net: OnlineNet, run: OnlineRun, epoch: int, progress: Progress, improved: bool) -> None:
    """``last/`` first (the commit point), then ``best/``; each swapped in atomically."""
    state = {
        "golden_state": {
            "epoch": epoch,
            "best": progress.best[0],
            "best_epoch": progress.best[1],
            "seed": run.seed,
            "dropout_rng": net.dropout_rng.state,
            "rounding_rng": net.rounding_rng.state,
            "log": progress.log,
        }
    }
    weights = net.int_weights()
    write_export(run.out / "last", net.cfg, weights, state, force=True)
    if improved:
        write_export(run.out / "best", net.cfg, weights, state, force=True)


def train_online(
    net: OnlineNet,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    run: OnlineRun,
    progress: Progress | None = None,
) -> list[dict]:
    """Epochs ``progress.first_epoch .. run.epochs - 1``; exports and a log line after each.

    The caller holds the run folder (:meth:`RunFolder.open`); the log is rewritten
    from ``progress`` first, so a resumed run never appends to a stale one.
    """
    (x, y), (xt, yt) = train, test
    progress = progress or Progress()
    write_log(run.out / LOG_NAME, progress.log)
    if net.c.lr_int(progress.first_epoch) == 0:
        print(
            f"warning: lr {net.cfg.network.lr:g} rounds to a learning-rate register of 0 with "
            f"lr_shift {net.cfg.formats.lr_shift}: the weights will not change",
            file=sys.stderr,
        )
    for epoch in range(progress.first_epoch, run.epochs):
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
        progress.log.append(row)
        improved = test_acc > progress.best[0]
        if improved:
            progress.best = (test_acc, epoch)
        _save(net, run, epoch, progress, improved)
        append_log(run.out / LOG_NAME, row)
        if not run.quiet:
            print(json.dumps(row), flush=True)
    return progress.log


def run_online(
    run: OnlineRun,
    start: Start,
    fresh: Callable[[], OnlineNet],
    resumed: Callable[[Config, list[np.ndarray]], OnlineNet],
    data: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    dataset: str,
) -> list[dict]:
    """A whole online run in its folder, for ``python -m golden train`` and
    ``python -m model train --arith fixed``: checks, lock, fresh start or resume, epochs.

    ``fresh`` builds the starting network, ``resumed`` one from ``last/``'s config and
    weights. Everything that can be refused is refused before the folder is created.
    """
    folder = run_folder(run.out)
    folder.check(start)
    (x, y), test = data
    net = None if start is Start.RESUME else fresh()
    if net is not None:
        check_fits_data(net.cfg.network.layers, x.shape[1], int(y.max()) + 1, dataset)
    with folder.open(start):
        progress = None
        if net is None:
            saved = resume_state(run.out)
            if saved is not None:
                net = resumed(saved[0], saved[1])
                progress = restore(net, run.out, saved[2])
            elif (run.out / INITIAL).exists():  # killed before its first epoch ended
                net = resumed(*load_export(run.out / INITIAL)[:2])
            else:  # the same, in a folder from before INITIAL was written
                net = fresh()
        else:
            write_export(run.out / INITIAL, net.cfg, net.int_weights(), force=True)
        check_fits_data(net.cfg.network.layers, x.shape[1], int(y.max()) + 1, dataset)
        return train_online(net, (x, y), test, run, progress)
