"""Long on-chip training run on the RTL, every weight compared with golden/ at the end.

    python bench/rtl_training.py [--samples 300] [--sim verilator]
        [--out bench/results/rtl_training.json]

Runs the accelerator's cocotb test (sim/test_accelerator.py) with
``DESIRE_TRAIN_SAMPLES`` consecutive Fashion-MNIST training samples on the CI
config (784-32-10) and records the outcome and the simulator's own report lines.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from report import emit, out_file  # bench/ is on sys.path when a script here runs

from sim.runner import CI_CONFIG, run


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    p.add_argument("--out", type=out_file, help="also write the JSON here")
    args = p.parse_args()
    log = Path("build") / f"rtl_training_{args.sim}.log"
    log.parent.mkdir(exist_ok=True)
    env = {"DESIRE_IMAGES": "1", "DESIRE_TRAIN_SAMPLES": str(args.samples)}
    result = run("accelerator", args.sim, CI_CONFIG, extra_env=env, log_file=log)
    lines = [ln.strip() for ln in log.read_text().splitlines() if re.match(r"\s*training:", ln)]
    out = {
        "command": f"python bench/rtl_training.py --samples {args.samples} --sim {args.sim}",
        "layers": list(CI_CONFIG.network.layers),
        "samples": args.samples,
        "passed": result.ok,
        "seconds": round(result.seconds, 1),
        "report": lines,
    }
    emit(out, args.out)


if __name__ == "__main__":
    main()
