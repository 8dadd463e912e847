"""The rounding and range rules docs/fixed-point.md states for the integer constants.

Every ``round`` in the constants goes to the even integer on a tie (Python's ``round`` on an
exact rational, numpy's ``rint`` on an exact float product), and the thresholds, ``drop_p``
and ``lr_int`` are computed from the decimals the user wrote, not from float64 products.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from desire.config import PRESETS, lr_register
from golden.fixed import constants, quantize_weights
from golden.network import GoldenNet

CFG = PRESETS["default"]


def test_thresholds_round_ties_to_even() -> None:
    # 2.5 / 2^12 and 3.5 / 2^12 are exact decimals: thr_eval = round(2.5), round(3.5)
    assert constants(CFG.replace(network={"mempot_thres": 0.0006103515625})).thr_eval == 2
    assert constants(CFG.replace(network={"mempot_thres": 0.0008544921875})).thr_eval == 4


def test_training_threshold_is_exact_not_float64() -> None:
    """theta = 45 / 2^12 and p = 0.3 give theta * (1 - p) * 2^12 = 31.5 exactly: 32 (even).

    In float64 0.7 is a little below 7/10, the product a little below 31.5, and round()
    would give 31: the spec's value is the exact one.
    """
    theta = 0.010986328125
    cfg = CFG.replace(network={"mempot_thres": theta, "dropout": (0.3, 0.3)})
    assert Fraction(str(theta)) * Fraction(7, 10) * 4096 == Fraction(63, 2)
    assert constants(cfg).thr_train == (32, 32)
    assert round(theta * (1 - 0.3) * 4096) == 31  # what float64 arithmetic would have given


@pytest.mark.parametrize(("p", "drop_p"), [(3 * 2**-17, 2), (5 * 2**-17, 2), (7 * 2**-17, 4)])
def test_drop_p_rounds_ties_to_even(p: float, drop_p: int) -> None:
    assert constants(CFG.replace(network={"dropout": (p, 0.4)})).drop_p[0] == drop_p


def test_weights_round_ties_to_even() -> None:
    c = constants(CFG)
    w = np.full((64, 784), 0.0)
    w[0, :5] = np.array([2.5, 3.5, -2.5, -0.5, 0.5]) / 4096
    q = quantize_weights([w, np.zeros((10, 64))], c)[0]
    assert q[0, :5].tolist() == [2, 4, -2, 0, 0]


def test_lr_int_rounds_ties_to_even_and_fits_every_epoch() -> None:
    assert lr_register(1.25, 0.0, 0, 1) == 2
    assert lr_register(1.75, 0.0, 0, 1) == 4
    c = constants(CFG)
    assert c.lr_int(0) == 21475  # docs/fixed-point.md, section 6
    # the largest lr the config accepts: every epoch's register fits, and decays
    top = constants(CFG.replace(network={"lr": 1.9999999}))
    values = [top.lr_int(e) for e in range(100)]
    assert values[0] < 2**32 and values == sorted(values, reverse=True) and min(values) >= 0


@pytest.mark.parametrize("lr_int", [-1, 2**32, 2**40, True, 1.5, "7"])
def test_train_step_refuses_a_register_value_out_of_range(lr_int: object) -> None:
    net = GoldenNet.init_random(CFG.replace(network={"layers": (16, 4, 2)}), 0)
    image = np.zeros(16, dtype=np.uint8)
    with pytest.raises(ValueError, match=r"lr_int must be an integer in \[0, 2\^32\)"):
        net.train_step(image, 0, lr_int)  # type: ignore[arg-type]


@pytest.mark.parametrize("lr_int", [0, 2**32 - 1, np.uint32(5)])
def test_train_step_accepts_the_whole_register_range(lr_int: int) -> None:
    net = GoldenNet.init_random(CFG.replace(network={"layers": (16, 4, 2)}), 0)
    net.train_step(np.full(16, 255, dtype=np.uint8), 1, lr_int)
