"""Writes that never leave a half-written or missing output behind.

Every file the toolkit writes is built beside its final path under a temporary name
(``.<name>.<random>.tmp``) and renamed into place, so a reader sees the old file or the
new one and a crash leaves at worst a temporary file, which :func:`remove_temps` clears
on the next run. Folders (exports) are built the same way and swapped in with one atomic
``renameat2(RENAME_EXCHANGE)``: there is no moment at which neither the old nor the new
folder exists. ``mkstemp``/``mkdtemp`` create private (0600/0700) entries; outputs get the
permissions the user's umask gives any other file instead.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from desire.errors import OutputError

__all__ = [
    "TEMP_SUFFIX",
    "atomic_dir",
    "atomic_write",
    "atomic_write_text",
    "remove_temps",
    "replace_dir",
]

TEMP_SUFFIX = ".tmp"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_ASIDE = f".old{TEMP_SUFFIX}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _describe(exc: OSError, path: Path) -> str:
    kept = f"; the previous {path.name} is intact" if path.exists() else ""
    if exc.errno == errno.ENOSPC:
        free = shutil.disk_usage(path.parent if path.parent.exists() else ".").free
        return f"cannot write {path}: the disk is full ({free} bytes free){kept}"
    return f"cannot write {path}: {exc.strerror or exc}{kept}"


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, sync it, rename it into place.

    A failure (disk full included) removes the temporary file, leaves any previous
    ``path`` untouched and raises :class:`OutputError` with one line.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # tells remove_temps that this one is live
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(_describe(exc, path)) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write` of UTF-8 text."""
    atomic_write(path, lambda f: f.write(text.encode()))


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``final`` to build it in; on success it replaces
    ``final`` (:func:`replace_dir`), on any error it is removed and ``final`` is untouched.
    """
    final = Path(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=TEMP_SUFFIX, dir=final.parent))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # tells remove_temps that this one is live
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the kernel or file system cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(tmp: Path, final: Path) -> None:
    """Move the finished folder ``tmp`` to ``final``, replacing a previous ``final`` atomically.

    The old folder ends up under ``tmp``'s temporary name and is removed. Where the file
    system cannot exchange (rare), the old folder is renamed aside first; should a crash
    fall between the two renames, :func:`remove_temps` puts the aside copy back.
    """
    tmp, final = Path(tmp), Path(final)
    if not final.exists():
        os.replace(tmp, final)
        return
    if not _exchange(tmp, final):
        aside = final.with_name(f".{final.name}{_ASIDE}")
        os.replace(final, aside)
        os.replace(tmp, final)
        tmp = aside
    shutil.rmtree(tmp)


def _busy(entry: Path) -> bool:
    """Whether a live write holds ``entry`` (its writer keeps an flock on it)."""
    try:
        fd = os.open(entry, os.O_RDONLY)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def remove_temps(folder: Path, names: tuple[str, ...] | None = None) -> list[Path]:
    """Remove the temporaries that killed writes left in ``folder``; return them.

    Only ours (``.<name>.*.tmp``; ``names`` limits it to those outputs), and none that a
    live write still holds. An aside copy of a folder whose exchange was cut short
    between its two renames is put back instead.
    """
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        n = entry.name
        if not (n.startswith(".") and n.endswith(TEMP_SUFFIX)):
            continue
        if names is not None and not any(n.startswith(f".{x}.") for x in names):
            continue
        if n.endswith(_ASIDE) and not (folder / n[1 : -len(_ASIDE)]).exists():
            os.replace(entry, folder / n[1 : -len(_ASIDE)])
            continue
        if _busy(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry)
    return removed
