"""rtl.synth: parsers on captured tool output (fast), and a real yosys run on request.

The real run needs the YoWASP tools, whose first call compiles WebAssembly for
minutes, so it only runs with ``DESIRE_SYNTH_TEST=1`` (and is skipped without
the tools); everything else checks the parsing against output captured from
yosys 0.70 / nextpnr 0.11 on the iCE40 config.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from desire.config import Config, load_config
from golden.fixed import constants
from rtl import synth
from rtl.banked_memory import SPRAM_WORDS
from rtl.synth import (
    DEVICES,
    TABLE_HEADER,
    TOOLS,
    FitError,
    SynthError,
    cell_resources,
    check_fit,
    check_speed,
    drop_zero_meminit_rtlil,
    drop_zero_memory_init,
    io_wrapper,
    main,
    markdown_row,
    memory_mapping,
    parse_nextpnr_report,
    parse_utilisation_log,
    router_divergence,
    run_tool,
    synthesise,
    tools_available,
    top_ports,
    weight_memory_bits,
    yosys_cells,
    yosys_script,
)

ROOT = Path(__file__).resolve().parents[1]

VERILOG = """\
module other(input a, output b);
endmodule
module desire_accelerator(clk, rst, bus__addr, bus__rdata, pixels__ready);
  input clk;
  input rst;
  input [11:0] bus__addr;
  output reg [31:0] bus__rdata;
  output pixels__ready;
  wire [7:0] internal;
