"""The paper's network with its weights in external memory, bit-exact on an HDL simulator.

    python bench/external_paper.py [--preset fmnist-1000] [--lanes 24] [--bytes 64]
        [--images 20] [--train-samples 5] [--simulator verilator] [--pause 0.2]
        [--time-limit S] [--out bench/results/external_paper.json]
    python bench/external_paper.py --simulator icarus --probe 240 --out ...  (speed only)

Issue 12, "bit-exact at the paper's size": the shared-pool accelerator with
``weights = "external"`` and the training units, built by sim.runner (Verilator or
Icarus, under cocotb), its weight table in cocotbext-axi's ``AxiRam`` with random
pauses on all five AXI channels (sim.test_accelerator's ``ExternalMemory``), golden/
as the scoreboard (bench/cocotb_external_paper.py):

- inference of the first ``--images`` Fashion-MNIST test images: every output spike
  count against golden's, ``CYCLES`` of each;
- ``--train-samples`` consecutive on-chip training samples (the first Fashion-MNIST
  training images, the paper's learning rate, dropout on): every count and the cycle
  registers (``CYCLES``, ``CYCLES_BACKWARD``, ``CYCLES_UPDATE``), then every weight
  read back from the AXI RAM's memory image and both PRNG states against golden's.

The net is Kaiming-initialised and quantised (``GoldenNet.init_random``, seed 0), as
in bench/arch_study.py: no trained export of this size is shipped. Beside the measured
cycles: the on-chip design's exact cycles (``rtl.cycle_model``, the floor: the lanes
alone) and the planning model (``rtl.perf_model.shared``) at the bus's nominal bytes per
cycle, at what a beat carries of a word (a word of ``lanes`` weights takes whole beats)
and with the R channel's pauses taken off. Also the build (Verilog, Verilator, C++
compile, C++ size), the run's wall time and simulated cycles per second, and the load
average before and after (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from report import emit, out_file  # bench/ is on sys.path when a script here runs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from desire import load_config
from desire.config import Config
from desire.datasets import load_dataset
from golden import GoldenNet
from golden.fixed import constants
from rtl.axi_weight_reader import word_geometry
from rtl.cycle_model import cycle_model, training_cycle_model
from rtl.perf_model import Memory, Workload, shared
from rtl.verilog import BLOCKS
from sim.harness import harness_name
from sim.runner import run

ROOT = Path(__file__).resolve().parents[1]
#: The cocotb module (bench/ is on the simulator's PYTHONPATH: sim.runner passes sys.path).
TEST_MODULE = "cocotb_external_paper"
#: Seed of the net, as the cocotb module uses it.
NET_SEED = 0
#: Cycles from a read address to its first beat in cocotbext-axi's AxiRam (a guess for the
#: planning model's latency term, paid once per time step; a few hundred cycles a sample).
AXIRAM_LATENCY = 3


def config(args: argparse.Namespace) -> Config:
    cfg = load_config(preset=args.preset).replace(
        hardware={
            "lanes": args.lanes,
            "architecture": "shared",
            "weights": "external",
            "training": True,
            "axi_bytes": args.bytes,
        }
    )
    if args.layers:
        cfg = cfg.replace(network={"layers": tuple(args.layers)})
    return cfg


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _uptime() -> str:
    proc = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    return proc.stdout.strip()


def _cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    found = re.search(r"model name\s*:\s*(.+)", text)
    return found.group(1).strip() if found else platform.processor()


def build_figures(build_dir: Path, start: float, built: bool) -> dict[str, Any]:
    """The build's phases from its files' times: Verilator writes ``Vtop.mk`` when it has
    written the C++, make then compiles and links the executable; plus the C++'s size."""
    out: dict[str, Any] = {"folder": str(build_dir.relative_to(ROOT)), "built_now": built}
    mk, exe = build_dir / "Vtop.mk", build_dir / harness_name(BLOCKS["accelerator"])
    if mk.is_file() and exe.is_file():
        out["cxx_compile_s"] = round(exe.stat().st_mtime - mk.stat().st_mtime, 1)
        if built:
            out["verilog_and_verilator_s"] = round(mk.stat().st_mtime - start, 1)
    sources = [p for p in build_dir.glob("Vtop*") if p.suffix in (".cpp", ".h")]
    if sources:
        sizes = sorted((p.stat().st_size, p.name) for p in sources)
        out["cxx_files"] = len(sources)
        out["cxx_bytes"] = sum(s for s, _ in sizes)
        out["largest_cxx_file"] = {"name": sizes[-1][1], "bytes": sizes[-1][0]}
    out["verilog_bytes"] = sum(p.stat().st_size for p in build_dir.glob("*.v"))
    return out


