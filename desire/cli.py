"""Command-line flags shared by every tool, with the reference implementation's names.

``add_network_flags`` adds ``--config/--preset`` and the reference's network
flags (``--tsteps``, ``--mempot-thres``, ...); ``build_config`` builds the
:class:`~desire.config.Config` they describe. Network flags only override the
config when given, so the config file stays the one source of truth, and
``python -m model`` and ``python -m golden`` accept the same spelling for the
same thing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from desire.config import PRESETS, Config, load_config
from desire.datasets import DATASETS
from desire.errors import UserError

__all__ = [
    "DEFAULT_DATASET",
    "add_data_flags",
    "add_network_flags",
    "add_threads_flag",
    "apply_threads",
    "build_config",
    "network_overrides",
    "positive_int",
    "user_errors",
]

DEFAULT_DATASET = "fashion-mnist"
_NET = PRESETS["default"].network


def _fmt(values: Sequence[float]) -> str:
    return " ".join(f"{v:g}" for v in values)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, with a readable error otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


@contextmanager
def user_errors(parser: argparse.ArgumentParser) -> Iterator[None]:
    """Turn a :class:`~desire.errors.UserError` into one line on stderr and exit status 2.

    Every tool's ``main`` runs its command inside this, so a user mistake found anywhere
    below reads as a sentence, never as a traceback; Ctrl-C exits 130 quietly.
    """
    try:
        yield
    except UserError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except KeyboardInterrupt:
        sys.exit(130)


def add_network_flags(p: argparse.ArgumentParser) -> None:
    """Config file / preset plus the reference's network flags (defaults from the config)."""
    g = p.add_argument_group("network (defaults from --config / --preset)")
    g.add_argument("--config", type=Path, help="TOML or JSON config file")
    g.add_argument("--preset", choices=sorted(PRESETS), help="named config (default: default)")
    g.add_argument("--layers", type=int, nargs="+", help=f"sizes, e.g. {_fmt(_NET.layers)}")
    g.add_argument("--tsteps", type=int, help=f"time steps ({_NET.tsteps})")
    g.add_argument("--mempot-thres", type=float, help=f"threshold ({_NET.mempot_thres})")
    g.add_argument("--mempot-decay", type=int, help=f"decay 2^-k, k ({_NET.mempot_decay})")
    thresholds = (_NET.desire_thres_conv, _NET.desire_thres_hidden, _NET.desire_thres_output)
    g.add_argument(
        "--desire-thres",
        type=float,
        nargs=3,
        metavar=("CONV", "HIDDEN", "OUTPUT"),
        help=f"ternarisation thresholds ({_fmt(thresholds)})",
    )
    g.add_argument("--error-margin", type=int, help=f"R = T - m ({_NET.error_margin})")
    g.add_argument(
        "--dropout",
        type=float,
        nargs=2,
        metavar=("INPUT", "HIDDEN"),
        help=f"dropout probabilities ({_fmt(_NET.dropout)})",
    )
    g.add_argument("--lr", type=float, help=f"learning rate of epoch 0 ({_NET.lr})")


def add_data_flags(
    p: argparse.ArgumentParser, dataset_default: str | None = DEFAULT_DATASET
) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default=dataset_default)
    g.add_argument("--data-dir", type=Path, help="folder with the IDX files (default: search)")
    g.add_argument("--download", action="store_true", help="download the dataset if not found")
    g.add_argument("--test-limit", type=positive_int, help="use only the first N test samples")


def add_threads_flag(p: argparse.ArgumentParser) -> None:
    """``--threads N`` for tools that compute with torch; absent, torch keeps its default."""
    p.add_argument(
        "--threads",
        type=positive_int,
        help="CPU threads for torch (default: torch's choice, one per core)",
    )


def apply_threads(threads: int | None) -> None:
    """Give torch ``threads`` intra-op threads and, where torch still allows it, inter-op ones.

    ``None`` changes nothing, so the default stays torch's own. Torch takes the inter-op
    count once per process and only before inter-op work has started; where that has
    passed (``main`` called again in one process) that pool stays as it is: it only runs
    independent operations side by side, while each operation's arithmetic uses the
    intra-op threads set here. Torch is imported here rather than at the top because
    golden/'s command line uses this module and never needs torch.
    """
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)
    with suppress(RuntimeError):
        torch.set_num_interop_threads(threads)


def network_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``[network]`` fields given on the command line."""
    changes: dict[str, Any] = {}
    for flag in ("tsteps", "mempot_thres", "mempot_decay", "error_margin", "lr"):
        if getattr(args, flag, None) is not None:
            changes[flag] = getattr(args, flag)
    if getattr(args, "layers", None) is not None:
        changes["layers"] = tuple(args.layers)
    if getattr(args, "dropout", None) is not None:
        changes["dropout"] = tuple(args.dropout)
    if getattr(args, "desire_thres", None) is not None:
        conv, hidden, output = args.desire_thres
        changes |= {
            "desire_thres_conv": conv,
            "desire_thres_hidden": hidden,
            "desire_thres_output": output,
        }
    return changes


def build_config(args: argparse.Namespace, base: Config | None = None) -> Config:
    """Config file or preset (or ``base``, e.g. a checkpoint's), then the command-line overrides.

    Raises :class:`~desire.config.ConfigError` for values out of range.
    """
    if base is None or args.config is not None or args.preset is not None:
        base = load_config(args.config, args.preset)
    changes = network_overrides(args)
    return base.replace(network=changes) if changes else base
