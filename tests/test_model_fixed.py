"""``--arith fixed``: torch integer arithmetic bit-identical to golden/."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from desire import load_config
from desire.datasets import load_dataset
from golden import GoldenNet
from model.fixed import FixedNet

CFG = load_config().replace(network={"layers": (784, 40, 24, 10)})


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    try:
        return load_dataset("fashion-mnist", "train", limit=40)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"Fashion-MNIST not available: {exc}")


@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_online_training_bit_identical_to_golden(data, rounding: str) -> None:
    cfg = CFG.replace(formats={"rounding": rounding})
    x, y = data
    golden = GoldenNet.init_random(cfg, 7)
    fixed = FixedNet(cfg, golden.weights)
    lr = golden.c.lr_int(0) * 32  # large, so that weights change every step
    changed = 0
    for i in range(len(y)):
        before = golden.weights[0].copy()
        g = golden.train_step(x[i], int(y[i]), lr)
        f = fixed.train_step(x[i], int(y[i]), lr)
        changed += int((golden.weights[0] != before).any())
        for l in range(3):
            assert np.array_equal(g.forward.counts[l][0], f.counts[l])
        for l in range(3):
            assert np.array_equal(g.active[l], f.active[l])
            assert np.array_equal(
                np.where(g.active[l], g.sign[l], 0), np.where(f.active[l], f.sign[l], 0)
            )
        for wg, wf in zip(golden.weights, fixed.weights, strict=True):
            assert np.array_equal(wg, wf.numpy())
    assert changed > len(y) // 2
    assert any(k is not None and not k.all() for k in g.keep)  # dropout was on


def test_batched_inference_identical(data) -> None:
    x, _ = data
    golden = GoldenNet.init_random(CFG, 3)
    fixed = FixedNet(CFG, golden.weights)
    assert np.array_equal(fixed.infer(torch.as_tensor(x), batch_size=16), golden.infer(x))
