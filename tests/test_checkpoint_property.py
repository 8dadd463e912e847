"""Hypothesis: the trainer's checkpoint loader and the run log reader on damaged input.

Each either loads a usable result or raises the project's own one-line error, never
another exception, and writes nothing.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from desire.config import PRESETS
from desire.errors import UserError
from desire.rundir import read_log
from model.checkpoint import CHECKPOINT_FORMAT, checkpoint_weights, load_checkpoint

CFG = PRESETS["default"].replace(network={"layers": (784, 6, 10)})
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_state() -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "weights": [torch.zeros(6, 784), torch.zeros(10, 6)],
        "config": CFG.to_dict(),
        "epoch": 0,
    }


def _bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


VALID = _bytes(_valid_state())
values = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.lists(st.integers(0, 3), max_size=3),
    st.builds(torch.zeros, st.integers(0, 3), st.integers(0, 3)),
)


def _load(data: bytes) -> None:
    """Load ``data`` as a checkpoint file and check the weights against the config."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.pt"
        path.write_bytes(data)
        try:
            state = load_checkpoint(path)
            checkpoint_weights(state, CFG, path)
        except UserError as exc:
            assert "\n" not in str(exc), str(exc)
        assert [p.name for p in Path(folder).iterdir()] == ["m.pt"]


@SETTINGS
@given(cut=st.integers(0, len(VALID) - 1), flips=st.lists(st.integers(0, len(VALID) - 1)))
def test_damaged_files(cut: int, flips: list[int]) -> None:
    data = bytearray(VALID)
    for i in flips:
        data[i] ^= 0xFF
    _load(bytes(data[: cut or None]))


@SETTINGS
@given(key=st.sampled_from(["format", "weights", "config", "epoch", "extra"]), value=values)
def test_mutated_fields(key: str, value: object) -> None:
    state = _valid_state()
    state[key] = value
    _load(_bytes(state))


@SETTINGS
@given(text=st.text(max_size=300))
def test_log_reader(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "log.jsonl"
        path.write_text(text)
        try:
            entries = read_log(path)
        except UserError as exc:
            assert "\n" not in str(exc), str(exc)
        else:
            assert all(isinstance(e, dict) and isinstance(e["epoch"], int) for e in entries)
