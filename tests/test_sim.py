"""cocotb regressions (sim/) through the Python runner, on Icarus and on Verilator.

A simulator that is not installed is skipped. The blocks run on
:data:`sim.runner.CI_CONFIG`; the accelerator runs Fashion-MNIST test images
(few on Icarus, which is slow on the 784-input top level; 100 on Verilator).
Each test prints the runner's ``N passed, N failed`` line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from desire.config import load_config
from desire.runlock import RunLock
from rtl.verilog import BLOCKS, generate
from sim import runner
from sim.harness import block_players, harness
from sim.runner import (
    CI_CONFIG,
    ONE_BLOCK,
    SIMULATORS,
    TRACE_CLAMP,
    RunResult,
    available,
    coverage_summary,
    run,
    seed_from_env,
    summary,
)

pytestmark = [pytest.mark.sim, pytest.mark.slow]

#: Fashion-MNIST images of the accelerator test per simulator (measured on the 784-32-10 top,
#: docs/verification.md section 8: Icarus about 3k cycles per CPU second, bound by Icarus
#: itself; Verilator about 400k, 100 images of ~18.5k cycles in ~5 s).
IMAGES = {"icarus": 2, "verilator": 100}
#: Fashion-MNIST training samples of the accelerator's test_training per simulator (about
#: 24k cycles each on 784-32-10; Verilator 50 samples take ~4-5 s). More: DESIRE_TRAIN_SAMPLES.
TRAIN_SAMPLES = {"icarus": 2, "verilator": 50}
#: Three weight layers, 10x10 centre crops of Fashion-MNIST: the hidden-layer desire path.
THREE_LAYERS = CI_CONFIG.replace(network={"layers": (100, 16, 12, 10)})
#: Training samples on THREE_LAYERS (measured ~3.5k cycles each: Icarus 2 samples 8 s).
THREE_LAYER_SAMPLES = {"icarus": 10, "verilator": 50}


def _check(results: list[RunResult], coverage: bool = True) -> None:
    """Print the runs' summary and merged coverage; fail on a failed test or (with
    ``coverage``) on a declared cover point never hit."""
    report, holes = coverage_summary(results)
    print(summary(results))
    print(report)
    assert all(r.ok for r in results), summary(results)
    assert not coverage or not holes, report


def _needs(simulator: str) -> None:
    if not available(simulator):
        pytest.skip(f"{simulator} is not installed")


@pytest.fixture(scope="module")
def seed() -> int:
    return seed_from_env()


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_blocks(simulator: str, seed: int) -> None:
    """Encoder and every layer's neuron core against golden, step by step."""
    _needs(simulator)
    results = [run("encoder", simulator, CI_CONFIG, seed=seed)]
    for layer in range(len(CI_CONFIG.network.layers) - 1):
        results.append(run("neuron_core", simulator, CI_CONFIG, layer=layer, seed=seed))
    last = len(ONE_BLOCK.network.layers) - 2  # its one-block layer
    results.append(run("neuron_core", simulator, ONE_BLOCK, layer=last, seed=seed))
    for block in ("desire_unit", "update_unit"):
        results.append(run(block, simulator, CI_CONFIG, seed=seed))
    results.append(run("update_unit", simulator, TRACE_CLAMP, seed=seed))
    _check(results)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_accelerator(simulator: str, seed: int) -> None:
    """Top level: random, corner, misuse, Fashion-MNIST inference and training against golden."""
    _needs(simulator)
    env = {
        "DESIRE_IMAGES": str(IMAGES[simulator]),
        "DESIRE_TRAIN_SAMPLES": os.environ.get(
            "DESIRE_TRAIN_SAMPLES", str(TRAIN_SAMPLES[simulator])
        ),
    }
    result = run("accelerator", simulator, CI_CONFIG, seed=seed, extra_env=env)
    _check([result])


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_training_three_layers(simulator: str, seed: int) -> None:
    """Training on THREE_LAYERS: every weight of the three layers equals golden's at the end."""
    _needs(simulator)
    samples = os.environ.get("DESIRE_TRAIN_SAMPLES", str(THREE_LAYER_SAMPLES[simulator]))
    env = {"DESIRE_TRAIN_SAMPLES": samples}
    result = run(
        "accelerator", simulator, THREE_LAYERS, seed=seed, testcase="test_training", extra_env=env
    )
    _check([result], coverage=False)  # test_training alone: not every point is reached


#: Weights in external memory (cocotbext-axi's AxiRam, random pauses on all five channels),
#: the shared pool of 16 lanes, on-chip training writing back through AXI.
EXTERNAL = CI_CONFIG.replace(
    hardware={"architecture": "shared", "lanes": 16, "weights": "external", "axi_bytes": 8}
)
#: The external top per simulator: config, images, training samples. A 64-input network:
#: with cocotbext-axi's per-cycle pauses on five channels both simulators run a few
#: thousand cycles per second (Verilator 4.5k on 784-32-10, with the clock driven by
#: cocotb: sim.runner.cocotb_clock), so 784-32-10 (Fashion-MNIST) took 3 minutes.
SMALL_EXTERNAL = EXTERNAL.replace(network={"layers": (64, 16, 10)})
EXTERNAL_WORK = {"icarus": (SMALL_EXTERNAL, 2, 2), "verilator": (SMALL_EXTERNAL, 5, 5)}


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_accelerator_external(simulator: str, seed: int) -> None:
    """The external-memory top: inference and training against golden, weights and PRNG
    states compared at the end, with random AR/R/AW/W/B pauses."""
    _needs(simulator)
    cfg, images, samples = EXTERNAL_WORK[simulator]
    env = {"DESIRE_IMAGES": str(images), "DESIRE_TRAIN_SAMPLES": str(samples)}
    result = run("accelerator", simulator, cfg, seed=seed, extra_env=env)
    _check([result])


