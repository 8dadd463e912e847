"""``python -m sim``: the cocotb regression on ``SIM=icarus|verilator|all`` (default all).

Options: ``--config FILE`` / ``--preset NAME`` (default: the CI config,
:data:`sim.runner.CI_CONFIG`), ``--images N`` Fashion-MNIST images for the
accelerator. Prints one ``<sim>: N passed, N failed`` line per simulator and
exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from desire.config import PRESETS, load_config
from sim.runner import CI_CONFIG, SIMULATORS, regression

parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
src = parser.add_mutually_exclusive_group()
src.add_argument("--config", type=Path, help="TOML or JSON config file")
src.add_argument("--preset", choices=sorted(PRESETS), help="named config")
parser.add_argument("--images", type=int, default=None, help="Fashion-MNIST images (top level)")
args = parser.parse_args()
choice = os.environ.get("SIM", "all")
if choice not in (*SIMULATORS, "all"):
    parser.error(f"SIM must be one of {(*SIMULATORS, 'all')}, not {choice!r}")
sims = SIMULATORS if choice == "all" else (choice,)
cfg = load_config(args.config, args.preset) if args.config or args.preset else CI_CONFIG
env = {} if args.images is None else {"DESIRE_IMAGES": str(args.images)}
results = regression(sims, cfg, extra_env=env)
raise SystemExit(0 if results and all(r.ok for r in results) else 1)
