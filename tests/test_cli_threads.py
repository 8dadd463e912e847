"""``python -m model --threads N``: the count reaches torch before any work; N < 1 is refused."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from model.__main__ import main


@pytest.fixture(autouse=True)
def _keep_threads() -> Iterator[None]:
    """The flag changes the whole process; later tests must not inherit it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _run(argv: list[str]) -> int:
    """``main(argv)``'s exit status; every command here stops at a missing file."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--resume"],
        ["eval", "--model-path", "missing.pt"],
        ["export", "--model-path", "missing.pt", "--out", "x"],
        ["plot", "missing-run"],
    ],
    ids=["train", "eval", "export", "plot"],
)
def test_threads_reach_torch(argv: list[str], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    assert _run([*argv, "--threads", "2"]) == 2  # the command itself fails after parsing
    assert torch.get_num_threads() == 2


def test_without_flag_torch_default_stays_and_nothing_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.set_num_threads(1)
    assert _run(["eval", "--model-path", str(tmp_path / "missing.pt")]) == 2
    assert torch.get_num_threads() == 1
    out, err = capsys.readouterr()
    assert out == "" and "thread" not in err


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_bad_thread_count_is_one_line(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["eval", "--threads", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--threads" in err and ("positive integer" in err or "an integer" in err)


def test_fresh_process_also_sets_interop_threads(tmp_path: Path) -> None:
    """Torch takes the inter-op count only before inter-op work, i.e. in a fresh process."""
    code = (
        "import torch\n"
        "from model.__main__ import main\n"
        "try:\n"
        f"    main(['eval', '--threads', '1', '--model-path', {str(tmp_path / 'x.pt')!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(torch.get_num_threads(), torch.get_num_interop_threads())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == ["1", "1"]
