"""The shipped models (exports/): valid, measured as their manifests say, found by the demo."""

from __future__ import annotations

import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

from desire.config import load_config
from desire.demo import SHIPPED, shipped_export
from golden import GoldenNet, strict_argmax
from golden.export import load_export

ROOT = Path(__file__).resolve().parents[1]
FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
MODELS = sorted(p.parent for p in SHIPPED.glob("*/export/manifest.json"))


def test_models_are_shipped() -> None:
    assert {m.parent.name for m in MODELS} >= {"fmnist-784-64-10", "fmnist-784-256-10"}


@pytest.mark.parametrize("export", MODELS, ids=lambda p: p.parent.name)
def test_shipped_model_is_complete(export: Path) -> None:
    """Checksummed files (load_export checks them all), accuracies on all test images, the
    learning curve and the run's log beside the export."""
    cfg, weights, manifest = load_export(export)
    assert [w.shape for w in weights] == [(b, a) for a, b in pairwise(cfg.network.layers)]
    assert manifest["test_samples"] == 10_000
    assert 0.5 < manifest["float_accuracy"] < 1 and 0.5 < manifest["fixed_accuracy"] < 1
    assert (export.parent / "learning_curve.png").stat().st_size > 0
    assert (export.parent / "log.jsonl").read_text().count("\n") >= 1


@pytest.mark.skipif(not FMNIST_DIR.is_dir(), reason="Fashion-MNIST not installed")
@pytest.mark.parametrize("export", MODELS, ids=lambda p: p.parent.name)
def test_shipped_accuracy_is_reproduced(export: Path) -> None:
    """golden/ on the first 1,000 test images: within 3 points of the manifest's figure on
    all 10,000 (a wrong or shuffled weight file lands far below)."""
    from desire.datasets import load_dataset

    cfg, weights, manifest = load_export(export)
    x, y = load_dataset("fashion-mnist", "test", limit=1000)
    acc = float((strict_argmax(GoldenNet(cfg, weights).infer(x)) == y).mean())
    assert abs(acc - manifest["fixed_accuracy"]) < 0.03, (acc, manifest["fixed_accuracy"])


def test_demo_finds_the_default_networks_model() -> None:
    found = shipped_export(load_config())
    assert found is not None and found.parent.name == "fmnist-784-64-10"
    assert shipped_export(load_config().replace(network={"tsteps": 21})) is None
    assert load_export(found)[0].network.layers == (784, 64, 10)


@pytest.mark.parametrize(
    ("name", "message"), [("fmnist-784-64-10", "exists"), ("../x", "letters, digits")]
)
def test_ship_tool_refuses(tmp_path: Path, name: str, message: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools/ship_model.py"), str(run), "--name", name],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.count("\n") == 1
