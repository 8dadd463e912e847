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

from desire.cli import add_data_flags, add_network_flags, build_config, positive_int, user_errors
from desire.datafit import check_fits_data
from desire.datasets import load_dataset
from desire.rundir import Start
from golden.export import load_export
from golden.network import GoldenNet
from golden.train import OnlineRun, accuracy, run_folder, run_online

__all__ = ["main"]


def _data(args: argparse.Namespace, split: str, limit: int | None):
    return load_dataset(args.dataset, split, args.data_dir, args.download, limit)


def cmd_eval(args: argparse.Namespace) -> None:
    cfg, weights, manifest = load_export(args.model_path)
    net = GoldenNet(cfg, weights)
    x, y = _data(args, "test", args.test_limit)
    check_fits_data(cfg.network.layers, x.shape[1], int(y.max()) + 1, args.dataset)
    t0 = time.perf_counter()
    acc = accuracy(net, x, y)
    result = {
        "dataset": args.dataset,
        "samples": len(y),
        "fixed_accuracy": acc,
        "samples_per_s": len(y) / (time.perf_counter() - t0),
    }
    if manifest.get("float_accuracy") is not None:
        # measured at export time, on the export's own test images: say how many
        result["export_float_accuracy"] = manifest["float_accuracy"]
        result["export_fixed_accuracy"] = manifest.get("fixed_accuracy")
        result["export_test_samples"] = manifest.get("test_samples")
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"fixed point (golden/): {acc:.2%} on {len(y)} {args.dataset} test images, "
        f"{result['samples_per_s']:.0f} samples/s"
    )
    if "export_float_accuracy" in result:
        print(
            f"at export time: float {result['export_float_accuracy']:.2%}, fixed "
            f"{result['export_fixed_accuracy']:.2%} on {result['export_test_samples']} images"
        )


def cmd_train(args: argparse.Namespace) -> None:
    start = Start.from_flags(args.resume, args.force)

    def fresh() -> GoldenNet:
        if args.model_path:
            return GoldenNet(*load_export(args.model_path)[:2])
        return GoldenNet.init_random(build_config(args), args.seed)

    run_folder(args.out).check(start)
    data = (_data(args, "train", args.train_limit), _data(args, "test", args.test_limit))
    run = OnlineRun(args.out, args.epochs, args.seed, args.quiet)
    run_online(run, start, fresh, GoldenNet, data, args.dataset)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m golden",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="integer inference of an export on the test set")
    ev.add_argument("--model-path", required=True, type=Path, help="export folder")
    ev.add_argument("--json", action="store_true", help="print the result as one JSON object")
    add_data_flags(ev)
    tr = sub.add_parser("train", help="online training with the hardware's arithmetic")
    add_network_flags(tr)
    add_data_flags(tr)
    tr.add_argument("--train-limit", type=positive_int, help="use only N training samples")
    tr.add_argument("--epochs", type=positive_int, default=1, help="total, resumed ones included")
    tr.add_argument("--model-path", type=Path, help="start from this export, not random weights")
    tr.add_argument("--out", type=Path, default=Path("runs/golden"), help="run folder")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/last")
    tr.add_argument(
        "--force", action="store_true", help="start over in OUT, removing only the run's files"
    )
    tr.add_argument("--seed", type=int, default=0, help="initial weights and sample order")
    tr.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with user_errors(parser):
        {"eval": cmd_eval, "train": cmd_train}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
