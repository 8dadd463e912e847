"""``make demo``: the whole flow on a small network, offline, in a few minutes on 2 cores.

1. train a float network briefly with the PyTorch trainer on real Fashion-MNIST images
   (the training flow; a few minutes of training reach about 66 %);
2. export it to the accelerator's formats (npz, $readmemh hex, manifest) and evaluate
   it with golden/ (integer arithmetic) next to the float model;
3. take the shipped model of the same network (``exports/*/export``, trained for many
   epochs; its float and fixed-point accuracy on all 10,000 test images are in its
   manifest) and evaluate it with golden/ on the demo's test images;
4. run a handful of test images of the shipped model (the brief one where none is
   shipped for the network) on the RTL under Verilator (Icarus if Verilator is missing)
   and require spike counts identical to golden/;
5. write the Verilog;
6. print one summary table and save plots: learning curve, and the spike raster
   and membrane traces of one sample (the paper's Fig. 1 and 2).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from desire.atomic import atomic_write, atomic_write_text
from desire.cli import add_network_flags, build_config, positive_int, user_errors
from desire.config import Config
from desire.datafit import check_fits_data
from desire.datasets import load_dataset
from desire.outdir import claim_output_dir
from desire.runlock import RunLock
from golden import GoldenNet, strict_argmax
from golden.export import load_export
from model.export import export_checkpoint
from model.plots import plot_accuracy
from model.train import TrainOptions, train

__all__ = ["main"]

TOOL = "desire.demo"
#: the project's shipped models (tools/ship_model.py), one folder each
SHIPPED = Path(__file__).resolve().parents[1] / "exports"
#: The demo trains for only 7,500 updates at batch 8: with so few, smaller batches learn
#: more per epoch than the trainer's default (bench/results/batch_study.json, 10,000
#: samples per epoch: batch 32 fell 3.7 points behind batch 1 where batch 8 did not).
DEMO_BATCH = 8


def _train(cfg: Config, args: argparse.Namespace, run: Path) -> list[dict]:
    opts = TrainOptions(
        out=run,
        epochs=args.epochs,
        batch_size=args.batch_size,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        quiet=True,
        force=True,  # the demo's own run of last time, inside the demo's folder
    )
    log = train(cfg, opts)
    for row in log:
        print(f"  epoch {row['epoch']}: train {row['train_acc']:.1%}  test {row['test_acc']:.1%}")
    return log


def shipped_export(cfg: Config) -> Path | None:
    """The shipped export built for exactly ``cfg`` (network, formats, hardware), if any."""
    for manifest in sorted(SHIPPED.glob("*/export/manifest.json")):
        if load_export(manifest.parent)[0] == cfg:
            return Path(os.path.relpath(manifest.parent))
    return None


def _rtl(export: Path, images: int, run: Path) -> dict:
    """Run ``images`` test images of the export on the RTL; returns counts and cycles."""
    from sim.runner import available, run_export

    simulator = next((s for s in ("verilator", "icarus") if available(s)), None)
    if simulator is None:
        return {"simulator": None}
    return run_export(export, simulator, images, run / "rtl.json")


def plot_sample(net: GoldenNet, image: np.ndarray, label: int, path: Path) -> Path:
    """Input raster, hidden raster, output raster and three output membranes of one sample."""
    rec = net.forward(image[None], record=True)
    c = net.c
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    rasters = [("input spikes", rec.input_spikes[:, 0]), ("hidden spikes", rec.spikes[0][:, 0])]
    rasters.append(("output spikes", rec.spikes[-1][:, 0]))
    for ax, (title, spikes) in zip(axes, rasters, strict=False):
        t, n = np.nonzero(spikes)
        ax.scatter(t, n, s=6, marker="|", color="k")
        ax.set(
            title=title,
            xlabel="time step",
            ylabel="neuron",
            xlim=(-0.5, c.tsteps - 0.5),
            ylim=(-0.5, spikes.shape[1] - 0.5),
        )
    counts = rec.counts[-1][0]
    shown = [label, *[k for k in np.argsort(-counts) if k != label][:2]]
    for k in shown:
        v = rec.membranes[-1][:, 0, k] / 2**c.weight_frac
        axes[3].step(range(c.tsteps), v, where="post", label=f"class {k} ({counts[k]} spikes)")
    axes[3].axhline(c.thr_eval / 2**c.weight_frac, color="grey", ls="--", lw=0.8)
    axes[3].set(
        title=f"output membranes (label {label})", xlabel="time step", ylabel="v (after reset)"
    )
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)
    return path


def _shipped_rows(shipped: Path | None) -> list[tuple[str, str]]:
    """The shipped model's folder and the accuracies its manifest holds (all test images)."""
    if shipped is None:
        return []
    m = load_export(shipped)[2]

    def measured(key: str) -> str:
        value = m.get(key)
        return "-" if value is None else f"{value:.2%} on {m['test_samples']} test images"

    return [
        ("shipped model", str(shipped)),
        ("shipped: float (manifest)", measured("float_accuracy")),
        ("shipped: fixed (manifest)", measured("fixed_accuracy")),
    ]


