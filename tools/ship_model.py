"""Ship a trained run as one of the project's models: export, learning curve, log.

    python tools/ship_model.py RUN_DIR --name NAME [--checkpoint best.pt] [--config FILE]

writes ``exports/NAME/`` (the folder must be new): ``export/`` (the accelerator's files
and manifest, float and fixed-point accuracy measured on all 10,000 Fashion-MNIST test
images), ``log.jsonl`` (the run's epochs) and ``learning_curve.png``. ``--config``
exports in other number formats than the run's (e.g. narrower weights). The folder is
built beside its place and renamed into it, so an interrupted ship leaves nothing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desire.cli import user_errors  # noqa: E402
from desire.config import load_config  # noqa: E402
from desire.datasets import load_dataset  # noqa: E402
from desire.errors import UserError  # noqa: E402
from desire.rundir import LOG_NAME, read_log  # noqa: E402
from model.export import export_checkpoint  # noqa: E402
from model.plots import plot_accuracy  # noqa: E402

SHIPPED = ROOT / "exports"


def ship(run: Path, name: str, checkpoint: str, config: Path | None) -> Path:
    """Build ``exports/name`` from ``run``; returns the folder."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise UserError(f"--name {name!r}: letters, digits, '.', '_' and '-' only")
    target = SHIPPED / name
    if target.exists():
        raise UserError(f"{target} exists: ship under a new name")
    log = read_log(run / LOG_NAME)
    if not log:
        raise UserError(f"{run} has no completed epoch ({LOG_NAME})")
    SHIPPED.mkdir(exist_ok=True)
    cfg = load_config(config) if config else None
    test = load_dataset("fashion-mnist", "test")
    with tempfile.TemporaryDirectory(dir=SHIPPED, prefix=f".{name}.") as tmp:
        part = Path(tmp) / name
        part.mkdir()
        result = export_checkpoint(run / checkpoint, part / "export", cfg, test)
        shutil.copyfile(run / LOG_NAME, part / LOG_NAME)
        plot_accuracy(log, part / "learning_curve.png")
        part.rename(target)
    print(
        f"{target}: float {result.float_accuracy:.2%}, fixed {result.fixed_accuracy:.2%} "
        f"on {len(test[1])} test images ({result.clipped_weights} weights saturated)"
    )
    return target


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run", type=Path, help="a run folder of python -m model train")
    p.add_argument("--name", required=True, help="folder name under exports/")
    p.add_argument("--checkpoint", default="best.pt")
    p.add_argument("--config", type=Path, help="export in this config's formats")
    args = p.parse_args()
    with user_errors(p):
        ship(args.run, args.name, args.checkpoint, args.config)


if __name__ == "__main__":
    main()
