"""``python -m model export`` and ``--arith fixed`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from golden.export import load_export
from model.__main__ import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("desire.datasets").find_data_dir("fashion-mnist")
    out = tmp_path_factory.mktemp("run")
    main(
        [
            "train",
            "--train-limit",
            "400",
            "--test-limit",
            "50",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--lr",
            "1e-4",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    return out / "best.pt"


def test_export_reports_float_and_fixed(checkpoint: Path, tmp_path: Path, capsys) -> None:
    main(
        [
            "export",
            "--model-path",
            str(checkpoint),
            "--out",
            str(tmp_path / "exp"),
            "--test-limit",
            "200",
        ]
    )
    text = capsys.readouterr().out
    _, _, manifest = load_export(tmp_path / "exp")
    assert (
        f"{manifest['float_accuracy']:.2%}" in text and f"{manifest['fixed_accuracy']:.2%}" in text
    )
    # 16-bit weights: quantised inference within 3 points of float on 200 images
    assert abs(manifest["float_accuracy"] - manifest["fixed_accuracy"]) <= 0.03
    assert manifest["float_accuracy"] > 0.2  # the checkpoint learned something (chance: 0.1)
    main(["eval", "--arith", "fixed", "--model-path", str(checkpoint), "--test-limit", "200"])
    assert f"{manifest['fixed_accuracy']:.2%}" in capsys.readouterr().out


def test_fixed_training_cli_and_resume(tmp_path: Path) -> None:
    common = [
        "--arith",
        "fixed",
        "--train-limit",
        "30",
        "--test-limit",
        "20",
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    main(["train", "--epochs", "1", *common])
    main(["train", "--epochs", "2", "--resume", *common])
    log = [json.loads(s) for s in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [0, 1]
    _, _, manifest = load_export(tmp_path / "last")
    assert manifest["golden_state"]["epoch"] == 1
