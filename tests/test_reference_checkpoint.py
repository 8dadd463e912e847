"""Checkpoints of the published reference implementation: reading, ordering, refusals.

Files are written the way the reference writes them (``torch.save`` of an OrderedDict of
``layers.<i>.weights`` float32 tensors) and read back the way ``load_checkpoint`` reads
(``torch.load(..., map_location="cpu", weights_only=True)``).
"""

from __future__ import annotations

import io
import itertools
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from desire.errors import CheckpointError, UserError
from model.reference_checkpoint import (
    is_reference_state_dict,
    reference_layers,
    reference_weights,
)


def _state(layers: tuple[int, ...], seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    """Reference-format state dict: linear layer k is ``layers.{k + 2}.weights``."""
    gen = torch.Generator().manual_seed(seed)
    return OrderedDict(
        (f"layers.{k + 2}.weights", torch.randn(n_out, n_in, generator=gen))
        for k, (n_in, n_out) in enumerate(itertools.pairwise(layers))
    )


def _save_load(path: Path, obj: object) -> Any:
    torch.save(obj, path)
    return torch.load(path, map_location="cpu", weights_only=True)


def _roundtrip(obj: object) -> Any:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, map_location="cpu", weights_only=True)


class _NoParams(nn.Module):
    """Stands for the reference's SnnInput / SnnFlatten: state kept as plain attributes."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.mempot = torch.zeros(n)
        self.spikes = torch.zeros(21, n)


class _Linear(nn.Module):
    """Stands for the reference's SnnLinear: one ``weights`` parameter, no bias."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.randn(n_out, n_in), requires_grad=False)
        self.traces = torch.zeros(21, n_in)
        self.dropout_mask = torch.ones(n_out, dtype=torch.bool)


class _ReferenceLike(nn.Module):
    """The reference SnnModel's module layout: ``layers`` = input, flatten, linear..."""

    def __init__(self, layers: tuple[int, ...]) -> None:
        super().__init__()
        self.layers = nn.ModuleList([_NoParams(layers[0]), _NoParams(layers[0])])
        for n_in, n_out in itertools.pairwise(layers):
            self.layers.append(_Linear(n_in, n_out))


# ---------------------------------------------------------------- reading


@pytest.mark.parametrize("layers", [(784, 10), (784, 16, 10), (784, 32, 16, 10)])
def test_layers_and_weights(tmp_path: Path, layers: tuple[int, ...]) -> None:
    state = _state(layers)
    obj = _save_load(tmp_path / "ref.pt", state)
    assert is_reference_state_dict(obj)
    weights = reference_weights(obj, "ref.pt")
    assert reference_layers(weights) == layers
    assert len(weights) == len(state)
    for w, expected in zip(weights, state.values(), strict=True):
        assert w.dtype == torch.float32
        assert torch.equal(w, expected)


def test_state_dict_of_a_module_with_the_reference_layout(tmp_path: Path) -> None:
    """The key names come from nn.Module itself, not from our own helper."""
    model = _ReferenceLike((784, 12, 10))
    state = model.state_dict()
    assert list(state) == ["layers.2.weights", "layers.3.weights"]
    weights = reference_weights(_save_load(tmp_path / "m.pt", state), "m.pt")
    assert reference_layers(weights) == (784, 12, 10)
    assert torch.equal(weights[0], model.layers[2].weights)


def test_order_is_numeric_not_lexicographic(tmp_path: Path) -> None:
    layers = (784, *range(30, 20, -1), 10)  # 11 linear layers: layers.2 .. layers.12
    state = _state(layers)
    shuffled = OrderedDict(sorted(state.items()))  # "layers.10" < "layers.2" as strings
    assert next(iter(shuffled)) == "layers.10.weights"
    weights = reference_weights(_save_load(tmp_path / "deep.pt", shuffled), "deep.pt")
    assert reference_layers(weights) == layers
    for k, w in enumerate(weights):
        assert torch.equal(w, state[f"layers.{k + 2}.weights"])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes_are_kept(tmp_path: Path, dtype: torch.dtype) -> None:
    state = OrderedDict((k, v.to(dtype)) for k, v in _state((784, 8, 4)).items())
    weights = reference_weights(_save_load(tmp_path / "f.pt", state), "f.pt")
    assert [w.dtype for w in weights] == [dtype, dtype]


