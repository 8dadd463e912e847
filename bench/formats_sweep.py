"""How accuracy depends on the number formats: the measurement behind docs/fixed-point.md.

    python bench/formats_sweep.py --model-path runs/x/best.pt
        [--out bench/results/formats_sweep.json]

1. Inference: the float checkpoint's test accuracy (float32 trainer) against golden/
   integer inference of the same weights quantised to each weight format
   (bits, fraction bits) and membrane width.
2. Training: golden/ online training from the quantised checkpoint for
   ``--train-samples`` samples with each trace format and rounding mode, then
   test accuracy: traces and rounding only matter for learning.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from report import emit, out_file  # bench/ is on sys.path when a script here runs

from desire.config import Config
from desire.datasets import load_dataset
from golden import GoldenNet, strict_argmax
from model.checkpoint import load_checkpoint, net_from_checkpoint

WEIGHT_FORMATS = [(8, 5), (8, 6), (10, 7), (10, 8), (12, 9), (12, 10), (14, 11), (16, 12), (16, 13)]
MEMBRANE_BITS = [12, 14, 16, 18, 20, 24]
TRACE_FORMATS = [(4, 1), (6, 3), (8, 5), (10, 7)]
ROUNDINGS = ["truncate", "nearest", "stochastic"]


def golden_acc(cfg: Config, weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    return float((strict_argmax(GoldenNet.from_float(cfg, weights).infer(x)) == y).mean())


def inference_sweep(cfg: Config, weights: list[np.ndarray], x, y) -> list[dict]:
    rows = []
    for bits, frac in WEIGHT_FORMATS:
        c = cfg.replace(
            formats={"weight_bits": bits, "weight_frac": frac, "membrane_bits": bits + 8}
        )
        rows.append(
            {
                "weight_bits": bits,
                "weight_frac": frac,
                "membrane_bits": bits + 8,
                "accuracy": golden_acc(c, weights, x, y),
            }
        )
        print(rows[-1], flush=True)
    base = cfg.formats
    for mbits in MEMBRANE_BITS:
        if mbits < base.weight_bits:
            continue
        c = cfg.replace(formats={"membrane_bits": mbits})
        rows.append(
            {
                "weight_bits": base.weight_bits,
                "weight_frac": base.weight_frac,
                "membrane_bits": mbits,
                "accuracy": golden_acc(c, weights, x, y),
            }
        )
        print(rows[-1], flush=True)
    return rows


def training_sweep(cfg: Config, weights: list[np.ndarray], data, n: int) -> list[dict]:
    (x, y), (xt, yt) = data
    rows = []
    for tbits, tfrac in TRACE_FORMATS:
        for rounding in ROUNDINGS:
            c = cfg.replace(
                formats={"trace_bits": tbits, "trace_frac": tfrac, "rounding": rounding}
            )
            net = GoldenNet.from_float(c, weights)
            lr = net.c.lr_int(0)
            for i in range(n):
                net.train_step(x[i], int(y[i]), lr)
            acc = float((strict_argmax(net.infer(xt)) == yt).mean())
            rows.append(
                {
                    "trace_bits": tbits,
                    "trace_frac": tfrac,
                    "rounding": rounding,
                    "train_samples": n,
                    "accuracy": acc,
                }
            )
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model-path", required=True, help="float trainer checkpoint (.pt)")
    p.add_argument("--test-limit", type=int, help="test samples (default: all 10000)")
    p.add_argument("--train-samples", type=int, default=3000)
    p.add_argument("--out", type=out_file, help="also write the JSON here")
    args = p.parse_args()
    state = load_checkpoint(Path(args.model_path))
    cfg = Config.from_dict(state["config"])
    weights = [w.double().numpy() for w in state["weights"]]
    dataset = state.get("dataset", "fashion-mnist")
    x, y = load_dataset(dataset, "test", limit=args.test_limit)
    t0 = time.perf_counter()
    net = net_from_checkpoint(state)
    float_acc = float(net.evaluate(torch.as_tensor(x), torch.as_tensor(y)).correct.float().mean())
    print({"float_accuracy": float_acc}, flush=True)
    train = load_dataset(dataset, "train", limit=args.train_samples)
    result = {
        "command": f"python bench/formats_sweep.py --model-path {args.model_path}",
        "dataset": dataset,
        "layers": list(cfg.network.layers),
        "test_samples": len(y),
        "max_abs_weight": max(float(np.abs(w).max()) for w in weights),
        "float_accuracy": float_acc,
        "inference": inference_sweep(cfg, weights, x, y),
        "training": training_sweep(cfg, weights, (train, (x[:2000], y[:2000])), args.train_samples),
        "seconds": None,
    }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    emit(result, args.out)


if __name__ == "__main__":
    main()
