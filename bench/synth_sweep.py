"""Lane sweep on ECP5: LUTs, FFs, block RAM, DSPs and Fmax of one config for several P.

Why a sweep: ``hardware.lanes`` (P) trades area for cycles per input spike
(``ceil(n_out / P)``), and the question for a board is how LUTs, block RAM and
Fmax move with it. Each point is a full ``rtl.synth`` run (yosys + nextpnr);
points that do not fit are recorded with the overflowing resource instead of
aborting the sweep, and so are routes that ``rtl.synth`` stops because
router2 diverges. ``--seeds`` repeats each point with other placer seeds:
nextpnr's Fmax moves by 5-15 % from seed to seed on the same netlist.

    python bench/synth_sweep.py --device 85k --lanes 1 2 4 8 16 \
        --out bench/results/synth_sweep_85k.json
    python bench/synth_sweep.py --speed 8 --lanes 8 --seeds 1 2 3 4 5 6 7 8 9 10 \
        --out bench/results/synth_ecp5_85k_s8_seeds.json
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from desire.config import PRESETS, load_config
from desire.errors import OutputError
from rtl.synth import (
    DEVICES,
    ECP5_SPEED_GRADES,
    PLACERS,
    TABLE_HEADER,
    SynthError,
    markdown_row,
    synthesise,
)


@dataclass(frozen=True)
class Point:
    """One run of the sweep: a lane count and a placer seed, the rest shared."""

    config: str | None
    preset: str
    device: str
    speed: int
    placer: str
    freq: float
    build: Path
    lanes: int
    seed: int


def _run(point: Point) -> dict[str, Any]:
    """One point; a failure becomes an ``error`` entry so the other points still run."""
    preset = None if point.config else point.preset
    cfg = load_config(point.config, preset).replace(hardware={"lanes": point.lanes})
    out = point.build / f"p{point.lanes}" / f"seed{point.seed}"
    try:
        return synthesise(
            cfg,
            "ecp5",
            point.device,
            out=out,
            freq=point.freq,
            seed=point.seed,
            speed=point.speed,
            placer=point.placer,
        )
    except (SynthError, OutputError) as exc:  # a failed or refused point; the others run on
        layers = list(cfg.network.layers)
        return {"lanes": point.lanes, "seed": point.seed, "layers": layers, "error": str(exc)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--config", help="TOML or JSON config file")
    src.add_argument("--preset", choices=sorted(PRESETS), default="default")
    parser.add_argument("--device", choices=[k for t, k in DEVICES if t == "ecp5"], default="85k")
    parser.add_argument("--speed", type=int, choices=ECP5_SPEED_GRADES, default=6)
    parser.add_argument("--placer", choices=PLACERS, default="heap")
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="nextpnr placer seeds")
    parser.add_argument("--freq", type=float, default=100.0, help="clock target, MHz")
    parser.add_argument("--jobs", type=int, default=2, help="points run in parallel")
    parser.add_argument("--build", type=Path, help="default: build/synth_sweep_DEVICE[_sSPEED]")
    parser.add_argument(
        "--out", type=Path, help="default: bench/results/synth_sweep_DEVICE[_sSPEED].json"
    )
    args = parser.parse_args()
    name = args.device + ("" if args.speed == ECP5_SPEED_GRADES[0] else f"_s{args.speed}")
    build = args.build or Path(f"build/synth_sweep_{name}")
    args.out = args.out or Path(f"bench/results/synth_sweep_{name}.json")
    shared = (args.config, args.preset, args.device, args.speed, args.placer, args.freq, build)
    work = [Point(*shared, lanes, seed) for lanes in args.lanes for seed in args.seeds]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = sorted(pool.map(_run, work), key=lambda r: (r["lanes"], r["seed"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"points": results}, indent=2, sort_keys=True) + "\n")
    print(TABLE_HEADER)
    for res in results:
        if "error" in res:
            print(
                f"| ecp5 | - | {'-'.join(map(str, res['layers']))} | {res['lanes']} | "
                f"{res['error']} |"
            )
        else:
            print(markdown_row(res))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