def test_recognition() -> None:
    assert is_reference_state_dict(_state((784, 10)))
    assert is_reference_state_dict({"layers.2.weights": 1, "junk": 2})  # refused later, clearly
    own = {"format": 1, "weights": [torch.zeros(10, 784)], "config": {}, "epoch": 0}
    for obj in (own, {}, [], None, torch.zeros(3), {"layers.02.weights": torch.zeros(1)}):
        assert not is_reference_state_dict(obj)


def test_error_type_reaches_the_user() -> None:
    assert issubclass(CheckpointError, UserError)


# ---------------------------------------------------------------- refusals


def _with(key: str, value: object, base: tuple[int, ...] = (784, 16, 10)) -> OrderedDict:
    state: OrderedDict[str, object] = OrderedDict(_state(base))
    state[key] = value
    return state


def _nan() -> torch.Tensor:
    w = torch.randn(16, 784)
    w[3, 5] = math.nan
    return w


def _inf() -> torch.Tensor:
    w = torch.randn(10, 16)
    w[0, 0] = -math.inf
    return w


REFUSALS: dict[str, tuple[object, str | None, str]] = {
    # name: (state dict, key the message must name or None, words the message must hold)
    "not chaining": (_with("layers.3.weights", torch.randn(10, 15)), "layers.3.weights", "15"),
    "wrong input size": (_state((783, 16, 10)), "layers.2.weights", "784"),
    "NaN weights": (_with("layers.2.weights", _nan()), "layers.2.weights", "NaN"),
    "infinite weights": (_with("layers.3.weights", _inf()), "layers.3.weights", "infinite"),
    "1-D tensor": (_with("layers.3.weights", torch.randn(10)), "layers.3.weights", "2-D"),
    "integer tensor": (
        _with("layers.2.weights", torch.ones(16, 784, dtype=torch.int32)),
        "layers.2.weights",
        "int32",
    ),
    "bool tensor": (
        _with("layers.3.weights", torch.ones(10, 16, dtype=torch.bool)),
        "layers.3.weights",
        "bool",
    ),
    "complex tensor": (
        _with("layers.3.weights", torch.ones(10, 16, dtype=torch.complex64)),
        "layers.3.weights",
        "complex64",
    ),
    "unknown key": (_with("layers.3.mempot", torch.zeros(10)), "layers.3.mempot", "not a key"),
    "bias key": (_with("layers.2.bias", torch.zeros(16)), "layers.2.bias", "not a key"),
    "non-string key": (_with(7, torch.zeros(3)), "7", "not a key"),  # type: ignore[arg-type]
    "leading zero": (_with("layers.03.weights", torch.zeros(3)), "layers.03.weights", "not a key"),
    "empty dict": (OrderedDict(), "layers.<i>.weights", "empty"),
    "not a tensor": (_with("layers.3.weights", [[1.0]]), "layers.3.weights", "type list"),
    "convolution": (
        _with("layers.2.weights", torch.randn(10, 1, 5, 5)),
        "layers.2.weights",
        "convolution",
    ),
    "gap": (  # shapes chain, but the index skips layers.3: a layer we cannot represent
        OrderedDict(
            [("layers.2.weights", torch.randn(16, 784)), ("layers.4.weights", torch.randn(10, 16))]
        ),
        "layers.4.weights",
        "layers.3.weights",
    ),
    "missing first": (
        OrderedDict(
            (f"layers.{k + 3}.weights", v) for k, v in enumerate(_state((784, 8, 4)).values())
        ),
        "layers.3.weights",
        "layers.2.weights",
    ),
    "one class": (_state((784, 16, 1)), "layers.3.weights", "2 classes"),
    "empty layer": (_with("layers.3.weights", torch.zeros(0, 16)), "layers.3.weights", "neurons"),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_refusals(tmp_path: Path, name: str) -> None:
    state, key, words = REFUSALS[name]
    path = tmp_path / "bad.pt"
    obj = _save_load(path, state)
    with pytest.raises(CheckpointError) as info:
        reference_weights(obj, str(path))
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg
    if key is not None:
        assert key in msg
    if words is not None:
        assert words in msg


def test_not_a_mapping() -> None:
    with pytest.raises(CheckpointError, match=r"^x\.pt: not a reference state dict"):
        reference_weights([torch.zeros(10, 784)], "x.pt")


def test_control_characters_stay_on_one_line() -> None:
    state = _with("layers.2.weights\nboom", torch.zeros(1))
    with pytest.raises(CheckpointError) as info:
        reference_weights(state, "dir\nname.pt")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- property

_DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8, torch.bool]
_KEYS = st.one_of(
    st.builds("layers.{}.weights".format, st.integers(-2, 14)),
    st.sampled_from(["layers.2.bias", "layers.2.weight", "layers.x.weights", "state", ""]),
    st.text(max_size=12),
    st.integers(-3, 3),
)


