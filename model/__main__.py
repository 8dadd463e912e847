"""Command line: ``python -m model train|eval|export|plot``.

Flag names follow the reference implementation (``--tsteps``,
``--mempot-thres``, ``--desire-thres``, ``--dropout``, ``--eval``,
``--model-path`` ...). Network flags default to the config (``--config`` file
or ``--preset``) and only override it when given, so the config stays the one
source of truth.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

import golden.train as golden_train
from desire.cli import (
    add_network_flags,
    add_threads_flag,
    apply_threads,
    build_config,
    positive_int,
    user_errors,
)
from desire.config import Config
from desire.datasets import DATASETS, load_dataset
from desire.errors import UserError
from desire.rundir import Start
from golden import GoldenNet
from golden.train import accuracy
from model.checkpoint import checkpoint_weights, load_checkpoint, net_from_checkpoint
from model.export import export_checkpoint
from model.fixed import FixedNet
from model.train import (
    DEFAULT_BATCH,
    DEFAULT_DATASET,
    TrainOptions,
    default_run_dir,
    evaluate,
    load_data,
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
    p.add_argument("--download", action="store_true", help="download the dataset if not found")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_threads_flag(p)
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
    p.add_argument(
        "--model-path",
        type=Path,
        help="checkpoint of this trainer or the reference implementation's state_dict: "
        "the one to evaluate, or a training run's initial weights",
    )
    if training:
        p.add_argument(
            "--epochs", type=positive_int, default=1, help="total, resumed ones included"
        )
        p.add_argument(
            "--batch-size",
            type=positive_int,
            help=f"samples per update; 1 = the reference's online mode (default: {DEFAULT_BATCH} "
            "for float, measured in bench/results/batching_rule.json; 1 for fixed)",
        )
        p.add_argument(
            "--lr-batch-power",
            type=float,
            default=0.0,
            help="a batch's summed update is applied at lr * batch_size ** -P "
            "(0: at the online rate; 0.5: square-root scaling; 1: the mean; -1 to 1)",
        )
        p.add_argument(
            "--batch-warmup",
            type=int,
            default=0,
            metavar="SAMPLES",
            help="the batch grows from 1 to --batch-size in powers of two over the run's "
            "first SAMPLES training samples (0: none)",
        )
        p.add_argument(
            "--cuda-graph",
            action="store_true",
            help="record one training step as a CUDA graph and replay it per batch",
        )
        p.add_argument("--train-limit", type=positive_int, help="use only N training samples")
        p.add_argument("--out", type=Path, help="run directory (default runs/<dataset>-<time>)")
        p.add_argument("--resume", action="store_true", help="continue the run in OUT")
        p.add_argument(
            "--force", action="store_true", help="start over in OUT, removing only the run's files"
        )
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
    exp.add_argument("--force", action="store_true", help="replace an earlier export in OUT")
    exp.add_argument("--dataset", choices=DATASETS, help="default: the checkpoint's")
    exp.add_argument("--data-dir", type=Path, help="folder with the IDX files")
    exp.add_argument("--download", action="store_true", help="download the dataset if not found")
    exp.add_argument("--test-limit", type=positive_int, help="use only the first N test samples")
    exp.add_argument("--device", default="cpu")
    add_threads_flag(exp)
    plot = sub.add_parser("plot", help="plot accuracy, local loss and spike activity of a run")
    plot.add_argument("run_dir", type=Path)
    plot.add_argument("--data-dir", type=Path)
    plot.add_argument("--test-limit", type=positive_int, default=2000)
    plot.add_argument("--device", default="cpu")
    add_threads_flag(plot)
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
        raise UserError("--resume needs --out RUN_DIR (the run to continue)")
    cfg, initial = _initial(args)
    dataset = args.dataset or DEFAULT_DATASET
    if args.arith == "fixed":
        _train_fixed(args, cfg, dataset, initial)
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
        force=args.force,
        download=args.download,
        lr_batch_power=args.lr_batch_power,
        batch_warmup=args.batch_warmup,
        cuda_graph=args.cuda_graph,
        initial_weights=initial,
    )
    if not args.quiet:
        print(f"run directory: {opts.out}", flush=True)
    train(cfg, opts)


def _initial(args: argparse.Namespace) -> tuple[Config, list[np.ndarray] | None]:
    """The run's config and, with ``--model-path``, its initial float weights."""
    if args.model_path is None:
        return build_config(args), None
    if args.resume:
        raise UserError("--model-path starts a run from its weights; --resume continues a run")
    state = load_checkpoint(args.model_path)
    cfg = build_config(args, Config.from_dict(state["config"]))
    return cfg, checkpoint_weights(state, cfg, args.model_path)


