"""rtl.verilog's output folder: compiles as a whole, says which file is the design, describes
the top's ports (checked against the Verilog), and is written only where it may be.

Configs are small (16-6-4-2, 2 lanes: three cores, training units included) so that a build
takes seconds; the structure, not the size, is what these tests are about.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from desire.config import Config
from desire.outdir import MARKER
from rtl.verilog import MANIFEST, TOOL, build

ROOT = Path(__file__).resolve().parents[1]
THREE_CORES = Config().replace(network={"layers": (16, 6, 4, 2)}, hardware={"lanes": 2})
TOML = 'preset = "default"\n[network]\nlayers = [16, 6, 4, 2]\n[hardware]\nlanes = 2\n'


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m rtl.verilog ARGS`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "rtl.verilog", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert text in proc.stderr


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("verilog") / "out"
    build(THREE_CORES, out)
    return out


@pytest.fixture
def tiny_toml(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TOML)
    return path


# ---------------------------------------------------------------- one folder, one design


def test_folder_compiles_as_a_whole(folder: Path, tmp_path: Path) -> None:
    """``iverilog *.v``: no module is declared twice, top or submodule."""
    iverilog = shutil.which("iverilog")
    if iverilog is None:
        pytest.skip("iverilog not installed")
    sources = sorted(folder.glob("*.v"))
    assert len(sources) == 1 + 1 + 3 + 2, "top, encoder, a core per layer, two training units"
    modules = [m for src in sources for m in re.findall(r"^module\s+(\S+)", src.read_text(), re.M)]
    assert len(modules) == len(set(modules)), "every module name unique"
    proc = subprocess.run(
        [iverilog, "-o", str(tmp_path / "all.vvp"), *map(str, sources)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_each_file_declares_its_own_top(folder: Path) -> None:
    listing = json.loads((folder / MANIFEST).read_text())
    assert listing["tool"] == TOOL and listing["top"] == "desire_accelerator.v"
    names = {entry["file"] for entry in listing["files"]}
    assert names == {p.name for p in folder.iterdir() if p.name != MARKER}, "all listed"
    cores = [e["module"] for e in listing["files"] if "neuron_core" in e["file"]]
    assert cores == ["desire_neuron_core0", "desire_neuron_core1", "desire_neuron_core2"]
    for entry in listing["files"]:
        if entry["module"]:
            text = (folder / entry["file"]).read_text()
            assert f"module {entry['module']}(" in text, entry
            assert entry["file"] == f"{entry['module']}.v"


def test_readme_names_the_design(folder: Path) -> None:
    readme = (folder / "README.md").read_text()
    assert "**`desire_accelerator.v` is the design**" in readme
    for entry in json.loads((folder / MANIFEST).read_text())["files"]:
        assert f"| {entry['file']} |" in readme


# ---------------------------------------------------------------- port reference

_HEADER = re.compile(r"^module\s+desire_accelerator\s*\(([^)]*)\);", re.M)
_DECL = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s*)?(\S+)\s*;")


def _verilog_ports(text: str) -> dict[str, tuple[str, int]]:
    """Ports of the top from its module header and their declarations (yosys' style)."""
    header = _HEADER.search(text)
    assert header is not None
    names = {n.strip() for n in header[1].split(",")}
    body = text[header.end() : text.index("\nendmodule", header.end())]
    ports = {}
    for line in body.splitlines():
        m = _DECL.match(line)
        if m and m[4] in names:
            ports[m[4]] = (m[1], abs(int(m[2]) - int(m[3])) + 1 if m[2] else 1)
    assert set(ports) == names, "every header port declared"
    return ports


def test_ports_json_matches_the_verilog(folder: Path) -> None:
    verilog = _verilog_ports((folder / "desire_accelerator.v").read_text())
    ref = json.loads((folder / "ports.json").read_text())
    assert ref["module"] == "desire_accelerator"
    table = {p["name"]: (p["direction"], p["width"]) for p in ref["ports"]}
    assert table == verilog
    markdown = (folder / "ports.md").read_text()
    for name in verilog:
        assert f"| `{name}" in markdown


def test_struct_fields_cover_the_payload_exactly(folder: Path) -> None:
    ports = json.loads((folder / "ports.json").read_text())["ports"]
    structs = [p for p in ports if p["fields"]]
    assert [p["name"] for p in structs] == ["result__payload"]
    for port in structs:
        bit = 0
        for field in sorted(port["fields"], key=lambda f: f["lsb"]):
            assert field["lsb"] == bit, f"no gap or overlap before {field['name']}"
            assert field["msb"] == field["lsb"] + field["width"] - 1
            bit += field["width"]
        assert bit == port["width"]
    names = [f["name"] for f in structs[0]["fields"]]
    assert names == ["counts[0]", "counts[1]", "cls", "valid_class"], "counts first, class 0 low"
    assert "`result__payload[" in (folder / "ports.md").read_text()


def test_ports_have_reset_polarity_and_meaning(folder: Path) -> None:
    ports = {p["name"]: p for p in json.loads((folder / "ports.json").read_text())["ports"]}
    for p in ports.values():
        assert (p["reset"] is None) == (p["direction"] == "input"), p["name"]
        if p["width"] == 1 and p["name"] != "clk":
            assert p["polarity"].startswith("active high"), p["name"]
    assert ports["clk"]["polarity"] == "rising edge"
    assert ports["rst"]["polarity"] == "active high, synchronous"
    assert ports["pixels__ready"]["reset"] == 1, "combinational: simulated, not the init value"
    assert ports["bus__addr"]["meaning"].endswith(
        "Word address; MSB set selects the weights (see Accelerator.weight_address), "
        "clear the registers."
    ), "member docs of MmioSignature"
    assert "Whether a payload is available." in ports["pixels__valid"]["meaning"]


# ---------------------------------------------------------------- command line and output safety


def test_bad_config_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[network]\nlayers = [16]\n")
    out = tmp_path / "out"
    _one_line_error(_cli("--config", str(bad), "--out", str(out)), "error:")
    assert not out.exists()
    _one_line_error(_cli("--config", str(tmp_path / "nope.toml"), "--out", str(out)), "nope.toml")
    assert not out.exists()


def test_refuses_a_foreign_folder(tmp_path: Path, tiny_toml: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"mine": true}\n')
    before = _snapshot(out)
    _one_line_error(_cli("--config", str(tiny_toml), "--out", str(out)), "did not write")
    assert _snapshot(out) == before, "nothing overwritten, nothing added"


def test_refuses_a_file_and_an_unwritable_path(tmp_path: Path, tiny_toml: Path) -> None:
    target = tmp_path / "a_file"
    target.write_text("keep me\n")
    _one_line_error(_cli("--config", str(tiny_toml), "--out", str(target)), "is a file")
    assert target.read_text() == "keep me\n"
    if not Path("/proc/self").exists():
        pytest.skip("no /proc: no path that is unwritable for root too")
    _one_line_error(_cli("--config", str(tiny_toml), "--out", "/proc/desire-out"), "/proc")


def test_rerun_into_its_own_folder(tmp_path: Path, tiny_toml: Path) -> None:
    out = tmp_path / "out"
    first = _cli("--config", str(tiny_toml), "--out", str(out))
    assert first.returncode == 0, first.stderr
    assert json.loads((out / MARKER).read_text())["tool"] == TOOL
    (out / "notes.txt").write_text("the user's\n")
    again = _cli("--config", str(tiny_toml), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "desire_accelerator.v" in again.stdout
    assert (out / "notes.txt").read_text() == "the user's\n"
    assert not list(out.glob(".*.tmp")), "no temporaries left"


def test_rerun_with_fewer_layers_drops_the_old_cores(tmp_path: Path) -> None:
    """The folder holds one config: the previous run's extra core goes, a user's file stays."""
    out = tmp_path / "out"
    build(THREE_CORES, out)
    (out / "notes.v.txt").write_text("the user's\n")
    build(THREE_CORES.replace(network={"layers": (16, 4, 2)}), out)
    cores = sorted(p.name for p in out.glob("desire_neuron_core*.v"))
    assert cores == ["desire_neuron_core0.v", "desire_neuron_core1.v"]
    assert (out / "notes.v.txt").exists()
    assert "16-4-2" in (out / "README.md").read_text()