def inference_models(cfg: Config, n: int, pause: float) -> list[dict[str, float]]:
    """Per test image: golden's on-chip exact cycles and the planning model at three
    bandwidths (nominal, what a beat carries of a word, less the R channel's pauses)."""
    net = GoldenNet.init_random(cfg, NET_SEED)
    x, _ = load_dataset("fashion-mnist", "test", limit=n)
    rec = net.forward(x, record=True)
    on_chip = cfg.replace(hardware={"weights": "on-chip"})
    hw, bits = cfg.hardware, cfg.formats.weight_bits
    beats, _ = word_geometry(hw.lanes, bits, hw.axi_bytes)
    per_beat = hw.lanes * bits / 8 / beats  # bytes of weights a beat carries
    bandwidths = {
        "nominal": hw.axi_bytes,
        "per_beat": per_beat,
        "per_beat_paused": per_beat * (1 - pause),
    }
    rows = []
    for k in range(n):
        spikes = [s[:, k] for s in rec.spikes]
        work = Workload.from_record(cfg.network.layers, rec.input_spikes[:, k], spikes)
        row = {"on_chip_exact": cycle_model(on_chip, rec.input_spikes[:, k], spikes).cycles}
        for name, bw in bandwidths.items():
            mem = Memory(bytes_per_cycle=bw, latency=AXIRAM_LATENCY, weight_bits=bits)
            plan = shared(work, hw.lanes, mem)
            row[f"plan_{name}"] = plan.cycles
            if name == "per_beat_paused":
                row["lane_bound"] = plan.lane_bound
                row["memory_bound_paused"] = plan.memory_bound
        rows.append(row)
    return rows


def training_models(cfg: Config, n: int) -> list[dict[str, int]]:
    """Per training sample: the on-chip training cycle model (exact for ``weights =
    on-chip``), from golden's steps on the same samples at the same learning rate."""
    net = GoldenNet.init_random(cfg, NET_SEED)
    x, y = load_dataset("fashion-mnist", "train", limit=n)
    on_chip = cfg.replace(hardware={"weights": "on-chip"})
    lr_int = constants(cfg).lr_int(0)
    rows = []
    for image, label in zip(x, y, strict=True):
        fwd = net.train_step(image[None], int(label), lr_int, record=True).forward
        m = training_cycle_model(on_chip, fwd.input_spikes[:, 0], [s[:, 0] for s in fwd.spikes])
        rows.append(
            {
                "total": m.total,
                "forward": m.forward,
                "backward": m.backward,
                "update": m.update,
            }
        )
    return rows


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")


