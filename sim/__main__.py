"""``python -m sim``: the cocotb regression on ``SIM=icarus|verilator|all`` (default all).

Options: ``--config FILE`` / ``--preset NAME`` (default: the CI config,
:data:`sim.runner.CI_CONFIG`), ``--images N`` Fashion-MNIST images for the
accelerator. Prints one ``<sim>: N passed, N failed`` line per simulator and
exits non-zero on any failure; a user mistake (a bad config, ``SIM`` or ``SEED``)
is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from desire.cli import positive_int, user_errors
from desire.config import PRESETS, Config, load_config
from desire.errors import UserError
from sim.runner import CI_CONFIG, SIMULATORS, coverage_summary, regression


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--config", type=Path, help="TOML or JSON config file")
    src.add_argument("--preset", choices=sorted(PRESETS), help="named config")
    parser.add_argument(
        "--images", type=positive_int, default=None, help="Fashion-MNIST images (top level)"
    )
    return parser


def _simulators() -> tuple[str, ...]:
    """The simulators ``SIM`` names; UserError for anything else."""
    choice = os.environ.get("SIM", "all")
    if choice not in (*SIMULATORS, "all"):
        raise UserError(f"SIM must be one of {', '.join((*SIMULATORS, 'all'))}, not {choice!r}")
    return SIMULATORS if choice == "all" else (choice,)


def _check_seed() -> None:
    """Refuse a ``SEED`` that is not an integer before anything is built.

    Why here: the runner reads it only once the first simulator is set up, where a
    typo would end in a traceback.
    """
    text = os.environ.get("SEED", "")
    try:
        int(text or "0", 0)
    except ValueError:
        raise UserError(f"SEED must be an integer, not {text!r}") from None


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config, args.preset) if args.config or args.preset else CI_CONFIG


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    with user_errors(parser):
        sims = _simulators()
        _check_seed()
        cfg = _config(args)
        env = {} if args.images is None else {"DESIRE_IMAGES": str(args.images)}
        results = regression(sims, cfg, extra_env=env)
    holes = coverage_summary(results)[1]
    return 0 if results and all(r.ok for r in results) and not holes else 1


if __name__ == "__main__":
    raise SystemExit(main())
