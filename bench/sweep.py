"""Training sweeps: many runs of the float trainer, spread over processes by torchrun.

A sweep is a JSON file listing runs (network config, batch size, batch learning-rate
rule, epochs, device). Each process takes every ``WORLD_SIZE``-th run from its
``RANK`` on and trains them one after another into ``OUT/<name>``, the trainer's own
run folders: a sweep killed at any point resumes where it stopped when started again
with the same arguments (finished runs are skipped, interrupted ones resume from their
last completed epoch).

    python bench/sweep.py run SPEC.json --out runs/sweep               # one process
    torchrun --standalone --nproc-per-node 8 bench/sweep.py run SPEC.json --out runs/sweep
    python bench/sweep.py summary runs/sweep --out bench/results/sweep.json --plot curves.png

torchrun launches the processes and gives each its rank; the processes meet in a
torch.distributed (gloo) group at the end, and rank 0 writes ``OUT/sweep.json``. On a
machine with GPUs, ``"device": "cuda"`` runs go to GPU ``LOCAL_RANK % gpus`` (several
processes may share one GPU: small networks leave most of it idle); ``"auto"`` uses CUDA
for batches above 1 and the CPU's single-sample path for batch 1.

SPEC:  {"defaults": {...}, "runs": [{"name": "fmnist-1000-b32-p0.5", "config":
        {"preset": "fmnist-1000"}, "batch_size": 32, "lr_batch_power": 0.5, "epochs": 3}]}
A run's keys: ``name`` (its folder), ``config`` (as a config file's contents),
``batch_size``, ``lr_batch_power``, ``batch_warmup``, ``epochs``, ``device``, ``cuda_graph``,
``train_limit``, ``test_limit``, ``seed``; ``defaults`` fills what a run leaves out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from report import emit, out_file  # bench/ is on sys.path when a script here runs

from desire.atomic import atomic_write
from desire.cli import add_threads_flag, apply_threads, user_errors
from desire.config import Config
from desire.errors import UserError
from desire.outdir import claim_output_dir
from desire.rundir import LOG_NAME, read_log
from model.train import TrainOptions, train

RUN_KEYS = {
    "name": str,
    "config": dict,
    "batch_size": int,
    "lr_batch_power": float,
    "batch_warmup": int,
    "epochs": int,
    "device": str,
    "cuda_graph": bool,
    "train_limit": int,
    "test_limit": int,
    "seed": int,
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: a sweep's processes finish at different times; the closing barrier waits for the slowest
BARRIER_TIMEOUT = datetime.timedelta(days=7)


def load_spec(path: Path) -> list[dict[str, Any]]:
    """The runs of a sweep file, defaults filled in and every key checked."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"cannot read sweep {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise UserError(f"sweep {path} must be an object with a list 'runs'")
    defaults = data.get("defaults", {})
    runs = [_checked_run({**defaults, **run}, i) for i, run in enumerate(data["runs"])]
    names = [r["name"] for r in runs]
    if len(set(names)) != len(names):
        raise UserError(f"sweep {path}: run names repeat")
    return runs


def _checked_run(run: Any, index: int) -> dict[str, Any]:
    if not isinstance(run, dict):
        raise UserError(f"run {index} is not an object")
    unknown = set(run) - set(RUN_KEYS)
    if unknown:
        raise UserError(f"run {index}: unknown keys {sorted(unknown)}")
    for key, kind in RUN_KEYS.items():
        if key in run and not isinstance(run[key], kind if kind is not float else (int, float)):
            raise UserError(f"run {index}: {key} must be {kind.__name__}, got {run[key]!r}")
    if not _NAME.fullmatch(run.get("name", "")):
        raise UserError(f"run {index}: name must be letters, digits, '.', '_', '-'")
    Config.from_dict(run.get("config", {}))  # a bad config fails before any run starts
    return run


def _device(run: dict[str, Any], local_rank: int, override: str | None) -> str:
    wanted = override or run.get("device", "auto")
    gpus = torch.cuda.device_count()
    if wanted == "auto":
        wanted = "cuda" if gpus and run.get("batch_size", 1) > 1 else "cpu"
    if wanted == "cuda":
        if not gpus:
            raise UserError(f"run {run['name']} asks for CUDA; this machine has none")
        return f"cuda:{local_rank % gpus}"
    return wanted


def _done(folder: Path, epochs: int) -> bool:
    return len(read_log(folder / LOG_NAME)) >= epochs


#: Marker of a sweep folder (desire.outdir): a sweep writes its run folders and
#: ``sweep.json`` only into a new or empty folder or an earlier sweep's.
TOOL = "bench.sweep"


def run_one(
    run: dict[str, Any],
    out: Path,
    data_dir: Path | None,
    local_rank: int,
    device: str | None = None,
) -> None:
    """Train one run into ``out/<name>``: fresh, resumed, or skipped when complete."""
    folder = out / run["name"]
    epochs = run.get("epochs", 1)
    if _done(folder, epochs):
        return
    device = _device(run, local_rank, device)
    opts = TrainOptions(
        out=folder,
        epochs=epochs,
        batch_size=run.get("batch_size", 1),
        seed=run.get("seed", 0),
        device=device,
        data_dir=data_dir,
        train_limit=run.get("train_limit"),
        test_limit=run.get("test_limit"),
        quiet=True,
        resume=folder.exists(),
        lr_batch_power=float(run.get("lr_batch_power", 0.0)),
        batch_warmup=run.get("batch_warmup", 0),
        cuda_graph=run.get("cuda_graph", False) and device.startswith("cuda"),
    )
    print(f"[{os.environ.get('RANK', 0)}] {run['name']} on {device}", flush=True)
    train(Config.from_dict(run.get("config", {})), opts)


def summary(
    out: Path, runs: list[dict[str, Any]] | None = None, match: str | None = None
) -> dict[str, Any]:
    """Per run (of those whose name ``match`` finds, if given): its settings and, per
    finished epoch, test accuracy and seconds so far. UserError for a log without the
    fields (an older trainer's): select the runs with ``match``."""
    names = (
        [r["name"] for r in runs] if runs else sorted(p.name for p in out.iterdir() if p.is_dir())
    )
    if match is not None:
        keep = re.compile(match)
        names = [n for n in names if keep.search(n)]
    spec = {r["name"]: r for r in runs or []}
    rows = []
    for name in names:
        log = read_log(out / name / LOG_NAME)
        if not log:
            continue
        seconds = 0.0
        curve = []
        for e in log:
            missing = {"epoch", "n_train", "train_samples_per_s", "test_acc"} - set(e)
            if missing:
                raise UserError(
                    f"run {name}: its log lacks {', '.join(sorted(missing))} (an older "
                    "trainer's log?); leave it out with --match"
                )
            seconds += e["n_train"] / e["train_samples_per_s"]
            curve.append(
                {
                    "epoch": e["epoch"] + 1,
                    "samples": e["n_train"] * (e["epoch"] + 1),
                    "train_s": round(seconds, 1),
                    "test_acc": e["test_acc"],
                    "train_samples_per_s": round(e["train_samples_per_s"], 1),
                }
            )
        config = json.loads((out / name / "config.json").read_text(encoding="utf-8"))
        rows.append(
            {
                "name": name,
                "layers": config["network"]["layers"],
                "batch_size": log[-1].get("batch_size", spec.get(name, {}).get("batch_size")),
                "lr_batch_power": log[-1].get("lr_batch_power", 0.0),
                "batch_warmup": log[0].get("batch_warmup", 0),
                "cuda_graph": log[-1].get("cuda_graph", False),
                "epochs": curve,
                "best_test_acc": max(c["test_acc"] for c in curve),
            }
        )
    return {"runs": rows}


def plot(result: dict[str, Any], path: Path) -> None:
    """Test accuracy against samples seen and against training seconds, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_samples, by_time) = plt.subplots(1, 2, figsize=(12, 4.5))
    for row in result["runs"]:
        xs = [c["samples"] for c in row["epochs"]]
        ts = [c["train_s"] for c in row["epochs"]]
        acc = [100 * c["test_acc"] for c in row["epochs"]]
        by_samples.plot(xs, acc, marker=".", label=row["name"])
        by_time.plot(ts, acc, marker=".", label=row["name"])
    by_samples.set_xlabel("training samples seen")
    by_time.set_xlabel("training seconds")
    by_time.set_xscale("log")
    for ax in (by_samples, by_time):
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    by_samples.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


def _cmd_run(args: argparse.Namespace) -> None:
    runs = load_spec(args.spec)
    # every process checks before any creates it: they only meet (init) after the checks
    claim_output_dir(args.out, TOOL, create=False)
    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if rank == 0:
        claim_output_dir(args.out, TOOL)
    if distributed:
        dist.barrier()
    for run in runs[rank::world]:
        run_one(run, args.out, args.data_dir, local_rank, args.device)
    if distributed:
        dist.barrier()
    if rank == 0:
        emit(summary(args.out, runs), str(args.out / "sweep.json"))
    if distributed:
        dist.destroy_process_group()


def _cmd_summary(args: argparse.Namespace) -> None:
    if args.run_dir.is_dir():
        result = summary(args.run_dir, match=args.match)
    elif args.run_dir.is_file():  # an earlier summary: re-plot a selection of it
        try:
            result = json.loads(args.run_dir.read_text(encoding="utf-8"))
            result["runs"] = list(result["runs"])
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"cannot read sweep summary {args.run_dir}: {exc}") from exc
    else:
        raise UserError(f"no sweep folder or summary {args.run_dir}")
    if args.match:
        keep = re.compile(args.match)
        result["runs"] = [r for r in result["runs"] if keep.search(r["name"])]
    if args.plot:
        plot(result, args.plot)
    emit(result, args.out)


def _regex(value: str) -> str:
    """``type`` of ``--match``: a pattern ``re`` cannot compile is one line at parse time."""
    try:
        re.compile(value)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"not a regular expression: {exc}") from None
    return value


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train the sweep's runs (resumes an interrupted sweep)")
    run.add_argument("spec", type=Path)
    run.add_argument("--out", type=Path, required=True, help="sweep folder")
    run.add_argument("--data-dir", type=Path, help="folder with the IDX files")
    run.add_argument(
        "--device", choices=("cpu", "cuda", "auto"), help="run every run here, whatever it asks"
    )
    add_threads_flag(run)
    summ = sub.add_parser("summary", help="collect the runs' curves as JSON (and a plot)")
    summ.add_argument("run_dir", type=Path, help="sweep folder, or a summary JSON to re-plot")
    summ.add_argument(
        "--match", type=_regex, help="only runs whose name matches this regular expression"
    )
    summ.add_argument("--out", type=out_file, help="also write the JSON here")
    summ.add_argument("--plot", type=Path, help="write accuracy curves (PNG) here")
    args = p.parse_args(argv)
    if args.command == "run":
        apply_threads(args.threads)
    with user_errors(p):
        _cmd_run(args) if args.command == "run" else _cmd_summary(args)


if __name__ == "__main__":
    sys.exit(main())