#: The AXI shell's bench network (sim/test_axi_shell.py, tests/test_rtl_axi_shell.py).
AXI_SHELL = load_config().replace(
    network={"layers": (20, 12, 6), "tsteps": 6}, hardware={"lanes": 4}
)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_axi_shell(simulator: str, seed: int) -> None:
    """AXI4-Lite registers, AXI4-Stream samples with framing errors and the weight stream,
    driven by cocotbext-axi with pauses on every channel, results against golden."""
    _needs(simulator)
    result = run("axi_shell", simulator, AXI_SHELL, seed=seed)
    _check([result])


#: One core block (n_out <= lanes) and one pixel word per lane group: the corner of the
#: index widths (a one-item index must not become a zero-width Verilog vector).
SINGLE_BLOCK = CI_CONFIG.replace(network={"layers": (40, 24, 10)}, hardware={"lanes": 16})


def test_single_block_icarus(seed: int) -> None:
    """Layer 1 of SINGLE_BLOCK has B = 1: core and top on Icarus (X-propagating)."""
    _needs("icarus")
    results = [
        run("neuron_core", "icarus", SINGLE_BLOCK, layer=1, seed=seed),
        run("accelerator", "icarus", SINGLE_BLOCK, seed=seed),
    ]
    _check(results, coverage=False)  # Icarus only, two builds: the corner of index widths


#: The iCEBreaker's layout (configs/ice40_up5k.toml) at a size Icarus runs in seconds: the
#: shared pool with single-ported weight banks and the spike vectors in block RAM,
#: inference only.
COMPACT = SMALL_EXTERNAL.replace(
    hardware={
        "weights": "on-chip",
        "lanes": 4,
        "training": False,
        "weight_ports": 1,
        "spike_vectors": "memory",
    }
)


def test_compact_icarus(seed: int) -> None:
    """COMPACT's top on Icarus (X-propagating: a read of a bank before its data, or of the
    vector bank not yet written, would show): random nets, thresholds and images, the
    all-zero and all-full corners and bus misuse, every result against golden (the
    Fashion-MNIST test needs 784 inputs and skips)."""
    _needs("icarus")
    result = run("accelerator", "icarus", COMPACT, seed=seed)
    _check([result], coverage=False)  # inference only: the training points are not reached


ROOT = Path(__file__).resolve().parents[1]


#: Lint configs: the default, and the fmnist-1000 structure (three weight layers, 16 lanes)
#: at a size that converts in seconds (the full preset's 98 000-word memory takes minutes).
LINT_CONFIGS = {
    "default": load_config(),
    "three-layers": load_config(preset="fmnist-1000").replace(
        network={"layers": (100, 40, 20, 10)}, hardware={"lanes": 16}
    ),
    "ice40_up5k": load_config(Path(__file__).resolve().parents[1] / "configs" / "ice40_up5k.toml"),
}


@pytest.mark.parametrize("name", LINT_CONFIGS)
def test_verilator_lint(name: str, tmp_path: Path) -> None:
    """The generated Verilog passes ``verilator --lint-only -Wall`` (waivers in the file)."""
    _needs("verilator")
    cfg = LINT_CONFIGS[name]
    for block in BLOCKS:
        path = tmp_path / f"{BLOCKS[block]}.v"
        path.write_text(generate(cfg, block))
        verilator = shutil.which("verilator")
        assert verilator is not None
        proc = subprocess.run(
            [verilator, "--lint-only", "-Wall", str(path)], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr[-3000:]


def test_harness_lint(tmp_path: Path) -> None:
    """Each block's test harness (sim.harness) with the block passes ``verilator --lint-only``
    with the default warnings and the runner's timescale: the runner builds with
    ``-Wno-fatal``, which would let a width mismatch between a player and a DUT port through."""
    _needs("verilator")
    verilator = shutil.which("verilator")
    assert verilator is not None
    for block, top in BLOCKS.items():
        verilog = generate(CI_CONFIG, block)
        h = harness(verilog, top, block_players(block, CI_CONFIG))
        files = [tmp_path / f"{top}.v", tmp_path / f"{h.module}.v"]
        files[0].write_text(verilog)
        files[1].write_text(h.verilog)
        flags = ["--lint-only", "--timing", "--timescale", "1ns/1ps", "--top-module", h.module]
        proc = subprocess.run(
            [verilator, *flags, *map(str, files)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]


def test_second_run_of_a_build_waits_for_the_first(seed: int) -> None:
    """A run of a build that another process holds (here: this test, holding the build
    folder's lock) says that it waits, waits, then passes on the build it finds."""
    _needs("icarus")
    run("encoder", "icarus", CI_CONFIG, seed=seed)  # the build exists: only the wait is left
    src = runner._sources("encoder", "icarus", CI_CONFIG, 0)
    build_dir = runner._build_dir("icarus", "encoder", src.key("icarus", False), False)
    code = (
        "from sim.runner import run, CI_CONFIG; "
        f"r = run('encoder', 'icarus', CI_CONFIG, seed={seed}); print('RESULT', r.ok)"
    )
    env = {k: v for k, v in os.environ.items() if k != "WAVES"}
    with RunLock(build_dir, wait=True):  # (waits if another test process has the build)
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        said = ""  # its stderr up to the waiting line (blocks until the run reaches the lock)
        while f"waiting for PID {os.getpid()}" not in said:
            line = proc.stderr.readline()
            assert line, f"the run ended without waiting: {said[-2000:]}"
            said += line
        assert proc.poll() is None, "it waits while the lock is held"
    out, err = proc.communicate(timeout=600)
    assert "RESULT True" in out, err[-2000:]