endmodule
"""

# Trimmed from a real iCE40 run (nextpnr --report): one register path, one port path.
STEP = {"cell": "dut.core1.membranes.0.2_RDATA_LC", "loc": [7, 25], "port": "O"}
REPORT = {
    "fmax": {"clk$glb_clk": {"achieved": 15.638439178466797, "constraint": 24}},
    "utilization": {
        "ICESTORM_LC": {"available": 5280, "used": 2665},
        "ICESTORM_RAM": {"available": 30, "used": 15},
        "ICESTORM_DSP": {"available": 8, "used": 0},
        "SB_IO": {"available": 39, "used": 4},
    },
    "critical_paths": [
        {
            "from": "posedge clk$glb_clk",
            "to": "posedge clk$glb_clk",
            "path": [
                {"delay": 1.39, "from": STEP, "to": STEP, "type": "clk-to-q"},
                {
                    "delay": 4.248,
                    "from": STEP,
                    "net": "dut.core1.membranes.0.0_RDATA[0]",
                    "sources": ["desire_accelerator.v:3213.18-3213.68", "/share/cells_map.v:6.21"],
                    "to": {"cell": "lut_a", "loc": [4, 16], "port": "I1"},
                    "type": "routing",
                },
                {
                    "delay": 1.231,
                    "from": {"cell": "lut_a", "loc": [4, 16], "port": "I1"},
                    "to": {"cell": "lut_a", "loc": [4, 16], "port": "O"},
                    "type": "logic",
                },
                {
                    "delay": 0.1,
                    "from": {"cell": "lut_a", "loc": [4, 16], "port": "O"},
                    "to": {"cell": "ff_b", "loc": [4, 16], "port": "I0"},
                    "type": "setup",
                },
            ],
        },
        {
            "from": "<async>",
            "to": "posedge clk$glb_clk",
            "path": [{"delay": 99.0, "from": STEP, "to": STEP, "type": "source"}],
        },
    ],
}

YOSYS_LOG = """\
2.28. Executing MEMORY_LIBMAP pass (mapping memories to cells).
mapping memory synth_wrapper.dut.core0.weights via $__ICE40_RAM4K_
using FF mapping for memory synth_wrapper.$auto$memory_bmux2rom.cc:63:execute$8862
mapping memory synth_wrapper.dut.core0.membranes via $__ICE40_RAM4K_
"""

NEXTPNR_LOG = """\
Info: Device utilisation:
Info: \t         ICESTORM_LC:  6000/ 5280   113%
Info: \t        ICESTORM_RAM:    15/   30    50%
ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_LC'
"""


def test_top_ports_reads_only_the_top() -> None:
    ports = top_ports(VERILOG)
    assert ports == {
        "clk": ("input", 1),
        "rst": ("input", 1),
        "bus__addr": ("input", 12),
        "bus__rdata": ("output", 32),
        "pixels__ready": ("output", 1),
    }


def test_io_wrapper_connects_every_port() -> None:
    text = io_wrapper(top_ports(VERILOG))
    assert "reg [11:0] in_sr;" in text and "wire [32:0] outs;" in text
    assert ".bus__addr(in_sr[11:0])" in text
    assert ".bus__rdata(outs[31:0])" in text and ".pixels__ready(outs[32:32])" in text
    assert ".clk(clk)" in text and ".rst(rst)" in text


def test_drop_zero_memory_init_keeps_nonzero_blocks() -> None:
    zero = "  initial begin\n    mem[0] = 16'h0000;\n    \\mem$x [1] = 16'h0;\n  end\n"
    data = "  initial begin\n    w[0] = 16'h0000;\n    w[1] = 16'h00a1;\n  end\n"
    other = "  initial begin\n    x = 1'h0;\n  end\n"
    text = "module m;\n" + zero + data + other + "  initial y = 1'h0;\nendmodule\n"
    out, dropped = drop_zero_memory_init(text)
    assert dropped == 1
    assert out == "module m;\n" + data + other + "  initial y = 1'h0;\nendmodule\n"


def test_drop_zero_meminit_rtlil_keeps_nonzero_cells() -> None:
    """The boards' RTLIL loses its all-zero ``$meminit_v2`` cells (and their attributes),
    not one with a non-zero word, nor any other cell."""

    def meminit(name: str, data: str, attr: bool) -> str:
        head = f'  attribute \\src "x.py:{name}"\n' if attr else ""
        return (
            f"{head}  cell $meminit_v2 ${name}\n    parameter \\WORDS 4\n"
            f"    connect \\ADDR {{  }}\n    connect \\DATA {data}\n  end\n"
        )

    zero, kept = meminit("1", "64'" + "0" * 64, True), meminit("2", "8'00000001", False)
    other = '  attribute \\src "y.py:3"\n  cell $not $3\n    connect \\A 1\'0\n  end\n'
    text = "module \\top\n" + zero + kept + other + meminit("4", "4'0000", False) + "end\n"
    out, dropped = drop_zero_meminit_rtlil(text)
    assert dropped == 2
    assert out == "module \\top\n" + kept + other + "end\n"


def test_yosys_cells_and_resources() -> None:
    stat = {
        "design": {
            "num_cells_by_type": {
                "SB_LUT4": 2110,
                "SB_DFF": 268,
                "SB_DFFESR": 169,
                "SB_RAM40_4K": 15,
                "SB_CARRY": 677,
            }
        }
    }
    cells = yosys_cells(stat)
    assert cells["SB_LUT4"] == 2110
    used = cell_resources("ice40", cells)
    assert used == {"luts": 2110, "ffs": 437, "bram": 15, "dsp": 0, "spram": 0}
    ecp5 = cell_resources("ecp5", {"LUT4": 10, "CCU2C": 3, "TRELLIS_FF": 7, "DP16KD": 2})
    assert ecp5 == {"luts": 16, "ffs": 7, "bram": 2, "dsp": 0}


def test_memory_mapping() -> None:
    mapping = memory_mapping(YOSYS_LOG)
    assert mapping["synth_wrapper.dut.core0.weights"] == "$__ICE40_RAM4K_"
    assert mapping["synth_wrapper.$auto$memory_bmux2rom.cc:63:execute$8862"].startswith("logic")
    assert len(mapping) == 3


def test_parse_nextpnr_report() -> None:
    res = parse_nextpnr_report(REPORT, "ice40")
    assert res["utilisation"]["logic_cells"] == {"used": 2665, "available": 5280}
    assert res["utilisation"]["bram"]["used"] == 15
    assert res["fmax"]["clk$glb_clk"]["achieved"] == pytest.approx(15.64)
    crit = res["critical_path"]
    assert crit["from"] == "posedge clk$glb_clk"  # the <async> path is left out
    assert crit["delay_ns"] == pytest.approx(6.969)
    assert crit["routing_ns"] == pytest.approx(4.248)
    assert crit["logic_levels"] == 1
    assert crit["start"] == "dut.core1.membranes.0.2_RDATA_LC.O"
    assert crit["end"] == "ff_b.I0"
    assert crit["rtl_lines"] == ["desire_accelerator.v:3213"]
    assert crit["slowest_elements"][0]["at"] == "dut.core1.membranes.0.0_RDATA[0]"


def test_fit_errors_name_the_resource() -> None:
    up5k = DEVICES[("ice40", "up5k")]
    check_fit(up5k, {"luts": 5280, "bram": 30})
    with pytest.raises(FitError, match=r"block RAMs.*31 used > 30 available"):
        check_fit(up5k, {"luts": 100, "bram": 31})
    assert parse_utilisation_log(NEXTPNR_LOG) == {
        "ICESTORM_LC": (6000, 5280),
        "ICESTORM_RAM": (15, 30),
    }


def test_markdown_row() -> None:
    res = {
        "target": "ice40",
        "device": "iCE40UP5K",
        "layers": [64, 16, 10],
        "lanes": 2,
        "luts": 2110,
        "ffs": 437,
        "bram": 15,
        "spram": 0,
        "dsp": 0,
        "fmax_mhz": 15.64,
        "critical_path": {"start": "a.O", "end": "b.I0"},
    }
    row = markdown_row(res)
    assert row.count("|") == TABLE_HEADER.splitlines()[0].count("|")
    assert "| 15.6 |" in row and "a.O -> b.I0" in row


def test_weight_memory_bits() -> None:
    cfg = load_config(preset="fmnist-1000")
    assert weight_memory_bits(cfg) == (784 * 1000 + 1000 * 100 + 100 * 10) * 16


def test_cli_rejects_bad_device(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--target", "ice40", "--device", "25k"])
    assert "not a ice40 device" in capsys.readouterr().err


def test_speed_grades() -> None:
    ecp5, up5k = DEVICES[("ecp5", "85k")], DEVICES[("ice40", "up5k")]
    assert check_speed(ecp5, None) == 6, "the slowest grade unless asked"
    assert check_speed(ecp5, 8) == 8 and ecp5.part_name(8) == "LFE5U-85F-8"
    with pytest.raises(SynthError, match="speed grades 6, 7, 8, not 5"):
        check_speed(ecp5, 5)
    assert check_speed(up5k, None) is None and up5k.part_name(None) == "iCE40UP5K"
    with pytest.raises(SynthError, match="no speed grade"):
        check_speed(up5k, 8)


def test_nextpnr_gets_the_speed_grade(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(synth, "run_tool", lambda tool, args, cwd, log, **kw: calls.append(args))
    ecp5_85k, up5k = DEVICES[("ecp5", "85k")], DEVICES[("ice40", "up5k")]
    synth._nextpnr(ecp5_85k, tmp_path, freq=100.0, seed=3, speed=8, placer="static")
    synth._nextpnr(up5k, tmp_path, freq=24.0, seed=3, speed=None, placer="heap")
    ecp5, ice40 = calls
    assert ecp5[ecp5.index("--speed") + 1] == "8" and ecp5[ecp5.index("--seed") + 1] == "3"
    assert ecp5[ecp5.index("--placer") + 1] == "static"
    assert "--speed" not in ice40


def test_cli_rejects_bad_speed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main(["--target", "ecp5", "--speed", "9", "--out", str(out)])
    assert exit_.value.code == 2, "a user mistake"
    err = capsys.readouterr().err
    assert "speed grades 6, 7, 8, not 9" in err and len(err.strip().splitlines()) == 1
    assert not out.exists(), "nothing written for a bad option"


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """``main(argv)`` must exit 2 with one line on stderr; returns that line."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_cli_bad_config_is_one_line(tmp_path: Path) -> None:
    """Run as a user runs it: exit 2, one line, no traceback, nothing written."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[hardware]\nlanes = 0\n")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "rtl.synth", "--target", "ecp5", "--config", str(bad), "--out", out],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "lanes" in proc.stderr
    assert not out.exists()


def test_cli_refuses_foreign_out(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "result.json").write_text("{}\n")
    assert "did not write" in _cli_error(["--target", "ecp5", "--out", str(out)], capsys)
    assert [p.name for p in out.iterdir()] == ["result.json"]
    assert (out / "result.json").read_text() == "{}\n", "unchanged"
    assert "is a file" in _cli_error(
        ["--target", "ecp5", "--out", str(out / "result.json")], capsys
    )
    assert "lanes" in _cli_error(["--target", "ecp5", "--lanes", "0", "--out", str(out)], capsys)


def test_cli_refuses_spram_weights_without_spram(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """weight_ports = 1 on a part without SPRAM: one line before anything is generated
    (yosys would fail late with "no valid mapping found for memory")."""
    config = str(ROOT / "configs" / "ice40_up5k.toml")
    out = tmp_path / "s"
    err = _cli_error(["--target", "ecp5", "--config", config, "--out", str(out)], capsys)
    assert "weight_ports = 1" in err and "LFE5U-85F" in err
    assert not out.exists()


def test_cli_reruns_into_its_own_folder(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Twice into one folder with a stand-in yosys: the second run may overwrite the first."""

    def fake_yosys(tool: str, args: list[str], cwd: Path, log: Path, **kw: object) -> None:
        stat = {"design": {"num_cells_by_type": {"LUT4": 3, "TRELLIS_FF": 2}}}
        (cwd / "stat.json").write_text(json.dumps(stat))
        (cwd / "yosys.log").write_text("")

    monkeypatch.setattr(synth, "run_tool", fake_yosys)
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("[network]\nlayers = [16, 4, 2]\n[hardware]\nlanes = 2\n")
    out = tmp_path / "out"
    argv = ["--target", "ecp5", "--config", str(cfg), "--no-pnr", "--out", str(out)]
    assert main(argv) == 0
    assert main(argv) == 0
    assert json.loads((out / "result.json").read_text())["luts"] == 3
    assert "| ecp5 |" in capsys.readouterr().out


