"""Quantise a float checkpoint to the accelerator's formats and write the export files.

The export (npz, one ``$readmemh`` file per weight memory, manifest.json; see
golden/export.py) carries the config, so golden/, rtl/ and sim/ rebuild the
same network from it. The float and fixed-point test accuracies are measured
side by side on the same images and stored in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from desire.config import Config
from golden import GoldenNet, strict_argmax
from golden.export import check_target, write_export
from model.checkpoint import checkpoint_weights, load_checkpoint, net_from_checkpoint

__all__ = ["ExportResult", "export_checkpoint"]


@dataclass(frozen=True)
class ExportResult:
    path: Path
    float_accuracy: float | None
    fixed_accuracy: float | None
    clipped_weights: int


def export_checkpoint(
    model_path: str | Path,
    out: str | Path,
    config: Config | None = None,
    test_data: tuple[np.ndarray, np.ndarray] | None = None,
    force: bool = False,
) -> ExportResult:
    """Quantise ``model_path``'s weights with ``config``'s formats (default: its own config).

    With ``test_data`` both the float (trainer) and the integer (golden) accuracy
    are measured on it and recorded in the manifest. ``force`` replaces an earlier
    export at ``out`` (never any other folder: see :func:`golden.export.check_target`).
    """
    check_target(Path(out), force)
    state = load_checkpoint(Path(model_path))
    cfg = config or Config.from_dict(state["config"])
    weights = checkpoint_weights(state, cfg, Path(model_path))
    float_net = net_from_checkpoint(state, cfg)
    golden = GoldenNet.from_float(cfg, weights)
    lo, hi = golden.c.weight_range
    scale = 2.0**golden.c.weight_frac
    clipped = sum(int(((w * scale < lo - 0.5) | (w * scale > hi + 0.5)).sum()) for w in weights)
    float_acc = fixed_acc = None
    if test_data is not None:
        x, y = test_data
        result = float_net.evaluate(torch.as_tensor(x), torch.as_tensor(y))
        float_acc = float(result.correct.float().mean())
        fixed_acc = float((strict_argmax(golden.infer(x)) == y).mean())
    extra = {
        "source": str(model_path),
        "float_accuracy": float_acc,
        "fixed_accuracy": fixed_acc,
        "test_samples": None if test_data is None else len(test_data[1]),
        "clipped_weights": clipped,
    }
    path = write_export(out, cfg, golden.weights, extra, force)
    return ExportResult(path, float_acc, fixed_acc, clipped)
