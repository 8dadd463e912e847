"""Read checkpoints of the published reference implementation (``desire_pytorch.py``).

Its users hold files written by ``torch.save(model.state_dict())`` of the reference's
``SnnModel``. That model keeps its layers in one ``nn.ModuleList`` built from a config
such as ``(("I", 1, 28), ("F",), ("L", 1000), ("L", 100), ("L", 10))``: an input layer
and a flatten layer, neither with parameters, then the linear layers. Each linear layer
has one ``nn.Parameter`` named ``weights`` of shape ``[out, in]`` and no bias, so the
state dict holds exactly ``layers.2.weights``, ``layers.3.weights``, ... in network order.
Everything else a reference layer keeps (membranes, spikes, traces, desires, dropout
masks) is a plain attribute, not a registered buffer, so it never appears in the file;
there are therefore no non-weight keys to skip, and any other key means the file is not
what we think and is refused. Convolution layers (4-D ``weights``, found in early
versions of the reference) have no counterpart in this toolkit and are refused too.

Every problem raises :class:`desire.errors.CheckpointError` with a one-line message naming
the file and the key, so the tools print a sentence instead of a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from desire.errors import CheckpointError

__all__ = [
    "FIRST_LINEAR_INDEX",
    "INPUT_SIZE",
    "is_reference_state_dict",
    "reference_layers",
    "reference_weights",
]

#: 28 x 28 pixels: the only input the reference and this toolkit train on.
INPUT_SIZE = 784
#: Index of the first linear layer in the reference's layer list (after input and flatten).
FIRST_LINEAR_INDEX = 2

# Canonical decimal only: nn.Module never writes "layers.02.weights" or non-ASCII digits,
# and accepting them would let two keys name the same layer.
_KEY = re.compile(r"layers\.(0|[1-9][0-9]*)\.weights", re.ASCII)


def _show(text: object, limit: int = 200) -> str:
    """``text`` fit for a one-line message: ``repr`` when it holds control characters,
    shortened when long (a key can be any object a crafted file holds)."""
    s = str(text)
    s = s if s.isprintable() else repr(s)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _fail(source: str, key: object, why: str) -> CheckpointError:
    return CheckpointError(f"{_show(source, 1000)}: {_show(repr(key))} {why}")


def is_reference_state_dict(obj: object) -> bool:
    """Whether ``obj`` (as returned by ``torch.load``) looks like a reference state dict.

    True for a mapping with at least one ``layers.<i>.weights`` key. This toolkit's own
    checkpoints never have such keys, so the answer picks the reader; whether the file is
    usable is :func:`reference_weights`' job, which explains what is wrong with it.
    """
    return isinstance(obj, Mapping) and any(isinstance(k, str) and _KEY.fullmatch(k) for k in obj)


def _check_tensor(source: str, key: str, w: object) -> Tensor:
    """One weight matrix: a dense, finite, floating 2-D tensor with no empty dimension."""
    if not isinstance(w, Tensor):
        raise _fail(source, key, f"is of type {type(w).__name__}, not a tensor")
    if w.layout != torch.strided:
        raise _fail(source, key, f"is a {w.layout} tensor, expected a dense one")
    if w.dim() == 4:
        raise _fail(
            source,
            key,
            f"has shape {list(w.shape)}: a convolution layer, which this toolkit does not "
            "support (linear layers only)",
        )
    if w.dim() != 2:
        raise _fail(source, key, f"has shape {list(w.shape)}, expected a 2-D [out, in] matrix")
    if not w.is_floating_point():
        raise _fail(source, key, f"has dtype {w.dtype}, expected a floating-point type")
    if w.numel() == 0:
        raise _fail(source, key, f"has shape {list(w.shape)}: a layer without neurons")
    if not bool(torch.isfinite(w).all()):
        bad = int((~torch.isfinite(w)).sum())
        raise _fail(source, key, f"holds {bad} NaN or infinite weights")
    return w.detach()


def reference_weights(obj: object, source: str) -> list[Tensor]:
    """The weight matrices of a reference state dict, input layer first, after checking.

    ``source`` names the file in messages. Returned tensors are the loaded ones (detached,
    dtype and device unchanged), each ``[out, in]``. Raises :class:`CheckpointError` unless
    the keys are exactly ``layers.2.weights`` .. ``layers.<n+1>.weights`` (what the
    reference writes for n linear layers; a gap would be a layer we cannot represent), the
    first layer reads 784 inputs, each layer's inputs equal the previous layer's outputs,
    and the output layer has at least 2 classes. Keys are ordered by their integer index,
    so ``layers.10`` follows ``layers.9``.
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{_show(source, 1000)}: not a reference state dict (got a {type(obj).__name__})"
        )
    indexed: list[tuple[int, str]] = []
    for key in obj:
        match = _KEY.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            raise _fail(
                source,
                key,
                "is not a key of the reference's state dict (expected only layers.<i>.weights)",
            )
        indexed.append((int(match.group(1)), key))
    if not indexed:
        raise CheckpointError(
            f"{_show(source, 1000)}: no 'layers.<i>.weights' keys: "
            "an empty state dict holds no network"
        )
    indexed.sort()
    weights = [_check_tensor(source, key, obj[key]) for _, key in indexed]

    for pos, (index, key) in enumerate(indexed):
        expected = FIRST_LINEAR_INDEX + pos
        if index != expected:
            raise _fail(
                source,
                key,
                f"found where 'layers.{expected}.weights' was expected: the reference numbers "
                f"its linear layers consecutively from layers.{FIRST_LINEAR_INDEX} "
                "(after input and flatten)",
            )

    first = weights[0]
    if first.shape[1] != INPUT_SIZE:
        raise _fail(
            source,
            indexed[0][1],
            f"has shape {list(first.shape)}: the first layer must read {INPUT_SIZE} inputs "
            "(28x28 images)",
        )
    for (_, key), prev, w in zip(indexed[1:], weights, weights[1:], strict=False):
        if w.shape[1] != prev.shape[0]:
            raise _fail(
                source,
                key,
                f"has shape {list(w.shape)}: its {w.shape[1]} inputs do not match the "
                f"{prev.shape[0]} outputs of the layer before",
            )
    if weights[-1].shape[0] < 2:
        raise _fail(
            source,
            indexed[-1][1],
            f"has shape {list(weights[-1].shape)}: the output layer needs at least 2 classes",
        )
    return weights


def reference_layers(weights: Sequence[Tensor]) -> tuple[int, ...]:
    """Layer sizes ``(784, h1, ..., n_classes)`` of checked weights (``[out, in]`` each).

    The reference stores no config beside its weights, so the shapes are the only record
    of the network's topology; feed the result to ``Config``'s ``network.layers``.
    """
    if not weights:
        raise ValueError("no weight matrices")
    return (int(weights[0].shape[1]), *(int(w.shape[0]) for w in weights))
