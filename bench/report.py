"""Shared output of the benchmarks: JSON on stdout and, with ``--out``, the same in a file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from desire.atomic import atomic_write_text
from desire.errors import OutputError
from desire.outdir import check_writable, create_dir


def out_file(value: str) -> str:
    """``type`` of a benchmark's ``--out``: a path that is a folder, or whose folder cannot
    be made or written, is refused when the arguments are parsed (one line, exit status 2),
    not when the result is written at the end of a long run."""
    path = Path(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a folder; give the JSON file's path")
    try:
        check_writable(path.parent, "folder")
    except OutputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def emit(result: dict[str, Any], out: str | None) -> None:
    """Print ``result`` as JSON; also write it to ``out`` (folders created) when given.

    The file is replaced atomically: a benchmark killed while writing leaves the
    previous result, not half of a JSON document.
    """
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        check_writable(Path(out).parent)
        create_dir(Path(out).parent)
        atomic_write_text(Path(out), text + "\n")
