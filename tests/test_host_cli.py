"""``python -m desire.host`` end to end on ``--sim`` (the small config, a tiny export made
by golden.export): accuracy and counters, a corrupted weight caught by the comparison with
golden/, and the one-line errors of a missing export, a missing port and a silent port.

Fashion-MNIST images have 784 pixels, too many for a simulated UART; the tests give the
CLI images of the small config's 20 pixels instead (``desire.host.load_dataset``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from desire import host
from desire.config import load_config
from golden.export import write_export
from golden.network import GoldenNet

SMALL = load_config().replace(network={"layers": (20, 12, 6), "tsteps": 6}, hardware={"lanes": 4})


def _fake_dataset(name: str, split: str, data_dir, download: bool, limit: int | None):
    rng = np.random.default_rng(0 if split == "test" else 1)
    n = limit or 10
    return rng.integers(0, 256, (n, 20)).astype(np.uint8), rng.integers(0, 6, n).astype(np.uint8)


@pytest.fixture
def export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, GoldenNet]:
    monkeypatch.setattr(host, "load_dataset", _fake_dataset)
    net = GoldenNet.init_random(SMALL, seed=3)
    net.weights = [np.clip(w * 3, -(2**15), 2**15 - 1).astype(np.int32) for w in net.weights]
    return write_export(tmp_path / "export", SMALL, net.weights), net


def test_sim_run_with_training(export: tuple[Path, GoldenNet], capsys) -> None:
    path, _ = export
    assert host.main(["--sim", "--export", str(path), "--images", "2", "--train", "2"]) == 0
    out = capsys.readouterr().out
    assert "training: 2 samples on-chip" in out
    assert "weights read back equal golden" in out
    assert "accuracy: " in out and "/ 2 fashion-mnist test images)" in out
    assert "counters: CYCLES mean" in out and "EVENTS mean" in out
    assert "golden: all 2 results equal" in out


def test_sim_corrupted_weight_is_caught(
    export: tuple[Path, GoldenNet], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """One output-layer weight written wrong on the link: the first sample whose counts
    move is reported with both values, exit status 1."""
    path, net = export
    x, _ = _fake_dataset("", "test", None, False, 2)
    want = net.infer(x)
    bad = None
    for o in range(6):  # a weight whose change moves sample 0's counts
        for i in range(12):
            w = [a.copy() for a in net.weights]
            w[1][o, i] = 2**15 - 1
            if not np.array_equal(GoldenNet(SMALL, w).infer(x[:1]), want[:1]):
                bad = (o, i)
                break
        if bad:
            break
    assert bad is not None
    write_weights = host.Board.write_weights

    def corrupted(self: host.Board, weights: list[np.ndarray]) -> int:
        weights = [w.copy() for w in weights]
        weights[1][bad] = 2**15 - 1
        return write_weights(self, weights)

    monkeypatch.setattr(host.Board, "write_weights", corrupted)
    assert host.main(["--sim", "--export", str(path), "--images", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mismatch: inference sample 0, counts[")
    assert "board " in err and ", golden " in err


def _error_line(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        host.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_error_lines(export: tuple[Path, GoldenNet], tmp_path: Path, capsys) -> None:
    path, _ = export
    err = _error_line(capsys, ["--sim", "--export", str(tmp_path / "none")])
    assert "manifest.json is missing" in err
    err = _error_line(capsys, ["--port", str(tmp_path / "ttyNONE"), "--export", str(path)])
    assert "cannot open --port" in err
    err = _error_line(capsys, ["--sim", "--baud", "600000", "--export", str(path)])
    assert "--sim: baud" in err


def test_silent_port_times_out(export: tuple[Path, GoldenNet], capsys) -> None:
    """A port where nothing answers (a pseudo-terminal): one line after the resync attempts."""
    pytest.importorskip("serial")
    path, _ = export
    leader, follower = os.openpty()
    try:
        argv = ["--port", os.ttyname(follower), "--timeout", "0.1", "--export", str(path)]
        err = _error_line(capsys, argv)
    finally:
        os.close(leader)
        os.close(follower)
    assert "no answer to SYNC" in err
