"""``python -m golden``: evaluate an export, or train online with the accelerator's arithmetic.

    python -m golden eval --model-path runs/x/export --dataset fashion-mnist
    python -m golden train --epochs 1 --train-limit 2000 --out runs/golden

Training writes ``log.jsonl`` (one line per epoch) and exports ``last/`` and
``best/`` after every epoch; ``--resume`` continues from ``last/`` including the
PRNG states, so a killed run loses at most one epoch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from desire.cli import add_config_args, add_data_args, config_from_args
from desire.config import Config
from desire.datasets import DatasetError, load_dataset
from golden.export import ExportError, load_export, write_export
from golden.network import GoldenNet, strict_argmax

__all__ = ["main"]


def accuracy(net: GoldenNet, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Strict-max accuracy of integer inference."""
    return float((strict_argmax(net.infer(x, batch_size)) == y).mean()) if len(y) else 0.0


def _load_data(args: argparse.Namespace, split: str, limit: int | None):
    return load_dataset(args.dataset, split, args.data_dir, args.download, limit)


def cmd_eval(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    cfg, weights, manifest = load_export(args.model_path)
    net = GoldenNet(cfg, weights)
    x, y = _load_data(args, "test", args.test_limit)
    t0 = time.perf_counter()
    acc = accuracy(net, x, y, args.batch_size)
    dt = time.perf_counter() - t0
    result = {
        "dataset": args.dataset,
        "samples": len(y),
        "fixed_accuracy": acc,
        "samples_per_s": len(y) / dt,
    }
    if "float_accuracy" in manifest:
        result["float_accuracy"] = manifest["float_accuracy"]
    print(json.dumps(result))
    return 0


def _state(net: GoldenNet, epoch: int, best: float, order_seed: int) -> dict:
    return {
        "golden_state": {
            "epoch": epoch,
            "best": best,
            "seed": order_seed,
            "dropout_rng": net.dropout_rng.state,
            "rounding_rng": net.rounding_rng.state,
        }
    }


def _initial_net(args: argparse.Namespace, cfg: Config, out: Path) -> tuple[GoldenNet, int, float]:
    """Fresh, from --model-path, or resumed from out/last (weights and PRNG states)."""
    if args.resume:
        cfg_saved, weights, manifest = load_export(out / "last")
        net, st = GoldenNet(cfg_saved, weights), manifest["golden_state"]
        net.dropout_rng.state, net.rounding_rng.state = st["dropout_rng"], st["rounding_rng"]
        return net, st["epoch"] + 1, st["best"]
    if args.model_path:
        _, weights, _ = load_export(args.model_path)
        return GoldenNet(cfg, weights), 0, -1.0
    return GoldenNet.init_random(cfg, args.seed), 0, -1.0


def cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    cfg = config_from_args(args, parser)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net, start, best = _initial_net(args, cfg, out)
    x, y = _load_data(args, "train", args.train_limit)
    xt, yt = _load_data(args, "test", args.test_limit)
    for epoch in range(start, args.epochs):
        order = np.random.default_rng([args.seed, epoch]).permutation(len(y))
        lr_int = net.c.lr_int(epoch)
        correct, t0 = 0, time.perf_counter()
        for i in tqdm(order, desc=f"epoch {epoch}", disable=args.quiet or not sys.stderr.isatty()):
            correct += net.train_step(x[i], int(y[i]), lr_int).prediction == y[i]
        train_s = time.perf_counter() - t0
        test_acc = accuracy(net, xt, yt)
        row = {
            "epoch": epoch,
            "lr_int": lr_int,
            "train_acc": correct / len(y),
            "test_acc": test_acc,
            "train_samples_per_s": len(y) / train_s,
        }
        with open(out / "log.jsonl", "a") as log:
            log.write(json.dumps(row) + "\n")
        print(json.dumps(row))
        best = max(best, test_acc)
        state = _state(net, epoch, best, args.seed)
        if test_acc >= best:
            write_export(out / "best", net.cfg, net.weights, state)
        write_export(out / "last", net.cfg, net.weights, state)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m golden",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="integer inference of an export on the test set")
    ev.add_argument("--model-path", required=True, help="export folder (manifest.json)")
    ev.add_argument("--batch-size", type=int, default=256)
    add_data_args(ev)
    tr = sub.add_parser("train", help="online training with the hardware's arithmetic")
    add_config_args(tr)
    add_data_args(tr)
    tr.add_argument("--epochs", type=int, default=1)
    tr.add_argument("--model-path", help="start from this export instead of random weights")
    tr.add_argument("--out", default="runs/golden", help="run folder")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/last")
    tr.add_argument("--seed", type=int, default=0, help="initial weights and sample order")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {"eval": cmd_eval, "train": cmd_train}[args.command](args, parser)
    except (DatasetError, ExportError) as exc:
        parser.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
