"""Run folders: how a training run starts in one, what it owns there, and its log.

A training tool (``python -m model train``, ``python -m golden train``) owns a fixed set
of names in its run folder (checkpoints, log, config, plots). Starting a run:

- *fresh*: refused when the folder already holds a run (``--resume`` continues it,
  ``--force`` starts over and removes only the names the tool owns);
- *resume*: refused when the folder holds no run;
- the folder is locked for as long as the run lasts (:class:`~desire.runlock.RunLock`),
  and temporaries of killed writes are removed once the lock is held.

Everything is checked before the folder is created, so a refused start leaves nothing
behind. ``log.jsonl`` holds one JSON object per epoch; a last line cut short by a crash
or a full disk is skipped when reading, never a reason to refuse a resume or a plot.
"""

from __future__ import annotations

import enum
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desire.atomic import atomic_write_text, remove_temps
from desire.errors import OutputError, UserError
from desire.outdir import check_writable, create_dir
from desire.runlock import LOCK_NAME, RunLock

__all__ = ["LOG_NAME", "LogError", "RunFolder", "Start", "append_log", "read_log", "write_log"]

LOG_NAME = "log.jsonl"


class LogError(UserError):
    """A training log is damaged beyond a cut-short last line."""


class Start(enum.Enum):
    """How a run meets its folder: ``--resume``, ``--force`` or neither."""

    FRESH = "fresh"
    RESUME = "resume"
    FORCE = "force"

    @classmethod
    def from_flags(cls, resume: bool, force: bool) -> Start:
        if resume and force:
            raise UserError("--resume and --force contradict each other: choose one")
        return cls.RESUME if resume else cls.FORCE if force else cls.FRESH


def read_log(path: Path) -> list[dict[str, Any]]:
    """Entries of a JSONL log; a damaged *last* line (cut short mid-append) is skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise LogError(f"cannot read {path}: {exc}") from exc
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break  # cut short by a crash or a full disk: that epoch is not committed
            raise LogError(f"{path} line {number} is not JSON (edited or corrupt)") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("epoch"), int):
            raise LogError(f"{path} line {number} is not a log entry with an 'epoch'")
        entries.append(entry)
    return entries


def append_log(path: Path, entry: dict[str, Any]) -> None:
    """Add one epoch's line. A line cut short here (crash, full disk) is skipped by
    :func:`read_log` and rewritten from the checkpoint on ``--resume``."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot append to {path}: {exc.strerror or exc}") from exc


def write_log(path: Path, entries: list[dict[str, Any]]) -> None:
    """Replace the log atomically with ``entries``."""
    atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in entries))


def _first_missing(path: Path) -> Path | None:
    """The outermost folder that creating ``path`` would make (None if it exists)."""
    missing = None
    for p in (path, *path.parents):
        if p.exists():
            break
        missing = p
    return missing


@dataclass(frozen=True)
class RunFolder:
    """A tool's run folder: ``path``, the ``marks`` whose presence means "holds a run",
    and every name the tool ``owns`` there (``--force`` removes exactly those)."""

    path: Path
    marks: tuple[str, ...]
    owns: tuple[str, ...]
    tool: str

    @property
    def log(self) -> Path:
        return self.path / LOG_NAME

    def holds_run(self) -> bool:
        return any((self.path / m).exists() for m in self.marks)

    def check(self, start: Start) -> None:
        """Every check that needs no lock, before anything is created."""
        check_writable(self.path)
        if start is Start.RESUME and not self.holds_run():
            raise OutputError(
                f"--resume: {self.path} holds no {self.tool} run to continue "
                f"(none of {', '.join(self.marks)})"
            )

    @contextmanager
    def open(self, start: Start) -> Iterator[RunFolder]:
        """Create (if needed) and lock the folder for the run; refuse a conflicting start.

        The state is checked again under the lock, since another run may have started
        since :meth:`check`; a refusal removes the lock file if this call made it.
        """
        self.check(start)
        created = _first_missing(self.path)
        create_dir(self.path)
        lock_existed = (self.path / LOCK_NAME).exists()
        lock = RunLock(self.path)
        try:
            lock.acquire()
        except OutputError:
            self._undo(created, lock_existed)
            raise
        try:
            try:
                self._check_locked(start)
            except OutputError:
                lock.release()
                self._undo(created, lock_existed)
                raise
            remove_temps(self.path)
            if start is Start.FORCE:
                self._remove_owned()
            yield self
        finally:
            lock.release()

    def _check_locked(self, start: Start) -> None:
        if start is Start.FRESH and self.holds_run():
            present = [m for m in self.marks if (self.path / m).exists()]
            raise OutputError(
                f"{self.path} already holds a {self.tool} run ({', '.join(present)}): "
                "--resume continues it, --force starts over (removing only the run's files)"
            )
        if start is Start.RESUME and not self.holds_run():
            raise OutputError(f"--resume: {self.path} holds no {self.tool} run to continue")

    def _undo(self, created: Path | None, lock_existed: bool) -> None:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        elif not lock_existed:
            (self.path / LOCK_NAME).unlink(missing_ok=True)

    def _remove_owned(self) -> None:
        for name in self.owns:
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
