"""Which batch learning-rate rule keeps batch 1's accuracy after equal epochs?

Reads a sweep summary (bench/sweep.py) that holds batch-1 runs (``b1-<net>[-sN]``) and
batched runs (``rule-<net>-b<B>-p<P>[-wW][-sN]``, the same networks) and prints, per network,
batch size, power P of :func:`model.train.batch_lr` and warm-up W (samples,
:func:`model.train.batch_sizes`), the test accuracy after the
last epoch that batch 1 reached, against batch 1's at that epoch (means over seeds
where there are several) and whether it is within ``--tolerance`` points.

    python bench/batching_rule.py bench/results/sweep_h200.json \\
        --out bench/results/batching_rule.json --plot bench/results/batching_rule.png
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from report import emit, out_file  # bench/ is on sys.path when a script here runs

from desire.atomic import atomic_write

_BATCH1 = re.compile(r"b1-(?P<net>[\w.-]+?)(?:-s(?P<seed>\d+))?")
_RULE = re.compile(
    r"rule-(?P<net>[\w.-]+?)-b(?P<b>\d+)-p(?P<p>-?[\d.]+)(?:-w(?P<w>\d+))?(?:-s(?P<seed>\d+))?"
)
#: the batch-1 runs are named after their hidden layers, the batched ones after a preset
ALIASES = {"fmnist-1000": "fmnist-1000", "n1000-100": "fmnist-1000"}

#: curves by seed (None: a run without one)
Curves = dict[int | None, list[float]]


def _seed(m: re.Match[str]) -> int | None:
    return None if m["seed"] is None else int(m["seed"])


def _curves(runs: list[dict[str, Any]]) -> tuple[dict[str, Curves], dict[tuple, Curves]]:
    """Batch-1 curves per network; batched ones per (network, batch, power, warm-up)."""
    batch1: dict[str, Curves] = defaultdict(dict)
    rules: dict[tuple[str, int, float, int], Curves] = defaultdict(dict)
    for run in runs:
        acc = [e["test_acc"] for e in run["epochs"]]
        if m := _BATCH1.fullmatch(run["name"]):
            batch1[ALIASES.get(m["net"], m["net"])][_seed(m)] = acc
        elif m := _RULE.fullmatch(run["name"]):
            key = (m["net"], int(m["b"]), float(m["p"]), int(m["w"] or 0))
            rules[key][_seed(m)] = acc
    return batch1, rules


def _mean_at(curves: Curves, epoch: int) -> tuple[float, int]:
    """Mean accuracy (points) after ``epoch`` over the curves that reached it, and their count."""
    values = [c[epoch - 1] for c in curves.values() if len(c) >= epoch]
    return round(100 * statistics.mean(values), 2), len(values)


def _seed_diffs(ref: Curves, curves: Curves, epoch: int) -> dict[str, float]:
    """Per seed run both ways: accuracy - batch 1's after ``epoch`` (points): the spread
    says how far one seed's difference is from the mean's."""
    return {
        str(s): round(100 * (c[epoch - 1] - ref[s][epoch - 1]), 2)
        for s, c in sorted(curves.items(), key=lambda kv: str(kv[0]))
        if s in ref and len(c) >= epoch and len(ref[s]) >= epoch
    }


def compare(runs: list[dict[str, Any]], tolerance: float) -> list[dict[str, Any]]:
    """One row per (network, batch, power, warm-up) with a batch-1 run of the same network."""
    batch1, rules = _curves(runs)
    rows = []
    for (net, batch, power, warmup), curves in sorted(rules.items()):
        if net not in batch1:
            continue
        last = min(max(len(c) for c in batch1[net].values()), max(len(c) for c in curves.values()))
        per_epoch = []
        for epoch in range(1, last + 1):
            (ref, n_ref), (acc, n_acc) = _mean_at(batch1[net], epoch), _mean_at(curves, epoch)
            per_epoch.append(
                {"epoch": epoch, "batch1": ref, "batch1_runs": n_ref, "acc": acc, "runs": n_acc}
            )
        end = per_epoch[-1]
        rows.append(
            {
                "network": net,
                "batch_size": batch,
                "lr_batch_power": power,
                "batch_warmup": warmup,
                "epochs": last,
                "batch1_acc": end["batch1"],
                "acc": end["acc"],
                "diff_points": round(end["acc"] - end["batch1"], 2),
                "diff_per_seed": _seed_diffs(batch1[net], curves, last),
                "within_tolerance": end["batch1"] - end["acc"] <= tolerance,
                "per_epoch": per_epoch,
            }
        )
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Accuracy difference to batch 1 against batch size, one line per network and power."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    lines: dict[tuple[str, float, int], list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        key = (r["network"], r["lr_batch_power"], r.get("batch_warmup", 0))
        lines[key].append((r["batch_size"], r["diff_points"]))
    for (net, power, warmup), pts in sorted(lines.items()):
        pts.sort()
        label = f"{net}, P = {power:g}" + (f", warm-up {warmup}" if warmup else "")
        ax.plot(*zip(*pts, strict=True), marker="o", label=label)
    ax.axhline(-0.5, color="grey", ls="--", lw=1, label="-0.5 points")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size (lr * B^-P on the summed update)")
    ax.set_ylabel("test accuracy - batch 1 (points, equal epochs)")
    ax.set_ylim(bottom=max(-12, min(r["diff_points"] for r in rows) - 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("summary", type=Path, help="a sweep summary JSON (bench/sweep.py)")
    p.add_argument("--tolerance", type=float, default=0.5, help="points below batch 1")
    p.add_argument("--out", type=out_file, help="also write the JSON here")
    p.add_argument("--plot", type=Path, help="write the comparison (PNG) here")
    args = p.parse_args()
    try:
        runs = json.loads(args.summary.read_text(encoding="utf-8"))["runs"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"batching_rule.py: cannot read sweep summary {args.summary}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    rows = compare(runs, args.tolerance)
    if args.plot and rows:
        plot(rows, args.plot)
    emit({"summary": str(args.summary), "tolerance_points": args.tolerance, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