def _table(rows: list[tuple[str, str]]) -> str:
    key_w = max(len(k) for k, _ in rows)
    val_w = max(len(v) for _, v in rows)
    line = f"+{'-' * (key_w + 2)}+{'-' * (val_w + 2)}+"
    body = [f"| {k:<{key_w}} | {v:<{val_w}} |" for k, v in rows]
    return "\n".join([line, *body, line])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m desire.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_network_flags(p)
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--batch-size", type=positive_int, default=DEMO_BATCH)
    p.add_argument("--train-limit", type=positive_int, default=20000)
    p.add_argument("--test-limit", type=positive_int, default=2000)
    p.add_argument("--rtl-images", type=positive_int, default=5)
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    args = p.parse_args(argv)
    with user_errors(p):
        cfg = build_config(args)
        claim_output_dir(args.out, TOOL, create=False)  # refuse a foreign folder up front
        check_fits_data(cfg.network.layers, 784, 10, "fashion-mnist")
        claim_output_dir(args.out, TOOL)
        with RunLock(args.out):
            return _demo(cfg, args)


def _demo(cfg: Config, args: argparse.Namespace) -> int:
    """The five steps in ``args.out`` (claimed and locked by the caller)."""
    run, t0 = args.out, time.perf_counter()
    print(
        f"[1/6] training {'-'.join(map(str, cfg.network.layers))} on Fashion-MNIST "
        f"({args.train_limit} samples x {args.epochs} epochs, batch {args.batch_size})"
    )
    log = _train(cfg, args, run / "float")
    print("[2/6] exporting and evaluating float vs fixed point (golden/)")
    test = load_dataset("fashion-mnist", "test", limit=args.test_limit)
    exp = export_checkpoint(run / "float" / "best.pt", run / "export", cfg, test, force=True)
    shipped = shipped_export(cfg)
    x, y = test
    print(f"[3/6] shipped model: {shipped or 'none for this network'}")
    shown = shipped or exp.path
    net = GoldenNet(*load_export(shown)[:2])
    golden_acc = float((strict_argmax(net.infer(x)) == y).mean())
    print(f"[4/6] RTL: {args.rtl_images} test images, spike counts against golden/")
    rtl = _rtl(shown, args.rtl_images, run)
    print("[5/6] writing Verilog")
    from rtl.verilog import build

    verilog = build(cfg, run / "verilog", load_export(shown)[1])
    print("[6/6] plots")
    plots = [
        plot_accuracy(log, run / "learning_curve.png"),
        plot_sample(net, x[0], int(y[0]), run / "sample_spikes.png"),
    ]
    rtl_acc = "-"
    if rtl.get("simulator"):
        rtl_pred = strict_argmax(np.array(rtl["counts"]))
        rtl_acc = f"{(rtl_pred == y[: len(rtl_pred)]).mean():.1%} on {len(rtl_pred)} images"
    rows = [
        ("network", "-".join(map(str, cfg.network.layers)) + f", T={cfg.network.tsteps}"),
        ("trained now: float", f"{exp.float_accuracy:.2%} on {len(y)} test images"),
        ("trained now: fixed (golden)", f"{exp.fixed_accuracy:.2%} on {len(y)} test images"),
        *_shipped_rows(shipped),
        (f"{'shipped' if shipped else 'trained now'}: golden", f"{golden_acc:.2%} on {len(y)}"),
        (f"{'shipped' if shipped else 'trained now'}: RTL", rtl_acc),
        (
            "RTL == golden",
            "n/a (no simulator)"
            if not rtl.get("simulator")
            else f"{'yes' if rtl['identical'] else 'NO'}, {rtl['simulator']}",
        ),
        (
            "cycles / sample (RTL)",
            f"{rtl['cycles_mean']:.0f} (P={cfg.hardware.lanes} lanes)"
            if rtl.get("simulator")
            else "-",
        ),
        ("export (trained now)", str(exp.path)),
        ("verilog", f"{verilog[0]} (+ {len(verilog) - 1} block modules beside it)"),
        ("plots", ", ".join(str(p) for p in plots)),
        ("wall time", f"{time.perf_counter() - t0:.0f} s"),
    ]
    print(_table(rows))
    atomic_write_text(run / "summary.json", json.dumps(dict(rows), indent=2) + "\n")
    return 0 if not rtl.get("simulator") or rtl["identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
