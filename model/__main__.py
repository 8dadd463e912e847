"""Command line: ``python -m model train|eval|plot``.

Flag names follow the reference implementation (``--tsteps``,
``--mempot-thres``, ``--desire-thres``, ``--dropout``, ``--eval``,
``--model-path`` ...). Network flags default to the config (``--config`` file
or ``--preset``) and only override it when given, so the config stays the one
source of truth.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from desire.config import PRESETS, Config, ConfigError, load_config
from desire.datasets import DATASETS, DatasetError

ARITHS = ("float", "fixed")
DEFAULT_NET = PRESETS["default"].network
_THRESHOLDS = (
    DEFAULT_NET.desire_thres_conv,
    DEFAULT_NET.desire_thres_hidden,
    DEFAULT_NET.desire_thres_output,
)


def _fmt(values: Sequence[float]) -> str:
    return " ".join(f"{v:g}" for v in values)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_network_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("network (defaults from --config / --preset)")
    g.add_argument("--config", type=Path, help="TOML or JSON config file")
    g.add_argument("--preset", choices=sorted(PRESETS), help="named config (default: default)")
    g.add_argument("--layers", type=int, nargs="+", help=f"sizes, e.g. {DEFAULT_NET.layers}")
    g.add_argument("--tsteps", type=int, help=f"time steps ({DEFAULT_NET.tsteps})")
    g.add_argument("--mempot-thres", type=float, help=f"threshold ({DEFAULT_NET.mempot_thres})")
    g.add_argument("--mempot-decay", type=int, help=f"decay 2^-k, k ({DEFAULT_NET.mempot_decay})")
    g.add_argument(
        "--desire-thres",
        type=float,
        nargs=3,
        metavar=("CONV", "HIDDEN", "OUTPUT"),
        help=f"ternarisation thresholds ({_fmt(_THRESHOLDS)})",
    )
    g.add_argument("--error-margin", type=int, help=f"R = T - m ({DEFAULT_NET.error_margin})")
    g.add_argument(
        "--dropout",
        type=float,
        nargs=2,
        metavar=("INPUT", "HIDDEN"),
        help=f"dropout probabilities ({_fmt(DEFAULT_NET.dropout)})",
    )
    g.add_argument("--lr", type=float, help=f"learning rate ({DEFAULT_NET.lr})")


def _add_run_flags(p: argparse.ArgumentParser, training: bool) -> None:
    p.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
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
    p.add_argument("--test-limit", type=_positive_int, help="use only the first N test samples")
    p.add_argument("--eval-batch-size", type=_positive_int, default=500)
    p.add_argument("--quiet", action="store_true", help="no progress bars or summaries")
    p.add_argument("--model-path", type=Path, help="checkpoint to evaluate")
    if training:
        p.add_argument("--epochs", type=_positive_int, default=1)
        p.add_argument("--batch-size", type=_positive_int, default=1, help="1 = reference (online)")
        p.add_argument("--train-limit", type=_positive_int, help="use only N training samples")
        p.add_argument("--out", type=Path, help="run directory (default runs/<dataset>-<time>)")
        p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
        p.add_argument("--eval", action="store_true", help="only evaluate --model-path")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model", description="Desire backpropagation trainer for SNNs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a network")
    _add_network_flags(train)
    _add_run_flags(train, training=True)
    ev = sub.add_parser("eval", help="evaluate a checkpoint on the test set")
    _add_network_flags(ev)
    _add_run_flags(ev, training=False)
    plot = sub.add_parser("plot", help="plot accuracy, local loss and spike activity of a run")
    plot.add_argument("run_dir", type=Path)
    plot.add_argument("--data-dir", type=Path)
    plot.add_argument("--test-limit", type=_positive_int, default=2000)
    plot.add_argument("--device", default="cpu")
    return parser


def network_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``[network]`` fields given on the command line."""
    changes: dict[str, Any] = {}
    for flag in ("tsteps", "mempot_thres", "mempot_decay", "error_margin", "lr"):
        if getattr(args, flag) is not None:
            changes[flag] = getattr(args, flag)
    if args.layers is not None:
        changes["layers"] = tuple(args.layers)
    if args.dropout is not None:
        changes["dropout"] = tuple(args.dropout)
    if args.desire_thres is not None:
        conv, hidden, output = args.desire_thres
        changes |= {
            "desire_thres_conv": conv,
            "desire_thres_hidden": hidden,
            "desire_thres_output": output,
        }
    return changes


def build_config(args: argparse.Namespace, base: Config | None = None) -> Config:
    """Config file or preset (or ``base``), then the command-line overrides."""
    if base is None or args.config is not None or args.preset is not None:
        base = load_config(args.config, args.preset)
    changes = network_overrides(args)
    return base.replace(network=changes) if changes else base


def _check_arith(args: argparse.Namespace) -> None:
    if args.arith != "float":
        raise SystemExit(
            f"--arith {args.arith}: the fixed-point path is not yet available; use --arith float"
        )


def _check_device(device: str) -> None:
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise SystemExit(f"bad --device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: CUDA is not available on this machine")


def _cmd_train(args: argparse.Namespace) -> None:
    from model.train import TrainOptions, default_run_dir, train

    cfg = build_config(args)
    opts = TrainOptions(
        out=args.out or default_run_dir(args.dataset),
        dataset=args.dataset,
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


def _cmd_eval(args: argparse.Namespace) -> None:
    from model.train import evaluate, load_checkpoint, load_data, net_from_checkpoint

    if args.model_path is None:
        raise SystemExit("evaluation needs --model-path CHECKPOINT")
    state = load_checkpoint(args.model_path)
    base = Config.from_dict(state["config"])
    net = net_from_checkpoint(state, build_config(args, base), args.device, args.dtype)
    data = load_data(args.dataset, "test", net.device, args.data_dir, args.test_limit)
    stats = evaluate(net, data, args.eval_batch_size, quiet=args.quiet)
    losses = " ".join(f"{x:.4f}" for x in stats.local_loss)
    print(
        f"test accuracy {stats.accuracy:.2%} on {len(data)} samples; "
        f"local loss [{losses}]; {stats.samples_per_s:.0f} samples/s"
    )


def _cmd_plot(args: argparse.Namespace) -> None:
    from model.plots import plot_run

    for path in plot_run(args.run_dir, args.data_dir, args.test_limit, args.device):
        print(path)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m model`` and ``desire-model``; errors exit with a message."""
    from model.train import CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    _check_device(args.device)
    try:
        if args.command == "plot":
            _cmd_plot(args)
            return
        _check_arith(args)
        if args.command == "eval" or args.eval:
            _cmd_eval(args)
        else:
            _cmd_train(args)
    except (ConfigError, CheckpointError, DatasetError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
