"""Trainer checkpoints: atomic writes, checked reads, and the reference code's files.

A checkpoint is a ``torch.save`` dict (``format``, ``weights``, ``config``, ``epoch``,
RNG states, the run's log). :func:`load_checkpoint` also reads a ``state_dict`` saved by
the published reference implementation (``model/reference_checkpoint.py``) and turns it
into one of ours, so ``--model-path`` takes either.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from desire.atomic import atomic_write
from desire.config import PRESETS, Config
from desire.errors import CheckpointError, UserError
from model.network import DesireNet
from model.reference_checkpoint import (
    is_reference_state_dict,
    reference_layers,
    reference_weights,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "DTYPES",
    "CheckpointError",
    "checkpoint_weights",
    "load_checkpoint",
    "net_from_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = 1
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write atomically (:func:`desire.atomic.atomic_write`): a crash never leaves a
    truncated checkpoint, and a full disk leaves the previous one intact.

    The state is serialised in memory first, so that a full disk shows up as the
    ``ENOSPC`` of a plain write (one clear line), not as torch's zip-writer error.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(Path(path), lambda f: f.write(buffer.getbuffer()))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {_torch_reason(exc)}") from exc
    if is_reference_state_dict(state):
        return _from_reference(state, path)
    missing = {"format", "weights", "config", "epoch"} - set(
        state if isinstance(state, dict) else ()
    )
    if missing:
        raise CheckpointError(f"{path} is not a desire checkpoint (missing {sorted(missing)})")
    if not isinstance(state["format"], int) or state["format"] != CHECKPOINT_FORMAT:
        fmt = " ".join(repr(state["format"]).split())[:40]
        raise CheckpointError(f"{path}: unsupported checkpoint format {fmt}")
    _check_fields(state, path)
    return state


def _check_fields(state: dict[str, Any], path: Path) -> None:
    """Types of the fields every reader relies on: a damaged or edited file is refused here,
    not deep inside the trainer."""
    weights = state["weights"]
    if not isinstance(weights, list | tuple) or not weights:
        raise CheckpointError(f"{path}: 'weights' is not a list of weight matrices")
    for l, w in enumerate(weights):
        if not (isinstance(w, torch.Tensor) and w.ndim == 2 and w.is_floating_point()):
            raise CheckpointError(f"{path}: weights[{l}] is not a 2-D floating-point tensor")
    if not isinstance(state["epoch"], int) or isinstance(state["epoch"], bool):
        raise CheckpointError(f"{path}: 'epoch' is not an integer")
    try:
        Config.from_dict(state["config"])
    except UserError as exc:
        reason = " ".join(str(exc).split())  # one line, whatever value it quotes
        raise CheckpointError(f"{path}: its config is invalid: {reason}") from exc


def _from_reference(state_dict: Any, path: Path) -> dict[str, Any]:
    """A checkpoint of the published reference code (``model.state_dict()``) as ours.

    It stores weights only: the layer sizes come from their shapes, every other
    hyper-parameter from the reference's defaults unless flags or a config override it.
    """
    weights = reference_weights(state_dict, str(path))
    cfg = PRESETS["default"].replace(network={"layers": reference_layers(weights)})
    return {
        "format": CHECKPOINT_FORMAT,
        "weights": [w.float() for w in weights],
        "config": cfg.to_dict(),
        "epoch": -1,
        "reference": True,
    }


def _torch_reason(exc: Exception) -> str:
    """torch.load's first line, without its advice to unpickle untrusted files."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if "weights_only" in str(exc) or "Unpickling" in str(exc):
        return "not a PyTorch checkpoint of tensors (unreadable or unsafe pickle)"
    if isinstance(exc, OSError) or "Errno" in first:
        return "the file is truncated or not a checkpoint"
    return first.rstrip(".")


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


def checkpoint_weights(state: dict[str, Any], cfg: Config, source: Path) -> list[np.ndarray]:
    """The checkpoint's float weights as float64 arrays, checked against ``cfg``'s layers
    and for NaN or infinity (a diverged training), before any quantisation."""
    weights = [torch.as_tensor(w).double().numpy() for w in state["weights"]]
    layers = cfg.network.layers
    expected = [(n_out, n_in) for n_in, n_out in itertools.pairwise(layers)]
    shapes = [tuple(w.shape) for w in weights]
    if shapes != expected:
        raise CheckpointError(
            f"{source} holds weights of shapes {shapes}; layers {list(layers)} need {expected}"
        )
    for l, w in enumerate(weights):
        if not np.isfinite(w).all():
            raise CheckpointError(
                f"{source}: layer {l} holds {int((~np.isfinite(w)).sum())} NaN or infinite "
                "weights (the training diverged; a smaller --lr helps)"
            )
    return weights