def summarise(res: dict[str, Any]) -> str:
    """The printed table."""
    lines = [
        f"network {'-'.join(map(str, res['layers']))}, shared pool of {res['lanes']} lanes, "
        f"{res['axi_bytes']}-byte AXI beats, pauses {res['axi_pause']} on all five channels, "
        f"{res['simulator']}",
        f"build: {res['build']}",
        "",
        "| part | samples | identical | sim cycles/s | wall s | mean CYCLES | on-chip exact |"
        " planning model |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    inf = res.get("inference")
    if inf:
        s, m = inf["samples"], inf["model"]
        done = len(s)
        lines.append(
            f"| inference | {done} | {inf['all_identical']} | {inf['sim_cycles_per_s']} | "
            f"{inf['wall_s']} | {_mean(s, 'cycles'):.0f} | "
            f"{_mean(m[:done], 'on_chip_exact'):.0f} | "
            f"{_mean(m[:done], 'plan_per_beat_paused'):.0f} |"
        )
    tr = res.get("training")
    if tr:
        s, m = tr["samples"], tr["model"]
        done = len(s)
        lines.append(
            f"| training | {done} | {tr['all_identical']} | {tr['sim_cycles_per_s']} | "
            f"{tr['wall_s']} | {_mean(s, 'cycles'):.0f} | {_mean(m[:done], 'total'):.0f} | - |"
        )
        lines.append(
            f"training: CYCLES_BACKWARD {_mean(s, 'cycles_backward'):.0f} "
            f"(on-chip {_mean(m[:done], 'backward'):.0f}), CYCLES_UPDATE "
            f"{_mean(s, 'cycles_update'):.0f} (on-chip {_mean(m[:done], 'update'):.0f}); "
            f"weights identical {tr.get('weights_identical')}, PRNG states identical "
            f"{tr.get('prng_states_identical')}"
        )
    return "\n".join(lines)


def probe(args: argparse.Namespace) -> int:
    """Simulated cycles per second of ``args.simulator`` on the first test image, the run
    ended after ``args.probe`` wall seconds (the progress records of the cocotb module),
    and the time the full run in ``args.out`` would take at that speed."""
    cfg = config(args)
    work = ROOT / "build" / "external_paper" / f"{args.simulator}_probe"
    work.mkdir(parents=True, exist_ok=True)
    (work / "inference.json").unlink(missing_ok=True)
    env = {
        "DESIRE_IMAGES": "1",
        "DESIRE_AXI_PAUSE": str(args.pause),
        "DESIRE_RESULTS": str(work),
        "DESIRE_TIME_LIMIT": str(args.probe / 2),  # the module ends a sample at twice it
        "DESIRE_PROGRESS": "2000",
    }
    load_before, start = _load(), time.time()
    result = run(
        "accelerator",
        args.simulator,
        cfg,
        seed=args.seed,
        testcase="inference",
        extra_env=env,
        test_module=TEST_MODULE,
        log_file=work / "run.log",
    )
    part = json.loads((work / "inference.json").read_text())
    cycles, wall = part["progress"][-1] if part["progress"] else (0, 0.0)
    speed = cycles / wall if wall else None
    figures: dict[str, Any] = {
        "command": shlex.join(["python", "bench/external_paper.py", *sys.argv[1:]]),
        "build_s": round(result.build_seconds, 1),
        "run_s": round(time.time() - start - result.build_seconds, 1),
        "sim_cycles": cycles,
        "wall_s": wall,
        "sim_cycles_per_s": round(speed, 1) if speed else None,
        "samples_finished": len(part["samples"]),
        "load_before_after": [load_before, _load()],
    }
    res = json.loads(Path(args.out).read_text()) if args.out and Path(args.out).is_file() else {}
    full = sum(res.get(k, {}).get("sim_cycles", 0) for k in ("inference", "training"))
    if full and speed:
        figures["full_run_sim_cycles"] = full
        figures["full_run_estimate_h"] = round(full / speed / 3600, 1)
    res[f"probe_{args.simulator}"] = figures
    print(json.dumps(figures, indent=2), flush=True)
    emit(res, args.out)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--preset", default="fmnist-1000")
    p.add_argument("--layers", type=int, nargs="+", help="override the preset's layers")
    p.add_argument("--lanes", type=int, default=24)
    p.add_argument("--bytes", type=int, default=64, help="AXI data width in bytes")
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--train-samples", type=int, default=5)
    p.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    p.add_argument("--pause", type=float, default=0.2, help="pause probability per channel")
    p.add_argument("--seed", type=int, default=1, help="seed of the pauses and stalls")
    p.add_argument("--time-limit", type=float, help="wall seconds per part (then stop early)")
    p.add_argument(
        "--probe",
        type=float,
        metavar="S",
        help="only measure the simulator's speed: one image, ended after S wall seconds; "
        "its figures go under probe_<simulator> into --out's JSON, the rest kept",
    )
    p.add_argument("--out", type=out_file, help="also write the JSON here")
    args = p.parse_args()
    if args.probe:
        return probe(args)
    cfg = config(args)
    work = ROOT / "build" / "external_paper" / args.simulator
    work.mkdir(parents=True, exist_ok=True)
    for name in ("inference.json", "training.json"):
        (work / name).unlink(missing_ok=True)
    log = work / "run.log"
    env = {
        "DESIRE_IMAGES": str(args.images),
        "DESIRE_TRAIN_SAMPLES": str(args.train_samples),
        "DESIRE_AXI_PAUSE": str(args.pause),
        "DESIRE_RESULTS": str(work),
    }
    if args.time_limit:
        env["DESIRE_TIME_LIMIT"] = str(args.time_limit)
    tests = [t for t, n in (("inference", args.images), ("training", args.train_samples)) if n]
    load_before, uptime_before = _load(), _uptime()
    start = time.time()
    result = run(
        "accelerator",
        args.simulator,
        cfg,
        seed=args.seed,
        testcase=tests,
        extra_env=env,
        test_module=TEST_MODULE,
        log_file=log,
    )
    seconds = time.time() - start
    build_dir = result.results_xml.parent
    res: dict[str, Any] = {
        "command": shlex.join(["python", "bench/external_paper.py", *sys.argv[1:]]),
        "layers": list(cfg.network.layers),
        "lanes": args.lanes,
        "axi_bytes": args.bytes,
        "beats_per_word": word_geometry(args.lanes, cfg.formats.weight_bits, args.bytes)[0],
        "axi_pause": args.pause,
        "simulator": args.simulator,
        "seed": args.seed,
        "net": f"Kaiming-initialised quantised (GoldenNet.init_random, seed {NET_SEED})",
        "passed": result.ok,
        "cocotb_tests": {"passed": result.passed, "failed": result.failed},
        "total_s": round(seconds, 1),
        "build_s": round(result.build_seconds, 1),
        "build": build_figures(build_dir, start, result.build_seconds > 0),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": _cpu(),
            "load_before": load_before,
            "load_after": _load(),
            "uptime_before": uptime_before,
            "uptime_after": _uptime(),
        },
    }
    for name in tests:
        path = work / f"{name}.json"
        if not path.is_file():
            res[name] = {"error": f"the test wrote no results; see {log}"}
            continue
        part = json.loads(path.read_text())
        part["all_identical"] = bool(part["samples"]) and all(
            s["identical"] for s in part["samples"]
        )
        if name == "inference":
            part["model"] = inference_models(cfg, args.images, args.pause)
        else:
            part["model"] = training_models(cfg, args.train_samples)
            part["all_identical"] &= bool(part.get("weights_identical"))
            part["all_identical"] &= bool(part.get("prng_states_identical"))
        res[name] = part
    print(summarise(res), flush=True)
    emit(res, args.out)
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
