"""The building blocks of safe outputs: atomic writes, folder swaps, run locks, claims.

Each test holds one promise of docs/outputs.md: nothing a user owns is overwritten, a
crash never leaves a half-written output, two runs never share a folder.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from desire import atomic
from desire.atomic import atomic_dir, atomic_write_text, remove_temps, replace_dir
from desire.errors import OutputError
from desire.outdir import MARKER, claim_output_dir
from desire.rundir import LogError, RunFolder, Start, read_log
from desire.runlock import RunLock

ROOT = Path(__file__).resolve().parent.parent


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_atomic_write_replaces_and_respects_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "one")
        atomic_write_text(tmp_path / "a.txt", "two")
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").read_text() == "two"
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "d"]


def test_full_disk_keeps_the_previous_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "last.pt"
    atomic_write_text(target, "epoch 3")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(OutputError, match="disk is full") as exc:
        atomic_write_text(target, "epoch 4")
    assert "previous last.pt is intact" in str(exc.value) and "\n" not in str(exc.value)
    assert target.read_text() == "epoch 3"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_failed_folder_build_leaves_the_old_folder(tmp_path: Path) -> None:
    final = tmp_path / "export"
    with atomic_dir(final) as d:
        (d / "manifest.json").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(final) as d:
        (d / "manifest.json").write_text("new")
        raise RuntimeError("killed mid-write")
    assert (final / "manifest.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_replace_dir_swaps_without_a_gap(tmp_path: Path, monkeypatch) -> None:
    """The exchange is one system call; the two-rename fallback recovers after a crash."""
    final, new = tmp_path / "last", tmp_path / ".last.x.tmp"
    final.mkdir()
    (final / "v").write_text("1")
    new.mkdir()
    (new / "v").write_text("2")
    replace_dir(new, final)
    assert (final / "v").read_text() == "2" and not new.exists()
    # the fallback, cut short between its two renames: remove_temps puts the old one back
    aside = tmp_path / ".last.old.tmp"
    os.replace(final, aside)
    assert not final.exists()
    remove_temps(tmp_path)
    assert (final / "v").read_text() == "2" and not aside.exists()
    # and the fallback itself, where the file system cannot exchange
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    new.mkdir()
    (new / "v").write_text("3")
    replace_dir(new, final)
    assert (final / "v").read_text() == "3" and sorted(os.listdir(tmp_path)) == ["last"]


def test_remove_temps_spares_live_writes_and_foreign_files(tmp_path: Path) -> None:
    (tmp_path / ".last.pt.abc.tmp").write_text("killed write")
    (tmp_path / "notes.tmp").write_text("the user's")
    (tmp_path / ".hidden").write_text("the user's")
    live = tmp_path / ".best.pt.def.tmp"
    live.write_text("being written")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        removed = remove_temps(tmp_path)
    finally:
        os.close(fd)
    assert [p.name for p in removed] == [".last.pt.abc.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".best.pt.def.tmp",
        ".hidden",
        "notes.tmp",
    ]


def test_run_lock_names_the_holder_and_dies_with_it(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from desire.runlock import RunLock; "
            f"RunLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputError, match=f"in use by another run \\(PID {holder.pid}\\)"):
            RunLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with RunLock(tmp_path):  # kill -9 released it
        pass


def test_run_lock_refuses_a_second_holder_in_process(tmp_path: Path) -> None:
    with RunLock(tmp_path), pytest.raises(OutputError, match=str(os.getpid())):
        RunLock(tmp_path).acquire()


def test_claim_output_dir(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "config.json").write_text("the user's")
    with pytest.raises(OutputError, match="did not write"):
        claim_output_dir(foreign, "rtl.verilog")
    assert _tree(foreign) == {"config.json": b"the user's"}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert claim_output_dir(empty, "rtl.verilog") == empty
    assert json.loads((empty / MARKER).read_text())["tool"] == "rtl.verilog"
    (empty / "top.v").write_text("x")
    claim_output_dir(empty, "rtl.verilog")  # its own folder again
    with pytest.raises(OutputError, match="did not write"):
        claim_output_dir(empty, "rtl.synth")  # but not another tool's
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        claim_output_dir(a_file, "rtl.verilog")
    with pytest.raises(OutputError, match="is a file"):
        claim_output_dir(a_file / "sub", "rtl.verilog")
    assert a_file.read_text() == "x"


def _folder(path: Path) -> RunFolder:
    return RunFolder(path, ("log.jsonl", "last.pt"), ("log.jsonl", "last.pt", "plot.png"), "t")


def test_run_folder_start_rules(tmp_path: Path) -> None:
    run = tmp_path / "a" / "b"
    with pytest.raises(OutputError, match="holds no t run"), _folder(run).open(Start.RESUME):
        pass
    assert not (tmp_path / "a").exists(), "a refused start created folders"
    with _folder(run).open(Start.FRESH):
        (run / "last.pt").write_text("1")
        (run / "plot.png").write_text("p")
    (run / "notes.txt").write_text("the user's")
    refused = pytest.raises(OutputError, match="--resume continues it, --force starts over")
    with refused, _folder(run).open(Start.FRESH):
        pass
    with _folder(run).open(Start.RESUME):
        assert (run / "last.pt").read_text() == "1"
    with _folder(run).open(Start.FORCE):
        pass
    assert sorted(p.name for p in run.iterdir()) == [".lock", "notes.txt"]


def test_run_folder_refused_by_lock_leaves_no_lock_file(tmp_path: Path) -> None:
    (tmp_path / "last.pt").write_text("1")
    with pytest.raises(OutputError, match="already holds"), _folder(tmp_path).open(Start.FRESH):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    busy = pytest.raises(OutputError, match="in use by another run")
    with _folder(tmp_path).open(Start.RESUME), busy, _folder(tmp_path).open(Start.RESUME):
        pass


def test_read_log_skips_only_a_cut_last_line(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"epoch": 0}\n{"epoch": 1}\n{"epo')
    assert [e["epoch"] for e in read_log(log)] == [0, 1]
    log.write_text('{"epoch": 0}\n{"epo\n{"epoch": 2}\n')
    with pytest.raises(LogError, match="line 2 is not JSON"):
        read_log(log)


def test_kill_during_write_leaves_old_file(tmp_path: Path) -> None:
    """A writer killed with SIGKILL mid-write: the old file stays, the temp is cleared later."""
    target = tmp_path / "last.pt"
    atomic_write_text(target, "old")
    code = (
        "import time; from pathlib import Path; from desire.atomic import atomic_write; "
        f"atomic_write(Path({str(target)!r}), lambda f: (f.write(b'partial'), f.flush(), "
        "print('writing', flush=True), time.sleep(60)))"
    )
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert target.read_text() == "old"
    assert len(list(tmp_path.iterdir())) == 2  # the killed write's temporary
    remove_temps(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.parametrize(
    ("out", "message"),
    [("{tmp}", "is a folder"), ("{tmp}/a_file/x.json", "is a file, not a folder")],
)
def test_bench_out_is_checked_before_the_run(tmp_path: Path, out: str, message: str) -> None:
    """A benchmark's bad ``--out`` is refused when parsed, before any measuring."""
    (tmp_path / "a_file").write_text("")
    cmd = [sys.executable, str(ROOT / "bench/golden_speed.py"), "--samples", "1"]
    done = subprocess.run(
        [*cmd, "--out", out.format(tmp=tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stdout == ""  # nothing measured
