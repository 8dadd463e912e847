"""Figures of a training run, saved as PNGs in the run directory.

- ``accuracy.png``: train and test accuracy per epoch (from ``log.jsonl``).
- ``local_loss.png``: mean local test loss per neuron of every layer per epoch,
  with the test accuracy in grey (the paper's Fig. 6).
- ``spike_activity.png``: mean spike count per class of the output neurons
  and of up to 20 neurons of each hidden layer, measured on test samples with
  ``best.pt`` (the paper's Fig. 7, one snapshot).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

from model.train import (
    CheckpointError,
    evaluate,
    load_checkpoint,
    load_data,
    net_from_checkpoint,
)

__all__ = ["plot_accuracy", "plot_local_loss", "plot_run", "plot_spike_activity"]

HIDDEN_NEURONS_SHOWN = 20


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "log.jsonl"
    if not path.is_file():
        raise CheckpointError(f"no training log in {run_dir} (expected {path.name})")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_accuracy(log: list[dict[str, Any]], path: Path) -> Path:
    epochs = [e["epoch"] for e in log]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [100 * e["train_acc"] for e in log], "o-", label="train (with dropout)")
    ax.plot(epochs, [100 * e["test_acc"] for e in log], "s-", label="test")
    ax.set(xlabel="epoch", ylabel="accuracy [%]", title="Accuracy")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_local_loss(log: list[dict[str, Any]], path: Path) -> Path:
    epochs = [e["epoch"] for e in log]
    losses = list(zip(*(e["test_local_loss"] for e in log), strict=True))
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, series in enumerate(losses):
        ax.plot(epochs, series, "o-", label=f"layer {i + 1}")
    ax.set(xlabel="epoch", ylabel="mean local loss per neuron", title="Local test loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper left")
    acc = ax.twinx()
    acc.plot(epochs, [100 * e["test_acc"] for e in log], color="0.6", label="test accuracy")
    acc.set_ylabel("test accuracy [%]", color="0.4")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_spike_activity(activity: list[torch.Tensor], path: Path) -> Path:
    """One heat map per layer: rows are neurons, columns classes, colour the mean count."""
    fig, axes = plt.subplots(len(activity), 1, figsize=(6, 2.2 * len(activity) + 1), squeeze=False)
    last = len(activity) - 1
    for i, (ax, act) in enumerate(zip(axes[:, 0], activity, strict=True)):
        shown = act if i == last else act[:, :HIDDEN_NEURONS_SHOWN]
        im = ax.imshow(shown.T.numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set(ylabel="neuron", title="output layer" if i == last else f"hidden layer {i + 1}")
        ax.set_xticks(range(shown.shape[0]))
        fig.colorbar(im, ax=ax, label="spikes")
    axes[-1, 0].set_xlabel("class")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_run(
    run_dir: Path, data_dir: Path | None = None, test_limit: int | None = 2000, device: str = "cpu"
) -> list[Path]:
    """Write all figures of ``run_dir``; spike activity uses ``best.pt`` on test samples."""
    run_dir = Path(run_dir)
    log = read_log(run_dir)
    written = [
        plot_accuracy(log, run_dir / "accuracy.png"),
        plot_local_loss(log, run_dir / "local_loss.png"),
    ]
    state = load_checkpoint(run_dir / "best.pt")
    net = net_from_checkpoint(state, device=device)
    data = load_data(state["dataset"], "test", net.device, data_dir, test_limit)
    stats = evaluate(net, data, activity=True)
    written.append(plot_spike_activity(stats.activity, run_dir / "spike_activity.png"))
    return written
