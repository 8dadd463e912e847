"""Output folders a tool may write into, and the checks made before anything is created.

A tool writes only into a folder that is absent, empty, or marked as its own by an
earlier run of the same tool (the marker file ``.desire-output`` names the tool), so
``--out .`` or a mistyped ``--out`` never overwrites a user's files. All checks run
before the first file or folder is made: a refused start leaves nothing behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from desire.atomic import atomic_write_text
from desire.errors import OutputError

__all__ = ["MARKER", "check_writable", "claim_output_dir", "create_dir", "is_own"]

MARKER = ".desire-output"


def check_writable(path: Path, flag: str = "--out") -> None:
    """Refuse, with one line, a ``path`` that is a file or lies where no folder can be made."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path} is a file, not a folder")
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{flag} {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path}: {probe} is not writable")


def create_dir(path: Path, flag: str = "--out") -> None:
    """``mkdir -p`` with a one-line error instead of a traceback."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{flag} {path}: cannot create it ({exc.strerror or exc})") from exc


def is_own(path: Path, tool: str) -> bool:
    """Whether ``path`` carries ``tool``'s marker."""
    try:
        return json.loads((Path(path) / MARKER).read_text()).get("tool") == tool
    except (OSError, ValueError, AttributeError):
        return False


def claim_output_dir(path: Path, tool: str, flag: str = "--out", create: bool = True) -> Path:
    """Check that ``tool`` may write into ``path``; with ``create``, make and mark it.

    Allowed: a path that does not exist yet, an empty folder, or a folder an earlier
    run of ``tool`` marked. Anything else is refused with :class:`OutputError`.
    """
    path = Path(path)
    check_writable(path, flag)
    if path.is_dir() and any(path.iterdir()) and not is_own(path, tool):
        raise OutputError(
            f"{flag} {path} holds files that {tool} did not write; choose a new or empty folder"
        )
    if create:
        create_dir(path, flag)
        if not (path / MARKER).is_file():
            atomic_write_text(path / MARKER, json.dumps({"tool": tool}) + "\n")
    return path
