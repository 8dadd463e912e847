"""DesireNet's batch-1 CPU path against the batched formulation it stands in for.

Batch 1 of uint8 pixels on the CPU takes a single-sample path (input tables, numpy LIF
loop and desire, updates of the changing rows only). It must compute exactly what the
batched formulation computes for that sample, so these tests run both online in
lockstep and compare every recorded value bit for bit, and show that the comparison
sees a change of rounding alone (one summation in another order).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from desire.config import PRESETS, Config
from model.network import DesireNet, Layer, LinearLayer, RowDelta, StepResult

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: 100x the reference's learning rate, so that weights and desires change within the run
LR = 1e-3


def _config(layers: tuple[int, ...] = (784, 96, 48, 10), **network) -> Config:
    return PRESETS["default"].replace(network={"layers": layers, "dropout": (0.1, 0.3), **network})


def _pair(cfg: Config, dtype: torch.dtype, seed: int = 3) -> tuple[DesireNet, DesireNet]:
    """The same network twice: single-sample path, and forced batched formulation."""
    fast = DesireNet.from_config(cfg, dtype=dtype, seed=seed)
    slow = DesireNet.from_config(cfg, dtype=dtype, seed=seed)
    slow.single_sample_path = False
    return fast, slow


@pytest.fixture(scope="module")
def fmnist() -> tuple[Tensor, Tensor]:
    if not FMNIST_DIR.is_dir():
        pytest.skip("Fashion-MNIST not installed in /usr/share/datasets/fashion-mnist")
    from desire.datasets import load_dataset

    x, y = load_dataset("fashion-mnist", "train", data_dir=FMNIST_DIR, limit=600)
    return torch.from_numpy(x), torch.from_numpy(y)


def _named(step: StepResult, weights: list[Tensor]) -> list[tuple[str, Tensor]]:
    """Everything a training step records or changes, by name."""
    rec, des = step.record, step.desire
    named = [("input spikes", rec.inputs), ("correct", step.correct), ("loss", step.local_loss)]
    for name, values in [
        ("spikes", rec.spikes),
        ("traces", rec.traces),
        ("desire active", des.active),
        ("desire sign", des.sign),
        ("desire error", des.error),
        ("delta", step.deltas),
        ("weight", weights),
    ]:
        named += [(f"{name} {layer}", v) for layer, v in enumerate(values)]
    return named


def _bits(x: Tensor) -> Tensor:
    """Bit patterns of a float tensor, so that a signed zero or a NaN counts as a difference."""
    if not x.is_floating_point():
        return x
    return x.view(torch.int64 if x.dtype == torch.float64 else torch.int32)


def _first_difference(a: StepResult, b: StepResult, wa: list[Tensor], wb: list[Tensor]) -> str:
    """Name of the first recorded value that differs in any bit ('' if none)."""
    for (name, x), (_, y) in zip(_named(a, wa), _named(b, wb), strict=True):
        if x.shape != y.shape or x.dtype != y.dtype or not torch.equal(_bits(x), _bits(y)):
            return name
    return ""


def _lockstep(
    fast: DesireNet, slow: DesireNet, images: Tensor, labels: Tensor, lr: float = LR
) -> str:
    """Train both online on the same samples and masks; first difference or ''."""
    for i in range(len(labels)):
        masks = fast.draw_masks(1)
        a = fast.train_step(images[i : i + 1], labels[i : i + 1], lr, masks=masks)
        b = slow.train_step(images[i : i + 1], labels[i : i + 1], lr, masks=masks)
        if difference := _first_difference(a, b, fast.weights, slow.weights):
            return f"sample {i}: {difference}"
    return ""


@pytest.mark.parametrize(("dtype", "samples"), [(torch.float32, 600), (torch.float64, 100)])
def test_single_sample_path_equals_batched_formulation(fmnist, dtype, samples) -> None:
    images, labels = fmnist
    fast, slow = _pair(_config(), dtype)
    w0 = [w.clone() for w in fast.weights]
    assert _lockstep(fast, slow, images[:samples], labels[:samples]) == ""
    assert all((w - w_init).abs().max() > 0 for w, w_init in zip(fast.weights, w0, strict=True))


def test_one_hidden_layer_and_evaluation(fmnist) -> None:
    images, labels = fmnist
    fast, slow = _pair(_config((784, 32, 10)), torch.float32)
    assert _lockstep(fast, slow, images[:100], labels[:100]) == ""
    for i in range(100, 120):
        a = fast.evaluate(images[i : i + 1], labels[i : i + 1])
        b = slow.evaluate(images[i : i + 1], labels[i : i + 1])
        ours = [a.predictions, a.correct, a.local_loss, *a.counts]
        theirs = [b.predictions, b.correct, b.local_loss, *b.counts]
        for x, y in zip(ours, theirs, strict=True):
            assert torch.equal(x, y)


def test_comparison_sees_a_change_of_rounding(fmnist, monkeypatch) -> None:
    """Summing each update row over the steps backwards is the same sum in exact
    arithmetic; the lockstep comparison must still tell it apart."""

    def backwards(self, gated_rows, traces, out=None):
        return torch.mm(gated_rows.flip(0).T, traces.flip(0), out=out)

    images, labels = fmnist
    monkeypatch.setattr(LinearLayer, "row_weight_delta", backwards)
    fast, slow = _pair(_config(), torch.float32)
    difference = _lockstep(fast, slow, images[:50], labels[:50])
    assert "delta" in difference or "weight" in difference, difference


def test_every_pixel_value_everywhere() -> None:
    """Input tables: each of the 256 values at many positions, with and without dropout."""
    cfg = _config((784, 40, 10), dropout=(0.3, 0.3))
    fast, slow = _pair(cfg, torch.float32)
    pixels = torch.arange(784 * 5) % 256
    for shift in range(0, 784 * 4, 97):
        image = pixels[shift : shift + 784].to(torch.uint8)[None]
        masks = fast.draw_masks(1)
        for m in (masks, None):
            a = fast.forward(image, m, record_traces=True)
            b = slow.forward(image, m, record_traces=True)
            ours = [a.inputs, *a.spikes, *a.traces]
            for x, y in zip(ours, [b.inputs, *b.spikes, *b.traces], strict=True):
                assert torch.equal(x, y)


def test_no_row_changes() -> None:
    """Every hidden neuron dropped: nothing spikes above the input, no row changes."""
    fast, slow = _pair(_config(), torch.float32)
    image = torch.full((1, 784), 200, dtype=torch.uint8)
    masks = [torch.ones(1, 784), torch.zeros(1, 96), torch.zeros(1, 48)]
    a = fast.train_step(image, torch.tensor([3]), LR, masks=masks)
    b = slow.train_step(image, torch.tensor([3]), LR, masks=masks)
    assert all(isinstance(u, RowDelta) and len(u.rows) == 0 for u in a.updates)
    assert _first_difference(a, b, fast.weights, slow.weights) == ""


def test_blas_sums_update_rows_in_the_same_order() -> None:
    """What the row-sparse update relies on: rows of the product alone are the rows of
    the full product, bit for bit (checked here for the BLAS torch was built with)."""
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        spikes = (torch.rand(20, 300, generator=g) < 0.3).float()
        gated = spikes * torch.where(torch.rand(300, generator=g) < 0.5, 1.0, -1.0)
        traces = torch.rand(20, 784, generator=g) * 3
        full = LinearLayer(torch.zeros(300, 784)).weight_delta(gated[:, None], traces[:, None])
        for k in (1, 2, 3, 17, 150, 300):
            rows = torch.randperm(300, generator=g)[:k].sort().values
            part = LinearLayer(torch.zeros(300, 784)).row_weight_delta(
                gated.index_select(1, rows), traces
            )
            assert torch.equal(part, full[rows])


def test_blas_sums_kept_neurons_currents_in_the_same_order() -> None:
    """What skipping dropped-out neurons relies on: the product with some weight rows
    gives bit for bit those columns of the full product (784-1000 with 60 % kept)."""
    g = torch.Generator().manual_seed(1)
    layer = LinearLayer(torch.randn(1000, 784, generator=g) * 0.05)
    for _ in range(10):
        spikes = (torch.rand(20, 784, generator=g) < 0.3).float() / 0.95
        kept = (torch.rand(1000, generator=g) >= 0.4).nonzero().flatten()
        full = layer.integrate(spikes)
        assert torch.equal(layer.integrate_outputs(spikes, kept), full[:, kept])


class _PlainLayer(LinearLayer):
    """A linear layer that offers no shortcuts: the Layer defaults of the batch-1 path."""

    def integrate_outputs(self, spikes: Tensor, outputs: Tensor) -> Tensor:
        return Layer.integrate_outputs(self, spikes, outputs)

    def row_weight_delta(self, gated_rows, traces, out=None):
        return None


def test_layer_without_shortcuts(fmnist) -> None:
    """The fallbacks (all currents, dense update) give the same bits as well."""
    images, labels = fmnist
    cfg = _config((784, 40, 20, 10))
    fast, slow = _pair(cfg, torch.float32)
    fast.layers = [_PlainLayer(layer.weight) for layer in fast.layers]
    assert _lockstep(fast, slow, images[:40], labels[:40]) == ""
