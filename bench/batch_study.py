"""Accuracy against epochs for each batch size: which B keeps the accuracy of B = 1?

    python bench/batch_study.py [--preset default] [--train-limit N] [--epochs 5]
        [--batch-sizes 1 8 32 128 512] [--out bench/results/batch_study.json]

Trains one float network per batch size from the same initial weights and
sample order seed, logs test accuracy after every epoch, and names the fastest
batch size within 0.3 points of B = 1 at the last epoch.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from report import emit, out_file  # bench/ is on sys.path when a script here runs

from desire.config import load_config
from model.train import TrainOptions, train

TOLERANCE = 0.003


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="default")
    p.add_argument("--train-limit", type=int, help="training samples per epoch (default: all)")
    p.add_argument("--test-limit", type=int)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 128, 512])
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: no stalls on a shared CPU)"
    )
    p.add_argument("--out", type=out_file, help="also write the JSON here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(preset=args.preset)
    runs = []
    for b in args.batch_sizes:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            opts = TrainOptions(
                out=Path(tmp),
                epochs=args.epochs,
                batch_size=b,
                device=args.device,
                train_limit=args.train_limit,
                test_limit=args.test_limit,
                quiet=True,
            )
            log = train(cfg, opts)
        runs.append(
            {
                "batch_size": b,
                "test_acc": [row["test_acc"] for row in log],
                "train_samples_per_s": [round(row["train_samples_per_s"], 1) for row in log],
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(json.dumps(runs[-1]), flush=True)
    ref = runs[0]["test_acc"][-1] if runs[0]["batch_size"] == 1 else None
    ok = [r for r in runs if ref is not None and r["test_acc"][-1] >= ref - TOLERANCE]
    best = max(ok, key=lambda r: r["train_samples_per_s"][-1])["batch_size"] if ok else None
    result = {
        "command": "python bench/batch_study.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
            if v is not None and k != "out"
        ),
        "preset": args.preset,
        "layers": list(cfg.network.layers),
        "runs": runs,
        "fastest_within_0.3_points_of_b1": best,
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
