"""Shared output of the benchmarks: JSON on stdout and, with ``--out``, the same in a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from desire.atomic import atomic_write_text
from desire.outdir import check_writable, create_dir


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
