"""Export files (hex layout, checksums, atomicity) and the ``python -m golden`` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from desire import load_config
from golden import GoldenNet
from golden.__main__ import main
from golden.export import ExportError, load_export, memory_words, words_to_weights, write_export

CFG = load_config()


def test_memory_words_layout_by_hand() -> None:
    w = np.array([[1, -1], [2, -2], [3, -3]])  # (n_out=3, n_in=2), P = 2 lanes of 4 bits
    words = memory_words(w, lanes=2, bits=4)
    # input 0: outputs (0,1) = (1,2) -> 0x21, outputs (2,pad) = (3,0) -> 0x03
    # input 1: (-1,-2) -> 0xEF, (-3, 0) -> 0x0D
    assert words == [0x21, 0x03, 0xEF, 0x0D]
    assert words_to_weights(words, 3, 2, 2, 4).tolist() == w.tolist()


@pytest.mark.parametrize("lanes", [1, 3, 8])
def test_memory_words_round_trip(lanes: int) -> None:
    w = np.random.default_rng(lanes).integers(-(2**15), 2**15, (11, 7))
    assert np.array_equal(words_to_weights(memory_words(w, lanes, 16), 11, 7, lanes, 16), w)


def test_export_round_trip_and_corruption(tmp_path: Path) -> None:
    net = GoldenNet.init_random(CFG, 1)
    out = write_export(tmp_path / "exp", CFG, net.weights, {"float_accuracy": 0.5})
    cfg, weights, manifest = load_export(out)
    assert cfg == CFG and manifest["float_accuracy"] == 0.5
    assert all(np.array_equal(a, b) for a, b in zip(weights, net.weights, strict=True))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left over
    hex_file = out / "w1.hex"
    lines = hex_file.read_text().splitlines()
    assert len(lines) == 64 * 2 and len(lines[0]) == 8 * 16 // 4  # 64 inputs x ceil(10/8) words
    hex_file.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ExportError, match="checksum"):
        load_export(out)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(ExportError, match="JSON"):
        load_export(out)
    with pytest.raises(ExportError, match="missing"):
        load_export(tmp_path / "nowhere")


def test_export_refuses_weights_that_do_not_fit(tmp_path: Path) -> None:
    net = GoldenNet.init_random(CFG, 1)
    out = write_export(tmp_path / "exp", CFG, net.weights)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["config"]["network"]["layers"] = [784, 32, 10]
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match="shape"):
        load_export(out)


def test_cli_train_resume_eval(tmp_path: Path, capsys) -> None:
    pytest.importorskip("desire.datasets").find_data_dir("fashion-mnist")
    common = [
        "--train-limit",
        "60",
        "--test-limit",
        "40",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
    ]
    assert main(["train", "--epochs", "1", *common]) == 0
    assert main(["train", "--epochs", "2", "--resume", *common]) == 0
    log = [json.loads(s) for s in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [0, 1]
    assert log[1]["lr_int"] < log[0]["lr_int"]  # per-epoch decay
    capsys.readouterr()
    last = str(tmp_path / "run" / "last")
    assert main(["eval", "--model-path", last, "--test-limit", "40", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fixed_accuracy"] == log[1]["test_acc"]


def test_resume_before_the_first_epoch_keeps_the_start_weights(tmp_path: Path) -> None:
    """A run started from ``--model-path`` and killed before its first epoch ended (no
    ``last`` yet) resumes from those weights, not from new random ones: its first epoch
    ends where an uninterrupted run's does."""
    pytest.importorskip("desire.datasets").find_data_dir("fashion-mnist")
    start = write_export(tmp_path / "start", CFG, GoldenNet.init_random(CFG, 7).weights)
    common = ["--train-limit", "30", "--test-limit", "20", "--quiet", "--epochs", "1"]
    whole, cut = str(tmp_path / "whole"), tmp_path / "cut"
    assert main(["train", "--model-path", str(start), "--out", whole, *common]) == 0
    assert main(["train", "--model-path", str(start), "--out", str(cut), *common]) == 0
    for name in ("last", "best", "log.jsonl"):  # as if killed during epoch 0
        path = cut / name
        if path.is_dir():
            for f in path.iterdir():
                f.unlink()
            path.rmdir()
        else:
            path.unlink()
    assert (cut / "initial").is_dir()
    assert main(["train", "--resume", "--out", str(cut), *common]) == 0
    a, b = load_export(Path(whole) / "last")[1], load_export(cut / "last")[1]
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_cli_errors(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--model-path", str(tmp_path)])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["train", "--dropout", "1.5", "0.1", "--out", str(tmp_path)])
