"""``python -m desire.host --sim verilator`` end to end: the HostLink's Verilog (UART
included) in Verilator under cocotb, its serial lines on a pseudo-terminal that the host
opens with pyserial as it opens a board (sim/test_host_link.py, sim.host_link_server).

The network is the small config of tests/test_host_cli.py (20-12-6, 6 steps, 4 lanes)
with a tiny export and images of 20 pixels (``desire.host.load_dataset`` replaced), so a
run is a few seconds once the link's build is cached (the first build: about a minute).
Skipped where Verilator or pyserial is missing, as the other simulator tests are.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from desire import host
from golden.export import write_export
from golden.network import GoldenNet
from rtl.link_protocol import ESC, Command, LinkInfo
from sim.runner import available
from sim.test_host_link import ENV_FAULT
from tests.test_host_cli import SMALL, _error_line, _fake_dataset

pytestmark = [pytest.mark.sim, pytest.mark.slow]


@pytest.fixture
def export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    if not available("verilator"):
        pytest.skip("verilator is not installed")
    pytest.importorskip("serial")
    monkeypatch.setattr(host, "load_dataset", _fake_dataset)
    net = GoldenNet.init_random(SMALL, seed=3)
    net.weights = [np.clip(w * 3, -(2**15), 2**15 - 1).astype(np.int32) for w in net.weights]
    return write_export(tmp_path / "export", SMALL, net.weights)


def test_verilator_run_with_training(
    export: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Half a command and a bad escape on the line first (what a host killed mid-frame
    leaves), which the session's resync clears; then the weights over the link, on-chip
    training (results, PRNG states and weights read back against golden/) and inference
    against golden/: exit status 0."""
    connect = host.Board.connect

    def after_garbage(self: host.Board) -> LinkInfo:
        self.link.send_raw(bytes([Command.WRITE, 1, 2, 3, ESC, 0x00]) + bytes([Command.READ]))
        return connect(self)

    monkeypatch.setattr(host.Board, "connect", after_garbage)
    argv = ["--sim", "verilator", "--export", str(export), "--images", "4", "--train", "2"]
    code = host.main(argv)
    out, err = capsys.readouterr()
    print(out)
    assert code == 0, err
    assert "board: --sim verilator (/dev/pts/" in out
    assert "training: 2 samples on-chip" in out and "weights read back equal golden" in out
    assert "golden: all 4 results equal" in out
    assert "cycles/s while simulating" in out


def test_verilator_disconnect_and_hang(
    export: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The simulated board vanishes (its pseudo-terminal closes) in the middle of the
    weight load, or stops answering: one line each, exit status 2, no traceback."""
    argv = ["--sim", "verilator", "--export", str(export), "--images", "1", "--timeout", "1"]
    monkeypatch.setenv(ENV_FAULT, "disconnect:100")
    err = _error_line(capsys, argv)
    assert "--sim verilator (/dev/pts/" in err and "disconnected" in err
    monkeypatch.setenv(ENV_FAULT, "hang:100")
    err = _error_line(capsys, argv)
    assert "no answer from --sim verilator" in err and "within 1 s" in err


def test_baud_is_refused(export: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The Verilog link's rate is fixed: ``--baud`` is one line, before anything starts."""
    argv = ["--sim", "verilator", "--baud", "9600", "--export", str(export)]
    err = _error_line(capsys, argv)
    assert "--baud: the --sim verilator link runs at a fixed 4 cycles per bit" in err


def _log_folder(err: str) -> Path:
    """The folder of the simulator's log named at the end of an error line."""
    return Path(err.rsplit("log: ", 1)[1].strip()).parent


def test_simulator_that_does_not_start(
    export: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bench that fails before it publishes its pseudo-terminal, and a simulator slower
    to start than the host waits: one line each naming the log, exit status 2; the child
    is stopped and the log kept."""
    argv = ["--sim", "verilator", "--export", str(export), "--images", "1"]
    monkeypatch.setenv(ENV_FAULT, "unplug")  # the bench refuses it at its start
    err = _error_line(capsys, argv)
    assert "--sim verilator: the simulator stopped before it was ready (exit status 1)" in err
    assert "the verilator bench failed" in err
    folder = _log_folder(err)
    assert (folder / "sim.log").is_file()
    shutil.rmtree(folder)
    monkeypatch.delenv(ENV_FAULT)
    monkeypatch.setattr(host, "SIM_START_TIMEOUT_S", 0.5)
    err = _error_line(capsys, argv)
    assert "--sim verilator: the simulator was not ready within 0.5 s" in err
    shutil.rmtree(_log_folder(err))
