"""Fine-tune the shipped per-target networks online in the accelerator's integer arithmetic.

    python bench/finetune_fixed.py [--hidden 240 64 32 112] [--epochs 1] [--lr next|LR]
        [--runs runs] [--tag TAG] [--train-limit N] [--test-limit N] [--threads 1]
        [--out bench/results/finetune_fixed.json]

Issue 15 asks whether a network trained in float and then fine-tuned in the
accelerator's arithmetic (``python -m model train --arith fixed``: online, batch 1,
bit-identical to golden/ and so to the RTL) beats the float network merely quantised,
which is what ``exports/`` ships. Per hidden size H, one after the other (one training
process at a time: the development machine has two shared cores):

1. ``exports/fmnist-784-H-10/export/manifest.json`` names the float checkpoint the
   export came from (``source``); it is quantised again and compared with the shipped
   weights, so a run folder retrained since the export was shipped is refused instead of
   being fine-tuned and compared with the wrong "before";
2. ``python -m model train --arith fixed --model-path SOURCE --lr LR --epochs E
   --threads T --out RUNS/ft-nH[-TAG]`` trains it, its test accuracy on the test
   images (all 10,000 unless ``--test-limit``) measured after every epoch;
3. golden/ classifies the test images with the shipped and with the fine-tuned weights,
   which gives the images that changed class (a paired comparison: a difference of a
   few tenths of a point can be noise of the sample order, and the counts say how many
   images it rests on) and checks the trainer's logged figure.

``--lr next`` (default) continues the float run's own schedule: the learning rate its
next epoch would have had, ``lr * exp(-lr_decay * epochs trained)``. The float runs
trained at batch 32 applying the summed update at the online rate (docs/results.md,
batching rule), so the same per-sample rate is the consistent one for batch-1 training.

Resumable: a run folder whose log already holds ``--epochs`` epochs is only read; one
with fewer is continued (``--resume``); folders are created by this script and marked as
its own (``desire.outdir``), and a folder it did not create is never trained into. A
folder holding a run with other settings (source, lr, limits, seed) is refused: give a
``--tag``. The JSON (``--out``) is rewritten after every network, keeping the rows of
networks not run this time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from report import emit  # bench/ is on sys.path when a script here runs
from targets import TARGETS

from desire.atomic import atomic_write_text
from desire.config import Config
from desire.datasets import load_dataset
from desire.errors import UserError
from desire.outdir import claim_output_dir, is_own
from desire.rundir import LOG_NAME, read_log
from golden import GoldenNet, strict_argmax
from golden.export import load_export
from golden.train import run_folder
from model.checkpoint import checkpoint_weights, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TOOL = "bench/finetune_fixed.py"
#: this script's record of a run folder's settings, beside the trainer's files
SETTINGS = "finetune.json"
DEFAULT_HIDDEN = (240, 64, 32, 112)


def shipped_name(hidden: int) -> str:
    return f"fmnist-784-{hidden}-10"


def target_of(name: str) -> str | None:
    """The FPGA target bench/targets.py ships ``name`` for (None: not a target's model)."""
    return next((t for t, (_, _, shipped) in TARGETS.items() if shipped == name), None)


def run_dir(args: argparse.Namespace, hidden: int) -> Path:
    return args.runs / (f"ft-n{hidden}" + (f"-{args.tag}" if args.tag else ""))


def shown(path: Path) -> str:
    """``path`` relative to the repository where it lies inside (the JSON is committed)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def load_avg() -> list[float]:
    """1-, 5- and 15-minute load averages: the cores are shared, so speeds need them."""
    return [round(x, 2) for x in os.getloadavg()]


def source_of(export: Path) -> tuple[Config, list[np.ndarray], dict[str, Any], Path]:
    """The shipped export and the float checkpoint it came from, checked to be that one.

    Quantising the checkpoint again must give the shipped weights bit for bit: the run
    folders are local and may have been trained further since the export was shipped.
    """
    cfg, weights, manifest = load_export(export)
    source = ROOT / manifest["source"]
    if not source.is_file():
        raise UserError(f"{export}: its source {source} is not here (run folders are local)")
    state = load_checkpoint(source)
    quantised = GoldenNet.from_float(cfg, checkpoint_weights(state, cfg, source)).weights
    if any(not np.array_equal(a, b) for a, b in zip(quantised, weights, strict=True)):
        raise UserError(f"{source} quantises to other weights than {export}: not its source")
    return cfg, weights, manifest, source


def next_lr(cfg: Config, source: Path) -> tuple[float, int]:
    """The float schedule's rate for the epoch after the run's last, and the run's epochs."""
    epochs = len(read_log(source.parent / LOG_NAME))
    return cfg.network.lr * math.exp(-cfg.network.lr_decay * epochs), epochs


def train_command(args: argparse.Namespace, settings: dict[str, Any], resume: bool) -> list[str]:
    """The trainer's command line: ``--resume`` continues from ``last/`` (its config holds
    the lr); a fresh start takes the float checkpoint and the lr."""
    cmd = [sys.executable, "-m", "model", "train", "--arith", "fixed", "--device", "cpu"]
    cmd += ["--epochs", str(args.epochs), "--threads", str(args.threads)]
    cmd += ["--seed", str(settings["seed"]), "--out", settings["run"]]
    for flag in ("train_limit", "test_limit"):
        if settings[flag] is not None:
            cmd += [f"--{flag.replace('_', '-')}", str(settings[flag])]
    if resume:
        return [*cmd, "--resume"]
    return [*cmd, "--model-path", settings["source"], "--lr", repr(settings["lr"]), "--force"]


def prepare_folder(run: Path, settings: dict[str, Any]) -> None:
    """Create and mark ``run``, or accept it only as this script's folder of the same run."""
    if run.exists() and not is_own(run, TOOL):
        raise UserError(f"{run} exists and was not created by {TOOL}: choose another --tag")
    claim_output_dir(run, TOOL)
    path = run / SETTINGS
    if path.is_file():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored != settings:
            diff = {k: (stored.get(k), v) for k, v in settings.items() if stored.get(k) != v}
            raise UserError(f"{run} holds a fine-tune with other settings {diff}: give a --tag")
    else:
        atomic_write_text(path, json.dumps(settings, indent=2) + "\n")


def paired(
    cfg: Config,
    before: list[np.ndarray],
    after: list[np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
) -> dict[str, Any]:
    """golden/'s accuracy before and after on the same images, the images that changed
    class, and McNemar's exact two-sided p-value of the change (binomial on the flips)."""
    x, y = test
    ok_b = strict_argmax(GoldenNet(cfg, before).infer(x)) == y
    ok_a = strict_argmax(GoldenNet(cfg, after).infer(x)) == y
    lost, gained = int((ok_b & ~ok_a).sum()), int((~ok_b & ok_a).sum())
    n, k = lost + gained, min(lost, gained)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    return {
        "golden_before": float(ok_b.mean()),
        "golden_after": float(ok_a.mean()),
        "images_gained": gained,
        "images_lost": lost,
        "mcnemar_p": round(p, 4),
    }


def finetune(args: argparse.Namespace, hidden: int, old: dict[str, Any] | None) -> dict[str, Any]:
    """Fine-tune (or read back) one network and measure it; ``old``: its previous row."""
    name = shipped_name(hidden)
    export = ROOT / "exports" / name / "export"
    cfg, shipped, manifest, source = source_of(export)
    lr, float_epochs = next_lr(cfg, source) if args.lr == "next" else (float(args.lr), None)
    run = run_dir(args, hidden)
    settings = {
        "run": shown(run),
        "source": str(source.relative_to(ROOT)),
        "lr": lr,
        "seed": args.seed,
        "train_limit": args.train_limit,
        "test_limit": args.test_limit,
    }
    prepare_folder(run, settings)
    done = len(read_log(run / LOG_NAME))
    wall_s, load_before, load_after, cmd = None, load_avg(), None, None
    if done < args.epochs:
        resume = (run / "last").is_dir()  # a run killed in its first epoch starts over
        cmd = train_command(args, settings, resume)
        print(" ".join(cmd), file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=sys.stderr)  # stdout: the JSON
        wall_s, load_after = round(time.perf_counter() - t0, 1), load_avg()
    elif old is not None and old.get("epochs") == args.epochs:
        return old  # finished and measured before: nothing to redo
    if not run_folder(run).holds_run():
        raise UserError(f"{run}: the trainer left no run")
    log = read_log(run / LOG_NAME)[: args.epochs]
    if len(log) < args.epochs:
        raise UserError(f"{run}: {len(log)} of {args.epochs} epochs in its log")
    _, tuned, tuned_manifest = load_export(run / "last")
    if tuned_manifest["golden_state"]["epoch"] != args.epochs - 1:
        raise UserError(f"{run}/last is not epoch {args.epochs - 1}: rerun with --epochs")
    # every trainer command this run took (a resumed run adds one), with its time and load
    invocations = list((old or {}).get("invocations", [])) if old and done else []
    if cmd:
        invocations.append(
            {
                "command": " ".join(["python", *cmd[1:]]),
                "wall_s": wall_s,
                "load_avg_before_after": [load_before, load_after],
            }
        )
    test = load_dataset("fashion-mnist", "test", limit=args.test_limit)
    check = paired(cfg, shipped, tuned, test)
    float_log = read_log(source.parent / LOG_NAME)
    last10 = [e["test_acc"] for e in float_log[-10:]]  # the float run's epoch-to-epoch spread
    full = args.test_limit is None
    return {
        "target": target_of(name),
        "shipped": name,
        "layers": list(cfg.network.layers),
        "source": settings["source"],
        "float_epochs": float_epochs or len(float_log),
        "float_last10_test_acc_range": [min(last10), max(last10)],
        "run": shown(run),
        "lr": lr,
        "lr_rule": "next epoch of the float schedule" if args.lr == "next" else "given",
        "lr_int_per_epoch": [e["lr_int"] for e in log],
        "epochs": args.epochs,
        "seed": args.seed,
        "train_samples_per_epoch": args.train_limit or 60_000,
        "test_images": len(test[1]),
        "float_acc": manifest["float_accuracy"] if full else None,
        "fixed_acc_before": manifest["fixed_accuracy"] if full else check["golden_before"],
        "fixed_acc_after": log[-1]["test_acc"],
        "fixed_acc_per_epoch": [e["test_acc"] for e in log],
        "train_acc_per_epoch": [e["train_acc"] for e in log],
        "delta_points": round(100 * (log[-1]["test_acc"] - check["golden_before"]), 2),
        "paired": check,
        "train_samples_per_s": [round(e["train_samples_per_s"], 1) for e in log],
        "train_s": round(sum((args.train_limit or 60_000) / e["train_samples_per_s"] for e in log)),
        "wall_s": round(sum(i["wall_s"] for i in invocations), 1),
        "invocations": invocations,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--hidden", type=int, nargs="+", default=list(DEFAULT_HIDDEN))
    p.add_argument("--epochs", type=int, default=1, help="epochs of fine-tuning in total")
    p.add_argument("--lr", default="next", help="'next' (float schedule's next epoch) or a rate")
    p.add_argument("--runs", type=Path, default=ROOT / "runs", help="where the run folders go")
    p.add_argument("--tag", help="suffix of the run folders (another lr, a pilot ...)")
    p.add_argument("--seed", type=int, default=0, help="sample order of the fine-tuning")
    p.add_argument("--train-limit", type=int, help="train on the first N samples (a pilot)")
    p.add_argument("--test-limit", type=int, help="test on the first N images (a pilot)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "bench/results/finetune_fixed.json"))
    args = p.parse_args()
    if args.lr != "next":
        float(args.lr)  # a typo fails here, not after the first network
    args.runs = args.runs.resolve()
    previous: dict[str, Any] = {}
    if args.out and Path(args.out).is_file():
        previous = json.loads(Path(args.out).read_text(encoding="utf-8"))
    rows = {row["run"]: row for row in previous.get("rows", [])}
    for hidden in args.hidden:
        run = shown(run_dir(args, hidden))
        try:
            rows[run] = finetune(args, hidden, rows.get(run))
        except (UserError, subprocess.CalledProcessError) as exc:
            print(f"784-{hidden}-10: {exc}", file=sys.stderr)
            continue
        result = {"cores": os.cpu_count(), "rows": list(rows.values())}
        emit(result, args.out)


if __name__ == "__main__":
    main()
