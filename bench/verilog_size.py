"""Size of the generated Verilog (and of Verilator's C++) of neuron cores, and where it comes from.

    python bench/verilog_size.py [--case K] [--verilator [--verilator-args='ARGS'] [--build]]
        [--jobs 2] [--out FILE.json]

Why: a Verilator build of the 784-1000-100-10 top took over 20 minutes of C++
compilation (issue 12). The cores have no weights (the host loads them over the
bus), so every byte comes from the design. Per case: conversion time (wall, and
CPU with yosys), Verilog bytes and lines, the memory initialisers (Amaranth
writes every word of every memory, zeros included: one line per word and lane),
bytes per module (the core, its banked weight memory), the longest line,
declared nets and memories (the weight memory's banks and the membranes).
``--verilator`` also runs ``verilator --cc`` with the flags of cocotb's runner
(``--vpi --public-flat-rw``, which keeps every named net as a C++ variable) and
reports the C++ bytes and the longest generated function; ``--build`` then
compiles the model (``make`` of ``Vtop__ALL.a``, the design's part of a cocotb
build) and times it.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

from amaranth.back import verilog
from report import emit, out_file  # bench/ is on sys.path when a script here runs

from desire.config import load_config
from golden.fixed import constants
from rtl.neuron_core import NeuronCore
from sim.runner import available

#: (name, layers, lanes, tagged): the shared cores of issue 12 and today's largest per-layer core.
CASES: tuple[tuple[str, tuple[int, ...], int, bool], ...] = (
    ("tagged 784-64-10, 16 lanes", (784, 64, 10), 16, True),
    ("tagged 784-1000-100-10, 24 lanes", (784, 1000, 100, 10), 24, True),
    ("per-layer 784-1000, 8 lanes", (784, 1000), 8, False),
)
#: A memory's declaration, as yosys writes it: ``  reg [15:0] lane0_bank0 [1023:0];``.
_MEMORY = re.compile(r"(?m)^ +reg (?:\[\d+:0\] )?\S+ \[\d+:0\];$")
#: One word of a memory initialiser, as yosys writes it: ``    name[12] = 16'h0000;``.
_INIT_LINE = re.compile(r"(?m)^ +\S+\[\d+\] = \d+'h[0-9a-fA-F]+;\n")


def core(layers: tuple[int, ...], lanes: int, tagged: bool) -> NeuronCore:
    """A core without weights, with the default config's number formats."""
    c = constants(load_config())
    formats = {
        "weight_bits": c.weight_bits,
        "membrane_bits": c.membrane_bits,
        "decay_shift": c.decay_shift,
    }
    pairs = list(itertools.pairwise(layers))
    if tagged:
        return NeuronCore(layers=pairs, lanes=lanes, **formats)
    return NeuronCore(*pairs[0], lanes, **formats)


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (Amaranth runs yosys as one):
    the machine may be shared, so wall time alone says little."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def verilog_figures(text: str) -> dict:
    """Bytes, lines, initialiser lines, bytes per module and the longest line of ``text``."""
    lines = text.splitlines()
    modules = re.split(r"(?m)^module ", text)[1:]
    init_lines = len(_INIT_LINE.findall(text))
    return {
        "bytes": len(text),
        "lines": len(lines),
        "init_lines": init_lines,
        "bytes_without_init": len(_INIT_LINE.sub("", text)),
        "module_bytes": {m.split("(", 1)[0].strip(): len(m) for m in modules},
        "module_bytes_without_init": {
            m.split("(", 1)[0].strip(): len(_INIT_LINE.sub("", m)) for m in modules
        },
        "longest_line": max(map(len, lines)),
        "memories": len(_MEMORY.findall(text)),
        "declared_nets": len(re.findall(r"(?m)^\s+(?:wire|reg)\b", text)),
    }


def verilator_figures(path: Path, args: argparse.Namespace) -> dict:
    """``verilator --cc`` of ``path`` as cocotb runs it (plus ``--verilator-args``): seconds,
    C++ bytes and the longest generated function; with ``--build``, also the seconds of
    compiling the model (wall, and CPU of the compilers)."""
    out = path.parent / "obj"
    t0 = time.monotonic()
    flags = ["--cc", "--vpi", "--public-flat-rw", "--prefix", "Vtop", "-Wno-fatal"]
    flags += shlex.split(args.verilator_args)
    subprocess.run(
        ["verilator", *flags, "--top-module", "core", "-Mdir", str(out), str(path)],
        check=True,
        capture_output=True,
    )
    sources = list(out.glob("*.cpp"))
    figures = {
        "verilate_s": round(time.monotonic() - t0, 1),
        "cpp_files": len(sources),
        "cpp_bytes": sum(f.stat().st_size for f in sources),
        "h_bytes": sum(f.stat().st_size for f in out.glob("*.h")),
        "longest_function_lines": max(_function_lines(f) for f in sources),
    }
    if args.build:
        t0, c0 = time.monotonic(), _cpu_s()
        subprocess.run(
            ["make", "-s", "-j", str(args.jobs), "-C", str(out), "-f", "Vtop.mk", "Vtop__ALL.a"],
            check=True,
            capture_output=True,
        )
        figures["compile_s"] = round(time.monotonic() - t0, 1)
        figures["compile_cpu_s"] = round(_cpu_s() - c0, 1)
    return figures


def _function_lines(path: Path) -> int:
    """Lines of the longest function in a generated C++ file: the C++ compiler's time grows
    faster than linearly with it."""
    longest, start = 0, None
    for k, line in enumerate(path.read_text().splitlines()):
        if line.endswith(") {") and not line.startswith(" "):
            start = k
        elif line == "}" and start is not None:
            longest, start = max(longest, k - start), None
    return longest


def measure(
    name: str, layers: tuple[int, ...], lanes: int, tagged: bool, args: argparse.Namespace
) -> dict:
    top = core(layers, lanes, tagged)
    t0, c0 = time.monotonic(), _cpu_s()
    text = verilog.convert(top, name="core", emit_src=False)
    result = {
        "case": name,
        "convert_s": round(time.monotonic() - t0, 1),
        "convert_cpu_s": round(_cpu_s() - c0, 1),
        "weight_words": top.depth,
        **verilog_figures(text),
    }
    if args.verilator:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "core.v"
            path.write_text(text)
            result |= verilator_figures(path, args)
    print(f"{name}: {result['bytes'] / 1e6:.1f} MB", flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=out_file, help="write the JSON here too")
    p.add_argument("--verilator", action="store_true", help="also verilate each core")
    p.add_argument("--build", action="store_true", help="also compile the C++ (slow)")
    p.add_argument("--jobs", type=int, default=2, help="make -j for --build")
    p.add_argument(
        "--verilator-args",
        default="",
        help="more verilator flags, given with '=': --verilator-args='--output-split-cfuncs 1000'",
    )
    p.add_argument("--case", type=int, action="append", help="index into CASES (repeatable)")
    args = p.parse_args()
    if args.verilator and not available("verilator"):
        p.error("verilator is not installed")
    cases = [CASES[k] for k in args.case] if args.case else list(CASES)
    emit({"runs": [measure(*case, args) for case in cases]}, args.out)


if __name__ == "__main__":
    main()