def test_ice40_config_is_valid() -> None:
    cfg = load_config(ROOT / "configs" / "ice40_up5k.toml")
    assert cfg.network.layers == (784, 80, 10) and cfg.hardware.lanes == 4
    assert not cfg.hardware.training, "the learning units do not fit the UP5K"
    c = constants(cfg)
    words = sum(c.layers[l] * -(-c.layers[l + 1] // 4) for l in range(c.n_linear))
    assert words <= SPRAM_WORDS and c.weight_bits == 16, "one SPRAM per lane"


def test_ecp5_25f_config_is_valid() -> None:
    """784-64-10 on 4 lanes: 13 DP16KD of 1,024 16-bit words per lane, 52 of the 25F's 56
    (the encoder and the spike vectors take 3 more: 55, bench/results/targets_synth.json)."""
    cfg = load_config(ROOT / "configs" / "ecp5_25f.toml")
    assert cfg.network.layers == (784, 64, 10) and cfg.hardware.lanes == 4
    assert not cfg.hardware.training and cfg.hardware.weight_ports == 2
    c = constants(cfg)
    words = sum(c.layers[l] * -(-c.layers[l + 1] // 4) for l in range(c.n_linear))
    assert words == 12_736 and -(-words // 1024) == 13 and c.weight_bits == 16


def test_ecp5_85f_config_is_valid() -> None:
    """784-240-10 (the 85 % network) on 8 lanes: 24 DP16KD of 1,024 words per lane, 192 of
    the 85F's 208 (197 with the encoder and the vectors, bench/results/targets_synth.json)."""
    cfg = load_config(ROOT / "configs" / "ecp5_85f.toml")
    assert cfg.network.layers == (784, 240, 10) and cfg.hardware.lanes == 8
    assert not cfg.hardware.training and cfg.hardware.architecture == "shared"
    c = constants(cfg)
    words = sum(c.layers[l] * -(-c.layers[l + 1] // 8) for l in range(c.n_linear))
    assert words == 24_000 and -(-words // 1024) * 8 == 192


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("DESIRE_SYNTH_TEST") != "1", reason="set DESIRE_SYNTH_TEST=1")
@pytest.mark.parametrize("target", ["ice40", "ecp5"])
def test_yosys_run_on_tiny_config(target: str, tmp_path: Path) -> None:
    if not tools_available(target):
        pytest.skip("pip install 'desire-snn[fpga]'")
    cfg = Config().replace(network={"layers": (16, 4, 2)}, hardware={"lanes": 2})
    try:  # whether it fits depends on the RTL of the day; the result is written either way
        synthesise(cfg, target, out=tmp_path, pnr=False)
    except FitError as exc:
        assert "used >" in str(exc)
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["source"] == "yosys"
    assert sum(res["yosys_cells"].values()) > 0 and res["luts"] > 0 and res["ffs"] > 0
    assert any("weights" in name for name in res["memories"])
    assert "ERROR" not in (tmp_path / "yosys.log").read_text()


#: Two copies of one register (equal inputs), the first marked ``keep`` as
#: rtl.pipeline.KEEP marks fan-out copies, plus an unmarked pair.
_COPIES_V = """
module copies(input clk, input [3:0] a, b, c, output [3:0] y0, y1, y2, y3);
  (* keep = 32'd1 *) reg [3:0] k0;
  (* keep = 32'd1 *) reg [3:0] k1;
  reg [3:0] m0, m1;
  always @(posedge clk) begin k0 <= a; k1 <= a; m0 <= c; m1 <= c; end
  assign y0 = k0 ^ b; assign y1 = k1 ^ c; assign y2 = m0 ^ b; assign y3 = m1 ^ c;
endmodule
"""


@pytest.mark.skipif(os.environ.get("DESIRE_SYNTH_TEST") != "1", reason="set DESIRE_SYNTH_TEST=1")
@pytest.mark.parametrize("target", ["ice40", "ecp5"])
def test_keep_copies_survive_the_script(target: str, tmp_path: Path) -> None:
    """The flow's script keeps registers on ``keep`` wires apart and merges the rest."""
    if not tools_available():
        pytest.skip("pip install 'desire-snn[fpga]'")
    (tmp_path / "copies.v").write_text(_COPIES_V)
    (tmp_path / "synth.ys").write_text(yosys_script(target, "copies", ["copies.v"]))
    run_tool(TOOLS["yosys"], ["-q", "-s", "synth.ys"], tmp_path, tmp_path / "yosys.out")
    cells = yosys_cells(json.loads((tmp_path / "stat.json").read_text()))
    ffs = sum(n for kind, n in cells.items() if "FF" in kind)
    assert ffs == 3 * 4, cells  # k0, k1 and one merged m


def _router2_log(overuse: list[int]) -> str:
    return "".join(
        f"Info:     iter={i} wires={500000 + i} overused={o} overuse={o} archfail=NA\n"
        for i, o in enumerate(overuse, start=1)
    )


def test_router_divergence() -> None:
    converging = [9000, 3000, 1200, 600, 300, *([250, 240] * 20), 100, 20, 3, 0]
    assert router_divergence(_router2_log(converging)) is None
    # the shape of the runs that never finished: a minimum, then steady growth
    diverging = [9000, 3000, 1200, 525, *range(540, 540 + 30 * 40, 40)]
    reason = router_divergence(_router2_log(diverging))
    assert reason is not None and "rose from 525 (iteration 4)" in reason
    assert router_divergence(_router2_log([40, 20, 14, *[90] * 60])) is None, "small noise"


def test_run_tool_stops_a_diverging_router(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A stand-in tool prints a diverging route and would then hang for a minute."""
    fake = tmp_path / "bin" / "fake-nextpnr"
    fake.parent.mkdir()
    log_text = _router2_log([5000, 500, *range(600, 600 + 40 * 100, 100)])
    (tmp_path / "route.log").write_text(log_text)
    fake.write_text(f"#!/bin/sh\ncat {tmp_path / 'route.log'}\nexec sleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    log = tmp_path / "nextpnr.log"
    t0 = time.monotonic()
    with pytest.raises(SynthError, match=r"router2 does not converge.*try another --seed"):
        run_tool("fake-nextpnr", [], tmp_path, log, watch=router_divergence, poll_s=0.2)
    assert time.monotonic() - t0 < 30, "stopped, not waited out"
    assert log.read_text() == log_text
