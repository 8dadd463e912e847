"""DesireNet at batch 1 against a transcription of the reference implementation.

``ReferenceNet`` below is written from docs/reference-semantics.md, one sample
at a time, stepping every layer inside the time loop with explicit state, and
with the float operations of the authors' implementation in their order, so
that in float32 it rounds the way the reference does on a CPU. DesireNet
computes whole spike trains layer by layer with batched matrix products.

What is exact, and what these tests hold the trainer to:

- float32 (the reference's own format): the input encoding is the reference's
  operation for operation, so input spikes are identical; spikes and ternary
  desires are identical step by step for as long as no membrane (or desire sum)
  lies within float32 rounding of its threshold: the two sum in different
  orders, so membranes differ in the last bits and weights drift apart by
  rounding. A divergence is detected, must sit within ``NEAR_THRESHOLD`` of the
  threshold, and is reported as a warning.
- float64: *not* the reference sample for sample. Pixel values 17, 34, 60, 105,
  136, 153, 170, 187, 195, 210 and 225 encode to different input spike trains
  than in float32 (99.7 % of the Fashion-MNIST training images hold one), so
  float64 departs from the reference from the first sample on. It does compute
  the same semantics: against ``ReferenceNet`` in float64 everything is
  identical and weights agree to rtol 1e-12.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor

from desire.config import PRESETS, Config, Network
from model.network import DesireNet, LinearLayer, StepResult, strict_max_predictions

F64 = torch.float64
F32 = torch.float32
FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: |v - theta| (or ||S| - threshold|) within which float32 rounding may decide a spike (or a
#: desire). In lockstep, trainer and reference membranes near the threshold differed by at
#: most 5.6e-5 over 1,000 online samples of the float32 test below (summation order, plus
#: weights that drift apart by rounding); a semantic error moves membranes by whole weights.
NEAR_THRESHOLD = 1e-4
FLOAT32_SAMPLES = 1000
#: 200x the reference's learning rate, so that weights and desires change visibly in a run
LR = 2e-3


@dataclass
class ReferenceStep:
    """One online sample of the reference: ``(T, n)`` trains, and what decided each bit."""

    inputs: Tensor
    spikes: list[Tensor]
    membranes: list[Tensor]
    desire_sums: list[Tensor]
    desire: list[Tensor]


class ReferenceNet:
    """Online desire backpropagation, one sample at a time, in ``dtype``.

    Each float operation is the reference implementation's: pixels as ``uint8 -> dtype``
    divided by 255 (torchvision's ``ToTensor``); membrane decay, then ``addmv``; passed-on
    spikes stored multiplied by ``1 / (1 - p)`` and counted as their sum divided by it
    again (not an exact integer in float32); the desire sum as a column sum of
    ``W * (err * q)``; the update as a sum over steps of trace times gated sign, added
    with ``alpha=lr``. ``membranes`` (before firing) and ``desire_sums`` are kept so that
    a divergence can be traced to a value at its threshold.
    """

    def __init__(self, config: Config, weights: list[Tensor], dtype: torch.dtype) -> None:
        self.n = config.network
        self.dtype = dtype
        self.w = [w.to(dtype).clone() for w in weights]

    def train_sample(
        self, image: Tensor, label: int, lr: float, masks: list[Tensor]
    ) -> ReferenceStep:
        n, dt = self.n, self.dtype
        T, theta, beta, L = n.tsteps, n.mempot_thres, n.beta, len(self.w)
        keep = [m.bool() for m in masks] + [torch.ones(self.w[-1].shape[0], dtype=torch.bool)]
        scale = [1 / (1 - n.layer_dropout(i)) for i in range(L)] + [1.0]  # per neuron layer
        x = image.to(dt).div(255)
        v_in = torch.zeros_like(x)
        v = [torch.zeros(w.shape[0], dtype=dt) for w in self.w]
        stored = [torch.zeros(T + 1, w.shape[0], dtype=dt) for w in self.w]  # scaled, t + 1
        traces = [torch.zeros(T + 1, w.shape[1], dtype=dt) for w in self.w]  # r[0] = 0
        inputs = torch.zeros(T, len(x), dtype=dt)
        membranes = [torch.zeros(T, w.shape[0], dtype=dt) for w in self.w]
        for t in range(T):
            v_in.add_(x)
            fired = v_in.ge(theta).logical_and(keep[0])
            v_in.sub_(fired.int(), alpha=theta)
            inputs[t] = fired
            s_in = fired.to(dt).mul(scale[0])
            for j in range(L):
                if j > 0:  # one step of delay: what layer j - 1 stored in step t - 1
                    s_in = stored[j - 1][t]
                traces[j][t + 1] = traces[j][t].mul(beta).add_(s_in.clamp(max=1.0))
                v[j].mul_(beta)
                v[j].addmv_(self.w[j], s_in)
                membranes[j][t] = v[j]
                fired = v[j].ge(theta).logical_and(keep[j + 1])
                v[j].sub_(fired.int(), alpha=theta)
                stored[j][t + 1] = fired.to(dt).mul(scale[j + 1])

        R = T - n.error_margin
        e = stored[-1].sum(0).div(R)
        e[label] = 1 - e[label]
        active = [e.gt(n.desire_thres_output)]
        positive = [torch.arange(len(e)) == label]
        sums: list[Tensor] = []
        for j in range(L - 1, 0, -1):
            count = stored[j].sum(0).div(scale[j + 1])
            err = (count.div(R) - positive[0].to(dt)).abs()
            q = positive[0].mul(2).sub(1).mul_(active[0].logical_and(keep[j + 1]))
            n_in = self.w[j].shape[1]
            s = torch.sum(self.w[j].mul(err.mul(q).repeat(n_in, 1).t()), dim=0)
            sums.insert(0, s)
            active.insert(0, s.abs().ge(n.desire_thres_hidden))
            positive.insert(0, s.gt(0))

        for j in range(L):
            n_out, n_in = self.w[j].shape
            gate = active[j].logical_and(keep[j + 1]).repeat(T + 1, 1)
            cond = stored[j].logical_and(gate)
            sign = positive[j].mul(2).sub(1).repeat(T + 1, 1)
            update = traces[j].repeat(n_out, 1, 1).permute(1, 0, 2)
            update.mul_(cond.mul(sign).repeat(n_in, 1, 1).permute(1, 2, 0))
            self.w[j].add_(torch.sum(update, dim=0), alpha=lr)
        return ReferenceStep(
            inputs=inputs,
            spikes=[s[1:].bool().to(dt) for s in stored],
            membranes=membranes,
            desire_sums=sums,
            desire=[a.to(dt) * p.mul(2).sub(1) for a, p in zip(active, positive, strict=True)],
        )


@dataclass
class Divergence:
    """Where a sample first departs from the reference; how far the deciding value was
    from its threshold (a membrane from theta, a desire sum from the desire threshold)."""

    where: str
    distance: float


def first_divergence(net: Network, ref: ReferenceStep, step: StepResult) -> Divergence | None:
    """The first spike (step by step, layer by layer) or ternary desire that differs.

    Scanning steps in order and layers upwards within a step finds the first cause: all
    inputs to that neuron agreed until then, so only rounding can separate the two
    membranes, and the reference's one must then lie at the threshold. A desire can only
    differ on its own where its sum lies at the desire threshold; the output desire
    follows from spike counts alone, so a difference there has no rounding excuse.
    """
    L = len(ref.spikes)
    for t in range(net.tsteps):
        for j in range(L):
            differ = (step.record.spikes[j][t, 0] != ref.spikes[j][t]).nonzero().flatten()
            if len(differ):
                v = ref.membranes[j][t][differ]
                return Divergence(
                    f"spike of layer {j + 1}, step {t}, neurons {differ.tolist()} "
                    f"(reference membrane {v.tolist()})",
                    float((v - net.mempot_thres).abs().max()),
                )
    for j in range(L):
        ours = step.desire.active[j][0] * step.desire.sign[j][0]
        differ = (ours != ref.desire[j]).nonzero().flatten()
        if len(differ):
            if j == L - 1:
                return Divergence(f"output desire, neurons {differ.tolist()}", math.inf)
            s = ref.desire_sums[j][differ]
            return Divergence(
                f"desire of layer {j + 1}, neurons {differ.tolist()} (reference sum {s.tolist()})",
                float((s.abs() - net.desire_thres_hidden).abs().max()),
            )
    return None


def _config(layers: tuple[int, ...], **network) -> Config:
    return PRESETS["default"].replace(network={"layers": layers, **network})


@pytest.fixture(scope="module")
def fmnist() -> tuple[torch.Tensor, torch.Tensor]:
    if not FMNIST_DIR.is_dir():
        pytest.skip("Fashion-MNIST not installed in /usr/share/datasets/fashion-mnist")
    from desire.datasets import load_dataset

    x, y = load_dataset("fashion-mnist", "train", data_dir=FMNIST_DIR, limit=FLOAT32_SAMPLES)
    return torch.from_numpy(x), torch.from_numpy(y)


def _online_pair(dtype: torch.dtype) -> tuple[DesireNet, ReferenceNet]:
    """Trainer and reference with the same initial weights, dropout on."""
    cfg = _config((784, 48, 24, 10), dropout=(0.1, 0.3))
    net = DesireNet.from_config(cfg, dtype=dtype, seed=3)
    return net, ReferenceNet(cfg, net.weights, dtype)


def _train_both(
    net: DesireNet, ref: ReferenceNet, image: Tensor, label: Tensor
) -> tuple[ReferenceStep, StepResult]:
    """One online sample on both, with the same dropout masks."""
    masks = net.draw_masks(1)
    ours = net.train_step(image[None], label[None], LR, masks=masks)
    return ref.train_sample(image, int(label), LR, [m[0] for m in masks]), ours


def test_matches_reference_online_training(fmnist) -> None:
    """float64: the trainer computes the reference's semantics; nothing may differ."""
    images, labels = fmnist
    net, ref = _online_pair(F64)
    w0 = [w.clone() for w in net.weights]
    desire_seen = {"active_hidden": 0.0, "plus": 0.0, "minus": 0.0}
    for i in range(40):
        r, step = _train_both(net, ref, images[i], labels[i])
        assert torch.equal(step.record.inputs[:, 0], r.inputs), f"sample {i} input spikes"
        divergence = first_divergence(net.network, r, step)
        assert divergence is None, f"sample {i}: {divergence}"
        for w, w_ref in zip(net.weights, ref.w, strict=True):
            torch.testing.assert_close(w, w_ref, rtol=1e-12, atol=1e-15)
        desire_seen["active_hidden"] += float(r.desire[0].abs().sum() + r.desire[1].abs().sum())
        desire_seen["plus"] += float((r.desire[-1] > 0).sum())
        desire_seen["minus"] += float((r.desire[-1] < 0).sum())
    # The comparison is only meaningful if learning actually happened.
    assert all(v > 0 for v in desire_seen.values()), desire_seen
    for w, w_init in zip(net.weights, w0, strict=True):
        assert (w - w_init).abs().max() > 1e-3


def test_float32_matches_reference_step_for_step(fmnist) -> None:
    """float32, the reference's format: identical until rounding decides at a threshold.

    Runs ``FLOAT32_SAMPLES`` online samples in lockstep. Input spikes must always be
    identical. A sample whose spikes or desires differ must have departed at a value
    within ``NEAR_THRESHOLD`` of its threshold; it is reported, and the reference then
    continues from the trainer's weights so that every later sample is still compared.
    """
    images, labels = fmnist
    net, ref = _online_pair(F32)
    diverged: list[str] = []
    for i in range(len(labels)):
        r, step = _train_both(net, ref, images[i], labels[i])
        assert torch.equal(step.record.inputs[:, 0], r.inputs), f"sample {i} input spikes"
        divergence = first_divergence(net.network, r, step)
        if divergence is None:
            for w, w_ref in zip(net.weights, ref.w, strict=True):
                torch.testing.assert_close(w, w_ref, rtol=1e-5, atol=1e-5)
            continue
        assert divergence.distance <= NEAR_THRESHOLD, f"sample {i}: {divergence}"
        diverged.append(f"sample {i}: {divergence.where}, {divergence.distance:.2g} from it")
        ref.w = [w.clone() for w in net.weights]
    if diverged:
        warnings.warn(
            f"float32 trainer vs reference, {len(labels)} online samples: {len(diverged)} "
            "departed by rounding at a threshold: " + "; ".join(diverged),
            stacklevel=1,
        )


def _net_with_weights(cfg: Config, weights: list[Tensor]) -> DesireNet:
    return DesireNet(cfg, [LinearLayer(w.to(F64)) for w in weights], dtype=F64)


def test_one_step_delay_between_linear_layers() -> None:
    # Huge positive weights: every neuron fires as soon as any input arrives.
    cfg = _config((4, 3, 3, 2))
    net = _net_with_weights(
        cfg, [torch.full((3, 4), 5.0), torch.full((3, 3), 5.0), torch.full((2, 3), 5.0)]
    )
    rec = net.forward(torch.full((1, 4), 255, dtype=torch.uint8))
    first_spike = [int(s[:, 0].sum(-1).nonzero()[0]) for s in rec.spikes]
    assert first_spike == [0, 1, 2]
    assert rec.spikes[-1][:2].sum() == 0


def test_strict_max_ties_are_wrong() -> None:
    counts = torch.tensor([[3.0, 3.0, 1.0], [0.0, 5.0, 4.0], [0.0, 0.0, 0.0]])
    assert strict_max_predictions(counts).tolist() == [-1, 1, -1]
    cfg = _config((2, 2), error_margin=0)
    # Identical weights: both outputs always spike equally, so label 0 is never right.
    net = _net_with_weights(cfg, [torch.ones(2, 2)])
    res = net.evaluate(torch.tensor([[255, 255]], dtype=torch.uint8), torch.tensor([0]))
    assert res.counts[-1][0, 0] == res.counts[-1][0, 1] > 0
    assert not bool(res.correct[0])


def test_dropped_neuron_never_spikes_but_decays() -> None:
    cfg = _config((1, 2, 2), dropout=(0.0, 0.5), tsteps=6)
    net = _net_with_weights(cfg, [torch.tensor([[0.6], [0.6]]), torch.eye(2)])
    masks = [torch.ones(1, 1, dtype=F64), torch.tensor([[1.0, 0.0]], dtype=F64)]
    rec = net.forward(torch.tensor([[255]], dtype=torch.uint8), masks)
    hidden = rec.spikes[0][:, 0]
    assert hidden[:, 1].sum() == 0 and hidden[:, 0].sum() > 0
    # The dropped neuron's membrane follows v = 0.75 v + 0.6 without reset: it
    # saturates below 2.4; had it been reset by subtraction it would stay below 1.
    v = torch.zeros(2, dtype=F64)
    for t in range(cfg.network.tsteps):
        v = cfg.network.beta * v + 0.6
        s = (v >= 1.0).to(F64) * torch.tensor([1.0, 0.0], dtype=F64)
        v = v - s
        assert torch.equal(hidden[t], s)
    assert v[1] > 1.5


def test_trace_clamps_dropout_scaling() -> None:
    p_in = 0.5
    cfg = _config((1, 1, 2), dropout=(p_in, 0.0), tsteps=4, error_margin=0)
    net = _net_with_weights(cfg, [torch.tensor([[0.3]]), torch.ones(2, 1)])
    masks = net.draw_masks(1)
    masks[0].fill_(1.0)
    rec = net.forward(torch.tensor([[255]], dtype=torch.uint8), masks, record_traces=True)
    beta = cfg.network.beta
    expected, r = [], 0.0
    for _ in range(4):
        r = beta * r + 1.0  # the input spikes every step; its passed value 2.0 is clamped
        expected.append(r)
    assert rec.traces[0][:, 0, 0].tolist() == pytest.approx(expected, rel=1e-12)
    # The membrane does see the scaled value: 0.3 * 2 = 0.6 per step.
    assert rec.spikes[0][:, 0, 0].tolist() == [0.0, 1.0, 0.0, 1.0]
