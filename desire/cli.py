"""Command-line flags shared by every tool, with the reference implementation's names.

``add_config_args`` adds ``--config/--preset`` and the reference's network
flags (``--tsteps``, ``--mempot-thres``, ...); ``config_from_args`` builds the
:class:`~desire.config.Config` they describe, so that ``python -m model`` and
``python -m golden`` accept the same spelling for the same thing.
"""

from __future__ import annotations

import argparse
from typing import Any

from desire.config import Config, ConfigError, load_config
from desire.datasets import DATASETS

__all__ = ["add_config_args", "add_data_args", "config_from_args"]

#: flag destination -> Network field it overrides
_NETWORK_FLAGS = {
    "layers": "layers",
    "tsteps": "tsteps",
    "mempot_thres": "mempot_thres",
    "mempot_decay": "mempot_decay",
    "error_margin": "error_margin",
    "dropout": "dropout",
    "lr": "lr",
}


def add_config_args(p: argparse.ArgumentParser) -> None:
    """Config file / preset plus the reference's network flags (default: from the config)."""
    g = p.add_argument_group("network (defaults from --config / --preset)")
    g.add_argument("--config", help="TOML or JSON config file")
    g.add_argument("--preset", help="named config: default, fmnist-1000, mnist-1600")
    g.add_argument("--layers", type=int, nargs="+", help="layer sizes, e.g. 784 1000 100 10")
    g.add_argument("--tsteps", type=int, help="time steps per sample")
    g.add_argument("--mempot-thres", type=float, help="membrane threshold")
    g.add_argument("--mempot-decay", type=int, help="decay exponent k: beta = 1 - 2^-k")
    g.add_argument(
        "--desire-thres",
        type=float,
        nargs=3,
        metavar=("CONV", "HIDDEN", "OUTPUT"),
        help="ternarisation thresholds of conv, hidden and output layers",
    )
    g.add_argument("--error-margin", type=int, help="target count is tsteps - error_margin")
    g.add_argument("--dropout", type=float, nargs=2, metavar=("INPUT", "HIDDEN"))
    g.add_argument("--lr", type=float, help="learning rate of epoch 0")


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    g.add_argument("--data-dir", help="folder with the IDX files (default: search known places)")
    g.add_argument("--download", action="store_true", help="download the dataset if not found")
    g.add_argument("--train-limit", type=int, help="use only the first N training samples")
    g.add_argument("--test-limit", type=int, help="use only the first N test samples")


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Config:
    """The config the flags describe; a bad value ends the program with a clear message."""
    try:
        cfg = load_config(args.config, args.preset)
        changes: dict[str, Any] = {
            field: tuple(v) if isinstance(v, list) else v
            for flag, field in _NETWORK_FLAGS.items()
            if (v := getattr(args, flag, None)) is not None
        }
        if getattr(args, "desire_thres", None) is not None:
            conv, hidden, output = args.desire_thres
            changes |= {
                "desire_thres_conv": conv,
                "desire_thres_hidden": hidden,
                "desire_thres_output": output,
            }
        return cfg.replace(network=changes) if changes else cfg
    except (ConfigError, TypeError) as exc:
        parser.error(str(exc))
