"""Command line: ``python -m model train|eval|export|plot``.

Flag names follow the reference implementation (``--tsteps``,
``--mempot-thres``, ``--desire-thres``, ``--dropout``, ``--eval``,
``--model-path`` ...). Network flags default to the config (``--config`` file
or ``--preset``) and only override it when given, so the config stays the one
source of truth.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from desire.cli import add_network_flags, build_config, positive_int
from desire.config import Config, ConfigError
from desire.datasets import DATASETS, DatasetError, load_dataset
from golden import GoldenNet
from golden.export import ExportError, load_export
from golden.train import OnlineRun, accuracy, restore, train_online
from model.export import export_checkpoint
from model.fixed import FixedNet
from model.train import (
    DEFAULT_BATCH,
    DEFAULT_DATASET,
    CheckpointError,
    TrainOptions,
    default_run_dir,
    evaluate,
    load_checkpoint,
    load_data,
    net_from_checkpoint,
    train,
)

ARITHS = ("float", "fixed")


def _add_run_flags(p: argparse.ArgumentParser, training: bool) -> None:
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        help=f"default: {DEFAULT_DATASET} for training, the checkpoint's for evaluation",
    )
    p.add_argument("--data-dir", type=Path, help="folder with the IDX files")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument(
        "--arith",
        choices=ARITHS,
        default="float",
        help="float trainer or fixed-point (accelerator)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-limit", type=positive_int, help="use only the first N test samples")
    p.add_argument("--eval-batch-size", type=positive_int, default=500)
    p.add_argument("--quiet", action="store_true", help="no progress bars or summaries")
    p.add_argument("--model-path", type=Path, help="checkpoint to evaluate")
    if training:
        p.add_argument(
            "--epochs", type=positive_int, default=1, help="total, resumed ones included"
        )
        p.add_argument(
            "--batch-size",
            type=positive_int,
            help=f"samples per update; 1 = the reference's online mode (default: {DEFAULT_BATCH} "
            "for float, measured in bench/results/batch_study.json; 1 for fixed)",
        )
        p.add_argument("--train-limit", type=positive_int, help="use only N training samples")
        p.add_argument("--out", type=Path, help="run directory (default runs/<dataset>-<time>)")
        p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
        p.add_argument("--eval", action="store_true", help="only evaluate --model-path")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model", description="Desire backpropagation trainer for SNNs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train_cmd = sub.add_parser("train", help="train a network")
    add_network_flags(train_cmd)
    _add_run_flags(train_cmd, training=True)
    ev = sub.add_parser("eval", help="evaluate a checkpoint on the test set")
    add_network_flags(ev)
    _add_run_flags(ev, training=False)
    exp = sub.add_parser("export", help="quantise a checkpoint to the accelerator's formats")
    add_network_flags(exp)
    exp.add_argument("--model-path", type=Path, required=True, help="float checkpoint (.pt)")
    exp.add_argument("--out", type=Path, required=True, help="export folder to write")
    exp.add_argument("--dataset", choices=DATASETS, help="default: the checkpoint's")
    exp.add_argument("--data-dir", type=Path, help="folder with the IDX files")
    exp.add_argument("--test-limit", type=positive_int, help="use only the first N test samples")
    exp.add_argument("--device", default="cpu")
    plot = sub.add_parser("plot", help="plot accuracy, local loss and spike activity of a run")
    plot.add_argument("run_dir", type=Path)
    plot.add_argument("--data-dir", type=Path)
    plot.add_argument("--test-limit", type=positive_int, default=2000)
    plot.add_argument("--device", default="cpu")
    return parser


def _check_device(device: str) -> None:
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise SystemExit(f"bad --device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: CUDA is not available on this machine")


def _cmd_train(args: argparse.Namespace) -> None:
    if args.resume and args.out is None:
        raise SystemExit("--resume needs --out RUN_DIR (the run to continue)")
    cfg = build_config(args)
    dataset = args.dataset or DEFAULT_DATASET
    if args.arith == "fixed":
        _train_fixed(args, cfg, dataset)
        return
    if args.batch_size is None:
        args.batch_size = DEFAULT_BATCH
    opts = TrainOptions(
        out=args.out or default_run_dir(dataset),
        dataset=dataset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        data_dir=args.data_dir,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        quiet=args.quiet,
        resume=args.resume,
    )
    if not args.quiet:
        print(f"run directory: {opts.out}", flush=True)
    train(cfg, opts)


def _train_fixed(args: argparse.Namespace, cfg: Config, dataset: str) -> None:
    """Online training in the accelerator's integer arithmetic on ``--device``."""
    if args.batch_size not in (None, 1):
        raise SystemExit("--arith fixed trains online, like the hardware: use --batch-size 1")
    out = args.out or default_run_dir(dataset)
    start, best = 0, -1.0
    if args.resume:
        cfg, weights, _ = load_export(out / "last")
        net = FixedNet(cfg, weights, args.device)
        start, best = restore(net, out)
    else:
        net = FixedNet(cfg, GoldenNet.init_random(cfg, args.seed).weights, args.device)
    train_set = load_dataset(dataset, "train", args.data_dir, limit=args.train_limit)
    test_set = load_dataset(dataset, "test", args.data_dir, limit=args.test_limit)
    run = OnlineRun(out, args.epochs, args.seed, args.quiet)
    train_online(net, train_set, test_set, run, start, best)


