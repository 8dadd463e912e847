"""``python -m sim``: a user mistake is one line on stderr and exit status 2, before anything
is built (no simulator runs in these tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _sim(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=120,
    )


@pytest.mark.parametrize(
    ("content", "text"),
    [("[network]\nlayers = [784]\n", "layers"), ("not toml [", "bad.toml")],
)
def test_bad_config(tmp_path: Path, content: str, text: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(content)
    proc = _sim("--config", str(bad))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and text in proc.stderr, proc.stderr
    assert proc.stdout == "", "nothing ran"


@pytest.mark.parametrize(("env", "text"), [({"SIM": "modelsim"}, "SIM"), ({"SEED": "x"}, "SEED")])
def test_bad_environment(env: dict[str, str], text: str) -> None:
    proc = _sim(**env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and text in proc.stderr
