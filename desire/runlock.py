"""An OS lock on a run folder, so that two runs never write the same folder at once.

The lock is ``flock`` on ``<folder>/.lock``: the kernel drops it when its holder exits in
any way, ``kill -9`` included, so a crashed run never leaves the folder locked. The file
holds the holder's PID, which a refused second run names.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from types import TracebackType

from desire.errors import OutputError

__all__ = ["LOCK_NAME", "RunLock"]

LOCK_NAME = ".lock"


class RunLock:
    """Context manager: ``with RunLock(folder): ...`` holds ``folder``'s lock or refuses.

    Raises :class:`~desire.errors.OutputError` naming the holder's PID when another
    process has the folder; with ``wait``, says so on stderr and waits for it instead
    (a shared build folder, where the second run can use what the first one makes).
    """

    def __init__(self, folder: Path, *, wait: bool = False) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._wait = wait
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # "unknown": the holder has the lock but has not written its PID yet
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            if self._wait:
                print(f"{self.folder}: waiting for PID {holder}", file=sys.stderr, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                os.close(fd)
                raise OutputError(
                    f"{self.folder} is in use by another run (PID {holder}); wait for it to "
                    "end or choose another --out"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