@st.composite
def _tensor(draw: st.DrawFn) -> object:
    shape = draw(
        st.one_of(
            st.lists(st.sampled_from([0, 1, 2, 3, 10, 16, 784]), min_size=0, max_size=4),
        )
    )
    dtype = draw(st.sampled_from(_DTYPES))
    value = (
        torch.ones(shape, dtype=dtype) if dtype == torch.bool else torch.zeros(shape, dtype=dtype)
    )
    if value.numel() and value.is_floating_point() and draw(st.booleans()):
        value.view(-1)[0] = draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e4]))
    return value


_VALUES = st.one_of(_tensor(), st.none(), st.integers(), st.text(max_size=5), st.just([1.0]))


@st.composite
def _mutated(draw: st.DrawFn) -> dict[object, object]:
    hidden = draw(st.lists(st.integers(1, 4), min_size=0, max_size=3))
    layers = (784, *hidden, draw(st.integers(1, 4)))
    state: dict[object, object] = dict(_state(layers, seed=draw(st.integers(0, 3))))
    for _ in range(draw(st.integers(0, 3))):
        keys = list(state)
        op = draw(st.sampled_from(["drop", "add", "rename", "replace", "transpose", "poison"]))
        if op == "add" or not keys:
            state[draw(_KEYS)] = draw(_VALUES)
            continue
        key = draw(st.sampled_from(keys))
        if op == "drop":
            del state[key]
        elif op == "rename":
            state[draw(_KEYS)] = state.pop(key)
        elif op == "replace":
            state[key] = draw(_VALUES)
        elif isinstance(state[key], torch.Tensor) and state[key].dim() == 2:
            w = state[key]
            if op == "transpose":
                state[key] = w.t().contiguous()
            elif w.numel() and w.is_floating_point():
                w = w.clone()
                w.view(-1)[draw(st.integers(0, w.numel() - 1))] = draw(
                    st.sampled_from([math.nan, math.inf, -math.inf])
                )
                state[key] = w
    if draw(st.booleans()):
        state = dict(reversed(list(state.items())))
    return state


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutations_give_weights_or_one_line_error(state: dict[object, object]) -> None:
    obj = _roundtrip(OrderedDict(state))
    is_reference_state_dict(obj)  # never raises
    try:
        weights = reference_weights(obj, "mutated.pt")
    except CheckpointError as exc:
        msg = str(exc)
        assert msg.startswith("mutated.pt: ")
        assert "\n" not in msg
        return
    layers = reference_layers(weights)
    assert layers[0] == 784
    assert layers[-1] >= 2
    assert is_reference_state_dict(obj)
    assert set(obj) == {f"layers.{k + 2}.weights" for k in range(len(weights))}
    for k, w in enumerate(weights):
        assert w.shape == (layers[k + 1], layers[k])
        assert w.is_floating_point()
        assert bool(torch.isfinite(w).all())
