"""Figures of a training run, saved as PNGs in the run directory.

- ``accuracy.png``: train and test accuracy per epoch (from ``log.jsonl``).
- ``local_loss.png``: mean local test loss per neuron of every layer per epoch,
  with the test accuracy in grey (the paper's Fig. 6).
- ``spike_activity.png``: mean spike count per class of the output neurons
  and of up to 20 neurons of each hidden layer, measured on test samples with
  ``best.pt`` (the paper's Fig. 7, one snapshot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

from desire.atomic import atomic_write
from desire.rundir import LOG_NAME, LogError, read_log
from model.checkpoint import load_checkpoint, net_from_checkpoint
from model.train import PLOT_FILES, evaluate, load_data

__all__ = ["plot_accuracy", "plot_local_loss", "plot_run", "plot_spike_activity"]

HIDDEN_NEURONS_SHOWN = 20
FASHION_MNIST_CLASSES = (
    "T-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "boot",
)


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
    return _save(fig, path)


def plot_local_loss(log: list[dict[str, Any]], path: Path) -> Path:
    epochs = [e["epoch"] for e in log]
    losses = list(zip(*(e["test_local_loss"] for e in log), strict=True))
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, series in enumerate(losses):
        ax.plot(epochs, series, "o-", label=_layer_name(i, len(losses)))
    ax.set(xlabel="epoch", ylabel="mean local loss per neuron", title="Local test loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    acc = ax.twinx()
    acc.plot(epochs, [100 * e["test_acc"] for e in log], "--", color="0.6", label="test accuracy")
    acc.set_ylabel("test accuracy [%]", color="0.4")
    # one legend for both axes, outside the plot so that it hides no point
    lines = ax.get_lines() + acc.get_lines()
    fig.legend(lines, [ln.get_label() for ln in lines], loc="outside right upper")
    fig.set_layout_engine("constrained")
    return _save(fig, path)


def plot_spike_activity(activity: list[torch.Tensor], path: Path, dataset: str = "") -> Path:
    """One heat map per layer: rows are neurons, columns classes, colour the mean count."""
    fig, axes = plt.subplots(len(activity), 1, figsize=(6, 2.2 * len(activity) + 1), squeeze=False)
    last = len(activity) - 1
    for i, (ax, act) in enumerate(zip(axes[:, 0], activity, strict=True)):
        shown = act if i == last else act[:, :HIDDEN_NEURONS_SHOWN]
        im = ax.imshow(shown.T.numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
        title = _layer_name(i, len(activity))
        if shown.shape[1] < act.shape[1]:
            title += f" (first {shown.shape[1]} of {act.shape[1]} neurons)"
        ax.set(ylabel="neuron", title=title)
        names = _class_names(dataset, shown.shape[0])
        ax.set_xticks(range(len(names)), labels=names, fontsize=7)
        fig.colorbar(im, ax=ax, label="mean spikes")
    axes[-1, 0].set_xlabel("class")
    fig.tight_layout()
    return _save(fig, path)


def _layer_name(i: int, n: int) -> str:
    return "output layer" if i == n - 1 else f"hidden layer {i + 1}"


def _class_names(dataset: str, n: int) -> list[str]:
    if dataset == "fashion-mnist" and n == len(FASHION_MNIST_CLASSES):
        return list(FASHION_MNIST_CLASSES)
    return [str(k) for k in range(n)]


def _save(fig: plt.Figure, path: Path) -> Path:
    """Save beside and rename into place: a reader never sees half a PNG."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)
    return path


def plot_run(
    run_dir: Path, data_dir: Path | None = None, test_limit: int | None = 2000, device: str = "cpu"
) -> list[Path]:
    """Write all figures of ``run_dir``; spike activity uses ``best.pt`` on test samples.

    Works on a live run too (it takes no lock): the log is read as far as it is whole.
    """
    run_dir = Path(run_dir)
    log = read_log(run_dir / LOG_NAME)
    if not log:
        raise LogError(f"no finished epoch in {run_dir} (expected {LOG_NAME} with entries)")
    accuracy_png, loss_png, activity_png = (run_dir / name for name in PLOT_FILES)
    written = [plot_accuracy(log, accuracy_png), plot_local_loss(log, loss_png)]
    state = load_checkpoint(run_dir / "best.pt")
    net = net_from_checkpoint(state, device=device)
    data = load_data(state["dataset"], "test", net.device, data_dir, test_limit)
    stats = evaluate(net, data, activity=True)
    written.append(plot_spike_activity(stats.activity, activity_png, state["dataset"]))
    return written
