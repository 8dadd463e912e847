"""The one exception type every user mistake is reported through.

Each tool's ``main`` catches :class:`UserError` and prints its message as one line
with exit status 2 (see :func:`desire.cli.run_main`), so a subclass raised anywhere in
the toolkit reaches the user as a sentence, never as a traceback.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "OutputError", "UserError"]


class UserError(Exception):
    """Something the user gave (a flag, a file, a folder) cannot be used; the message says why."""


class OutputError(UserError):
    """An output path cannot be written safely: it holds someone else's files, is locked by
    another run, is not writable, or the disk is full."""


class CheckpointError(UserError, ValueError):
    """A checkpoint file is missing, unreadable or does not fit the network."""