def _train_fixed(
    args: argparse.Namespace, cfg: Config, dataset: str, initial: list[np.ndarray] | None
) -> None:
    """Online training in the accelerator's integer arithmetic on ``--device``."""
    if args.batch_size not in (None, 1):
        raise UserError("--arith fixed trains online, like the hardware: use --batch-size 1")
    out = args.out or default_run_dir(dataset)
    start = Start.from_flags(args.resume, args.force)
    golden_train.run_folder(out).check(start)

    def fresh() -> FixedNet:
        start = GoldenNet.init_random(cfg, args.seed) if initial is None else None
        weights = start.weights if start else GoldenNet.from_float(cfg, initial).weights
        return FixedNet(cfg, weights, args.device)

    def resumed(stored: Config, weights: list) -> FixedNet:
        return FixedNet(stored, weights, args.device)

    data = (_data(args, dataset, "train", args.train_limit), _test_data(args, dataset))
    run = golden_train.OnlineRun(out, args.epochs, args.seed, args.quiet)
    golden_train.run_online(run, start, fresh, resumed, data, dataset)


def _data(args: argparse.Namespace, dataset: str, split: str, limit: int | None):
    return load_dataset(dataset, split, args.data_dir, args.download, limit)


def _test_data(args: argparse.Namespace, dataset: str):
    return _data(args, dataset, "test", args.test_limit)


def _cmd_eval(args: argparse.Namespace) -> None:
    if args.model_path is None:
        raise UserError("evaluation needs --model-path CHECKPOINT")
    state = load_checkpoint(args.model_path)
    cfg = build_config(args, Config.from_dict(state["config"]))
    dataset = args.dataset or state.get("dataset", DEFAULT_DATASET)
    weights = checkpoint_weights(state, cfg, args.model_path)
    if args.arith == "fixed":
        fixed = FixedNet(cfg, GoldenNet.from_float(cfg, weights).weights, args.device)
        x, y = _test_data(args, dataset)
        t0 = time.perf_counter()
        acc = accuracy(fixed, x, y)
        rate = len(y) / (time.perf_counter() - t0)
        print(f"fixed-point test accuracy {acc:.2%} on {len(y)} samples; {rate:.0f} samples/s")
        return
    net = net_from_checkpoint(state, cfg, args.device, args.dtype)
    data = load_data(dataset, "test", net.device, args.data_dir, args.test_limit, args.download)
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
    test = _test_data(args, dataset)
    res = export_checkpoint(args.model_path, args.out, cfg, test, force=args.force)
    print(f"wrote {res.path} ({res.clipped_weights} weights saturated)")
    print(f"{'arithmetic':<12}{'test accuracy':>14}  ({len(test[1])} {dataset} samples)")
    print(f"{'float':<12}{res.float_accuracy:>14.2%}")
    print(f"{'fixed':<12}{res.fixed_accuracy:>14.2%}")


def _cmd_plot(args: argparse.Namespace) -> None:
    from model.plots import plot_run  # matplotlib only when plotting

    for path in plot_run(args.run_dir, args.data_dir, args.test_limit, args.device):
        print(path)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m model`` and ``desire-model``; user errors exit 2, one line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    _check_device(args.device)
    with user_errors(parser):
        if args.command == "plot":
            _cmd_plot(args)
        elif args.command == "export":
            _cmd_export(args)
        elif args.command == "eval" or args.eval:
            _cmd_eval(args)
        else:
            _cmd_train(args)


if __name__ == "__main__":
    main()
