"""The best network each FPGA target holds: accuracy, memory, resources and speed.

    python bench/targets.py [--images 200] [--out bench/results/targets.json]
        [--plot bench/results/targets.png]

Per target: the shipped model chosen for it (``exports/<name>/export``: float and
fixed-point accuracy on all 10,000 Fashion-MNIST test images, measured when it was
shipped; where ``bench/finetune_fixed.py`` has run, also the fixed-point accuracy after
fine-tuning that model online in the accelerator's arithmetic), its weight memory, the
synthesis figures of that network on that part (``bench/results/targets_synth.json``:
block RAM, LUT, FF, Fmax; written by ``python -m rtl.synth`` runs) and inference
samples/s at that Fmax, from the exact cycle model (``rtl.cycle_model``, equal to the
RTL's CYCLES register) on ``--images`` test images. The plot puts every trained
candidate (``bench/results/sweep_h200.json``) at its weight memory against its best
float test accuracy, beside each part's block RAM.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
from report import emit  # bench/ is on sys.path when a script here runs

from desire.atomic import atomic_write
from desire.config import Config, load_config
from desire.datasets import load_dataset
from golden import GoldenNet
from golden.export import load_export
from rtl.cycle_model import cycle_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
#: target -> (synthesis device key, on-chip weight RAM of the part in Kbit, shipped model,
#: hardware: a config file whose [hardware] to use, changes to the export's, or None):
#: the largest 784-H-10 whose synthesis fits the part (bench/results/targets_synth.json):
#: with the default hardware (8 lanes per layer, the training units) on the 45F; on the
#: 85F inference on a pool of 8 lanes (configs/ecp5_85f.toml: with the training units,
#: 784-240-10 took 201 of 208 block RAMs and did not route);
#: on the 25F with its board's (configs/ecp5_25f.toml: inference on a pool of 4 lanes, 13
#: block RAMs per lane, which 784-64-10 fills; with the training units, 4 lanes per layer,
#: it held only 784-32-10, and at 8 nextpnr's packer needed 26,397 LUT4s of 24,288);
#: on the UP5K with its board's (configs/ice40_up5k.toml: inference on a pool of 4 lanes,
#: one SPRAM of 16K words per lane, which 784-80-10 fills)
TARGETS: dict[str, tuple[str | None, float | None, str, str | dict[str, Any] | None]] = {
    "iCE40UP5K (SPRAM)": ("up5k", 4 * 256, "fmnist-784-80-10", "configs/ice40_up5k.toml"),
    "ECP5-25F": ("25f", 56 * 18, "fmnist-784-64-10", "configs/ecp5_25f.toml"),
    "ECP5-45F": ("45f", 108 * 18, "fmnist-784-112-10", None),
    "ECP5-85F": ("85f", 208 * 18, "fmnist-784-240-10", "configs/ecp5_85f.toml"),
    "external memory (AXI)": (None, None, "fmnist-784-256-10", None),
}


def weight_kbit(layers: tuple[int, ...] | list[int], weight_bits: int) -> float:
    """Bits of all weights of ``layers`` at ``weight_bits`` each, in Kbit (1024 bits)."""
    return sum(a * b for a, b in itertools.pairwise(layers)) * weight_bits / 1024


def mean_cycles(cfg: Config, weights: list[np.ndarray], images: int) -> float:
    """Mean inference cycles per sample of the RTL (exact model) on the first test images."""
    net = GoldenNet(cfg, weights)
    x, _ = load_dataset("fashion-mnist", "test", limit=images)
    rec = net.forward(x, record=True)
    cycles = [
        cycle_model(cfg, rec.input_spikes[:, k], [s[:, k] for s in rec.spikes]).cycles
        for k in range(images)
    ]
    return float(np.mean(cycles))


def _synth(device: str | None, cfg: Config) -> dict[str, Any] | None:
    """The synthesis record of ``cfg``'s network and hardware (architecture, lanes,
    training, weight ports, spike vectors; rows without the last two are of the default
    2 and registers) on ``device``: one that fits first, and of those one that was
    placed and routed."""
    path = RESULTS / "targets_synth.json"
    if device is None or not path.is_file():
        return None
    hw = cfg.hardware
    rows = [
        row
        for row in json.loads(path.read_text(encoding="utf-8"))
        if device in str(row["device"]).lower()
        and list(row["layers"]) == list(cfg.network.layers)
        and row.get("weight_bits", 16) == cfg.formats.weight_bits
        and row.get("architecture", "per-layer") == hw.architecture
        and row.get("lanes") == hw.lanes
        and row.get("training", True) == hw.training
        and row.get("weight_ports", 2) == hw.weight_ports
        and row.get("spike_vectors", "registers") == hw.spike_vectors
    ]
    rows.sort(key=lambda r: (not r.get("fits", True), r.get("fmax_mhz") is None))
    return rows[0] if rows else None


def _finetuned(layers: list[int]) -> dict[str, Any] | None:
    """The fixed-point fine-tune of the shipped ``layers`` (``bench/finetune_fixed.py``):
    its default run (no ``--tag``), trained on all 60,000 images and measured on all
    10,000, so that the figure sits beside the manifest's. Tagged runs (other rates,
    pilots) stay in that script's JSON; picking the best of them would select on the test
    set."""
    path = RESULTS / "finetune_fixed.json"
    if not path.is_file():
        return None
    name = f"ft-n{layers[1]}"
    for row in json.loads(path.read_text(encoding="utf-8"))["rows"]:
        if (
            Path(row["run"]).name == name
            and row["layers"] == layers
            and row["test_images"] == 10_000
            and row["train_samples_per_epoch"] == 60_000
        ):
            return row
    return None


def target_row(target: str, images: int) -> dict[str, Any]:
    device, ram_kbit, shipped, hardware = TARGETS[target]
    row: dict[str, Any] = {"target": target, "block_ram_kbit": ram_kbit, "shipped": shipped}
    export = ROOT / "exports" / shipped / "export"
    if not export.is_dir():
        return row
    cfg, weights, manifest = load_export(export)
    if isinstance(hardware, str):
        row["hardware_config"] = hardware
        cfg = cfg.replace(hardware=dataclasses.asdict(load_config(ROOT / hardware).hardware))
    elif hardware is not None:
        row["hardware_config"] = hardware
        cfg = cfg.replace(hardware=hardware)
    layers = list(cfg.network.layers)
    synth = _synth(device, cfg)
    cycles = mean_cycles(cfg, weights, images)
    fmax = synth.get("fmax_mhz") if synth else None
    row |= {
        "layers": layers,
        "weight_bits": cfg.formats.weight_bits,
        "weight_kbit": round(weight_kbit(layers, cfg.formats.weight_bits), 1),
        "float_acc": manifest["float_accuracy"],
        "fixed_acc": manifest["fixed_accuracy"],
        "test_images": manifest["test_samples"],
        "lanes": cfg.hardware.lanes,
        "cycles_per_sample": round(cycles),
        "synth": synth,
        "samples_per_s_at_fmax": None if fmax is None else round(fmax * 1e6 / cycles),
    }
    tuned = _finetuned(layers)
    if tuned is not None:
        row |= {
            "fixed_finetuned_acc": tuned["fixed_acc_after"],
            "finetune": {k: tuned[k] for k in ("run", "epochs", "lr")},
        }
    return row


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Best float test accuracy of every candidate against its 16-bit weight memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = json.loads((RESULTS / "sweep_h200.json").read_text(encoding="utf-8"))["runs"]
    best: dict[tuple[int, ...], float] = {}
    for run in sweep:
        key = tuple(run["layers"])
        best[key] = max(best.get(key, 0.0), run["best_test_acc"])
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for layers, acc in sorted(best.items()):
        kbit = weight_kbit(layers, 16)
        ax.scatter(kbit, 100 * acc, color="tab:blue")
        ax.annotate("-".join(map(str, layers)), (kbit, 100 * acc), fontsize=7, rotation=20)
    for row in rows:
        if row["block_ram_kbit"] is None:
            continue
        ax.axvline(row["block_ram_kbit"], color="grey", ls="--", lw=1)
        ax.text(row["block_ram_kbit"], ax.get_ylim()[0], row["target"], rotation=90, fontsize=7)
        if "fixed_acc" in row:
            ax.scatter(row["weight_kbit"], 100 * row["fixed_acc"], marker="*", s=140, color="k")
        if "fixed_finetuned_acc" in row:
            ax.scatter(
                row["weight_kbit"],
                100 * row["fixed_finetuned_acc"],
                marker="^",
                s=60,
                facecolors="none",
                edgecolors="tab:red",
            )
    ax.set_xscale("log")
    ax.set_xlabel("weight memory (Kbit, 16-bit weights); dashed: each part's block RAM")
    ax.set_ylabel("Fashion-MNIST test accuracy (%)")
    ax.set_title(
        "best float accuracy per network (dots); shipped, fixed point (stars);\n"
        "shipped, fine-tuned in fixed point (triangles)",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--images", type=int, default=200, help="test images for the cycle model")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--plot", type=Path, help="write the accuracy / memory plot (PNG) here")
    args = p.parse_args()
    rows = [target_row(t, args.images) for t in TARGETS]
    if args.plot:
        plot(rows, args.plot)
    emit({"images": args.images, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