def _cmd_eval(args: argparse.Namespace) -> None:
    if args.model_path is None:
        raise SystemExit("evaluation needs --model-path CHECKPOINT")
    state = load_checkpoint(args.model_path)
    cfg = build_config(args, Config.from_dict(state["config"]))
    dataset = args.dataset or state.get("dataset", DEFAULT_DATASET)
    if args.arith == "fixed":
        weights = [w.double().numpy() for w in state["weights"]]
        fixed = FixedNet(cfg, GoldenNet.from_float(cfg, weights).weights, args.device)
        x, y = load_dataset(dataset, "test", args.data_dir, limit=args.test_limit)
        t0 = time.perf_counter()
        acc = accuracy(fixed, x, y)
        rate = len(y) / (time.perf_counter() - t0)
        print(f"fixed-point test accuracy {acc:.2%} on {len(y)} samples; {rate:.0f} samples/s")
        return
    net = net_from_checkpoint(state, cfg, args.device, args.dtype)
    data = load_data(dataset, "test", net.device, args.data_dir, args.test_limit)
    stats = evaluate(net, data, args.eval_batch_size, quiet=args.quiet)
    losses = " ".join(f"{x:.4f}" for x in stats.local_loss)
    print(
        f"test accuracy {stats.accuracy:.2%} on {len(data)} samples; "
        f"local loss [{losses}]; {stats.samples_per_s:.0f} samples/s"
    )


def _cmd_export(args: argparse.Namespace) -> None:
    """Quantise, write the export files, print float and fixed accuracy side by side."""
    state = load_checkpoint(args.model_path)
    cfg = build_config(args, Config.from_dict(state["config"]))
    dataset = args.dataset or state.get("dataset", DEFAULT_DATASET)
    test = load_dataset(dataset, "test", args.data_dir, limit=args.test_limit)
    res = export_checkpoint(args.model_path, args.out, cfg, test)
    print(f"wrote {res.path} ({res.clipped_weights} weights saturated)")
    print(f"{'arithmetic':<12}{'test accuracy':>14}  ({len(test[1])} {dataset} samples)")
    print(f"{'float':<12}{res.float_accuracy:>14.2%}")
    print(f"{'fixed':<12}{res.fixed_accuracy:>14.2%}")


def _cmd_plot(args: argparse.Namespace) -> None:
    from model.plots import plot_run  # matplotlib only when plotting

    for path in plot_run(args.run_dir, args.data_dir, args.test_limit, args.device):
        print(path)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m model`` and ``desire-model``; errors exit with a message."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_device(args.device)
    try:
        if args.command == "plot":
            _cmd_plot(args)
            return
        if args.command == "export":
            _cmd_export(args)
        elif args.command == "eval" or args.eval:
            _cmd_eval(args)
        else:
            _cmd_train(args)
    except (ConfigError, CheckpointError, DatasetError, ExportError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
