"""DesireNet against a plain transcription of docs/reference-semantics.md.

``ReferenceNet`` below is written straight from the spec, one sample at a
time, stepping every layer inside the time loop with explicit state, the way
the authors' implementation does. DesireNet computes whole spike trains layer
by layer with batched matrix products; the two must agree exactly.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from desire.config import PRESETS, Config
from model.network import DesireNet, LinearLayer, strict_max_predictions

F64 = torch.float64
FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


class ReferenceNet:
    """Online desire backpropagation, transcribed from the spec without tricks."""

    def __init__(self, config: Config, weights: list[torch.Tensor]) -> None:
        self.n = config.network
        self.w = [w.clone().to(F64) for w in weights]

    def train_sample(self, image: torch.Tensor, label: int, lr: float, masks: list[torch.Tensor]):
        n = self.n
        T, theta, beta, L = n.tsteps, n.mempot_thres, n.beta, len(self.w)
        x = image.to(F64) / 255.0
        p = [n.layer_dropout(i) for i in range(L)]  # neuron layers 0..L-1
        v_in = torch.zeros_like(x)
        v = [torch.zeros(w.shape[0], dtype=F64) for w in self.w]
        prev_out = [torch.zeros(w.shape[0], dtype=F64) for w in self.w]  # passed-on, step t-1
        r = [[torch.zeros(w.shape[1], dtype=F64)] for w in self.w]  # r[0] = 0
        s_out = [[torch.zeros(w.shape[0], dtype=F64)] for w in self.w]  # index t+1
        for _t in range(T):
            v_in = v_in + x
            s0 = (v_in >= theta).to(F64) * masks[0]
            v_in = v_in - theta * s0
            new_out = []
            for j in range(L):
                s_in = s0 / (1 - p[0]) if j == 0 else prev_out[j - 1]
                r[j].append(beta * r[j][-1] + torch.clamp(s_in, max=1.0))
                v[j] = beta * v[j]
                v[j] = v[j] + self.w[j] @ s_in
                mask = masks[j + 1] if j + 1 < L else torch.ones_like(v[j])
                s = (v[j] >= theta).to(F64) * mask
                v[j] = v[j] - theta * s
                s_out[j].append(s)
                new_out.append(s / (1 - p[j + 1]) if j + 1 < L else s)
            prev_out = new_out
        counts = [torch.stack(s[1:]).sum(0) for s in s_out]

        R = n.tsteps - n.error_margin
        c = counts[-1]
        e = c / R
        e[label] = 1 - c[label] / R
        a = [None] * L
        g = [None] * L
        a[-1] = (e > n.desire_thres_output).to(F64)
        g[-1] = -torch.ones_like(c)
        g[-1][label] = 1.0
        for j in range(L - 1, 0, -1):
            err = torch.abs((g[j] + 1) / 2 - counts[j] / R)
            mask_h = masks[j + 1] if j + 1 < L else torch.ones_like(err)
            q = g[j] * a[j] * mask_h
            S = torch.zeros(self.w[j].shape[1], dtype=F64)
            for h in range(self.w[j].shape[0]):
                S = S + self.w[j][h] * err[h] * q[h]
            a[j - 1] = (S.abs() >= n.desire_thres_hidden).to(F64)
            g[j - 1] = torch.where(S > 0, 1.0, -1.0).to(F64)

        for j in range(L):
            mask_o = masks[j + 1] if j + 1 < L else torch.ones_like(a[j])
            dw = torch.zeros_like(self.w[j])
            for t in range(1, T + 1):
                post = s_out[j][t] * a[j] * mask_o * g[j]
                dw = dw + torch.outer(post, r[j][t])
            self.w[j] = self.w[j] + lr * dw
        return counts, a, g


def _config(layers: tuple[int, ...], **network) -> Config:
    return PRESETS["default"].replace(network={"layers": layers, **network})


@pytest.fixture(scope="module")
def fmnist() -> tuple[torch.Tensor, torch.Tensor]:
    if not FMNIST_DIR.is_dir():
        pytest.skip("Fashion-MNIST not installed in /usr/share/datasets/fashion-mnist")
    from desire.datasets import load_dataset

    x, y = load_dataset("fashion-mnist", "train", data_dir=FMNIST_DIR, limit=40)
    return torch.from_numpy(x), torch.from_numpy(y)


def test_matches_reference_online_training(fmnist) -> None:
    images, labels = fmnist
    cfg = _config((784, 48, 24, 10), dropout=(0.1, 0.3))
    lr = 2e-3
    net = DesireNet.from_config(cfg, dtype=F64, seed=3)
    ref = ReferenceNet(cfg, net.weights)
    w0 = [w.clone() for w in net.weights]
    desire_seen = {"active_hidden": 0.0, "plus": 0.0, "minus": 0.0}
    for i in range(len(labels)):
        masks = net.draw_masks(1)
        counts, a, g = ref.train_sample(images[i], int(labels[i]), lr, [m[0] for m in masks])
        step = net.train_step(images[i : i + 1], labels[i : i + 1], lr, masks=masks)
        for j, c in enumerate(step.record.counts):
            assert torch.equal(c[0], counts[j]), f"sample {i} layer {j} spike counts"
            assert torch.equal(step.desire.active[j][0], a[j]), f"sample {i} layer {j} desire"
            active = a[j].bool()
            assert torch.equal(step.desire.sign[j][0][active], g[j][active])
        for w, w_ref in zip(net.weights, ref.w, strict=True):
            torch.testing.assert_close(w, w_ref, rtol=1e-12, atol=1e-15)
        desire_seen["active_hidden"] += float(a[0].sum() + a[1].sum())
        desire_seen["plus"] += float((a[-1] * (g[-1] > 0)).sum())
        desire_seen["minus"] += float((a[-1] * (g[-1] < 0)).sum())
    # The comparison is only meaningful if learning actually happened.
    assert all(v > 0 for v in desire_seen.values()), desire_seen
    for w, w_init in zip(net.weights, w0, strict=True):
        assert (w - w_init).abs().max() > 1e-3


def _net_with_weights(cfg: Config, weights: list[torch.Tensor]) -> DesireNet:
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
