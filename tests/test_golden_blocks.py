"""golden/ blocks: hand-computed cases and property tests against the spec's formulas.

Property tests compare each vectorised block with a plain scalar transcription
of docs/fixed-point.md (Python ints, Fractions for the real-valued rules), so a
mistake in numpy broadcasting, shifts or rounding shows up as a counterexample.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desire import load_config
from golden.desire_unit import hidden_desire, local_error, output_desire, ternary
from golden.encoder import Encoder, check_pixels
from golden.fixed import constants, quantize_weights, sat
from golden.neuron_core import lif_step, synaptic_drive, trace_step
from golden.prng import XorShift32, dropout_mask, weyl_rounding
from golden.update_unit import rounding_offsets, stdp_accumulate, weight_update

CFG = load_config()
C = constants(CFG)
V_LO, V_HI = -(2 ** (C.membrane_bits - 1)), 2 ** (C.membrane_bits - 1) - 1
W_LO, W_HI = C.weight_range


# ------------------------------------------------------------------ constants
def test_default_constants_by_hand() -> None:
    assert C.thr_eval == 4096  # 1.0 * 2^12
    assert C.thr_train == (3891, 2458)  # round(4096 * 0.95), round(4096 * 0.6)
    assert C.target_count == 16
    assert C.out_label_below == 12  # ceil(0.7 * 16 = 11.2)
    assert C.out_other_above == 4  # floor(0.3 * 16 = 4.8)
    assert C.hid_thr == 3277  # ceil(0.05 * 16 * 4096 = 3276.8)
    assert C.drop_p == (3277, 26214, 0)  # round(0.05 * 2^16), round(0.4 * 2^16), none
    assert C.lr_int(0) == 21475  # round(1e-5 * 2^31)
    assert C.lr_int(10) == round(1e-5 * np.exp(-0.4) * 2**31)


# -------------------------------------------------------------------- encoder
def test_encoder_hand_cases() -> None:
    enc = Encoder(np.array([[0, 51, 255, 128]], dtype=np.uint8))
    spikes = np.stack([enc.step()[0] for _ in range(10)])
    assert not spikes[:, 0].any()
    assert list(np.flatnonzero(spikes[:, 1])) == [4, 9]  # 51 * 5 = 255
    assert spikes[:, 2].all()
    assert list(np.flatnonzero(spikes[:, 3])) == [1, 3, 5, 7, 9]  # 128 + 128 >= 255


def test_encoder_dropped_pixels_never_fire() -> None:
    enc = Encoder(np.full((1, 4), 255, np.uint8), keep=np.array([True, False, True, False]))
    assert all(list(enc.step()[0]) == [True, False, True, False] for _ in range(5))


@given(st.lists(st.integers(0, 255), min_size=1, max_size=20), st.integers(1, 40))
def test_encoder_counts_are_floor(pixels: list[int], steps: int) -> None:
    enc = Encoder(np.array([pixels], dtype=np.uint8))
    count = sum(enc.step()[0].astype(int) for _ in range(steps))
    assert list(count) == [steps * x // 255 for x in pixels]


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 10), np.uint8), np.full(784, 256), np.full(784, -1), np.zeros((1, 2, 784))]
)
def test_encoder_rejects_bad_images(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        check_pixels(bad, 784)


# --------------------------------------------------------------- neuron core
def test_lif_hand_cases() -> None:
    v = np.array([[0, 100, -5, 8000, V_HI, V_LO]], dtype=np.int64)
    drive = np.array([[4096, 0, 0, 0, 10**6, -(10**6)]], dtype=np.int64)
    keep = np.array([True, True, True, False, True, True])
    new, s = lif_step(v, drive, 4096, keep, C)
    # decay: 0, 100-25=75, -5-(-2)=-3, 8000-2000=6000; saturation at both ends
    assert list(s[0]) == [True, False, False, False, True, False]
    assert list(new[0]) == [0, 75, -3, 6000, V_HI - 4096, V_LO]


def scalar_lif(v: int, drive: int, thr: int, keep: bool) -> tuple[int, bool]:
    v = v - (v // 2**C.decay_shift)
    v = min(max(v + drive, V_LO), V_HI)
    s = v >= thr and keep
    return v - thr * s, s


@given(
    st.lists(
        st.tuples(
            st.integers(V_LO, V_HI),
            st.integers(-(2**24), 2**24),
            st.integers(1, 8192),
            st.booleans(),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_lif_matches_spec(cases: list[tuple[int, int, int, bool]]) -> None:
    for v, d, thr, keep in cases:
        new, s = lif_step(np.array([v]), np.array([d]), thr, np.array([keep]), C)
        assert (int(new[0]), bool(s[0])) == scalar_lif(v, d, thr, keep)


@given(st.integers(1, 5), st.integers(1, 12), st.integers(1, 6), st.data())
def test_synaptic_drive_is_sum_of_rows(batch: int, n_in: int, n_out: int, data) -> None:
    w = np.array(
        data.draw(st.lists(st.integers(W_LO, W_HI), min_size=n_in * n_out, max_size=n_in * n_out))
    ).reshape(n_in, n_out)
    s = np.array(
        data.draw(st.lists(st.booleans(), min_size=batch * n_in, max_size=batch * n_in))
    ).reshape(batch, n_in)
    expected = [
        [sum(int(w[i, o]) for i in range(n_in) if s[b, i]) for o in range(n_out)]
        for b in range(batch)
    ]
    assert synaptic_drive(s, w).tolist() == expected


def test_trace_hand_cases() -> None:
    r = np.array([0, 128, 255, 100])
    s = np.array([True, True, True, False])
    # 0+32; 128-32+32 (the steady state 4.0); 255-63+32; 100-25
    assert list(trace_step(r, s, C)) == [32, 128, 224, 75]
    narrow = constants(CFG.replace(formats={"trace_bits": 7}))
    assert trace_step(np.array([127]), np.array([True]), narrow)[0] == 127  # 128 clamps


@given(st.integers(0, C.trace_max), st.booleans())
def test_trace_matches_spec(r: int, s: bool) -> None:
    expected = min(r - r // 2**C.decay_shift + C.trace_one * s, C.trace_max)
    assert int(trace_step(np.array([r]), np.array([s]), C)[0]) == expected


# ---------------------------------------------------------------- desire unit
def test_output_desire_hand_cases() -> None:
    counts = np.array([0, 4, 5, 11, 12, 20, 0, 0, 0, 0])
    active, sign = output_desire(counts, 3, C)
    assert list(sign) == [-1, -1, -1, 1, -1, -1, -1, -1, -1, -1]
    assert list(active) == [False, False, True, True, True, True, False, False, False, False]
    active, _ = output_desire(counts, 4, C)
    assert not active[4]  # label at 12 spikes: 1 - 12/16 = 0.25 <= 0.3
    with pytest.raises(ValueError):
        output_desire(counts, 10, C)


@given(st.lists(st.integers(0, C.tsteps), min_size=10, max_size=10), st.integers(0, 9))
def test_output_desire_equals_real_rule(counts: list[int], label: int) -> None:
    r, th = Fraction(C.target_count), Fraction(str(CFG.network.desire_thres_output))
    active, _ = output_desire(np.array(counts), label, C)
    for k, cnt in enumerate(counts):
        err = 1 - Fraction(cnt) / r if k == label else Fraction(cnt) / r
        assert bool(active[k]) == (err > th)


def test_hidden_desire_hand_case() -> None:
    w = np.array([[4096, -4096], [2048, 0]])  # (n_h=2, n_g=2): 1.0, -1.0 / 0.5, 0
    err = np.array([3, 16])
    q = np.array([1, -1], dtype=np.int8)
    active, sign, s = hidden_desire(w, err, q, C)
    # S_0 = 4096*3 - 2048*16 = -20480 ; S_1 = -4096*3 = -12288
    assert list(s) == [-20480, -12288]
    assert list(active) == [True, True] and list(sign) == [-1, -1]


def test_zero_and_full_desire() -> None:
    w = np.full((3, 4), 1000)
    a, _, s = hidden_desire(w, np.array([5, 5, 5]), np.zeros(3, np.int8), C)
    assert not a.any() and not s.any()  # nothing desired above: nothing below
    a, sg, _ = hidden_desire(w, np.array([16, 16, 16]), np.ones(3, np.int8), C)
    assert a.all() and (sg == 1).all()


@given(st.integers(1, 6), st.integers(1, 6), st.data())
def test_hidden_desire_equals_real_rule(n_h: int, n_g: int, data) -> None:
    w = np.array(
        data.draw(st.lists(st.integers(W_LO, W_HI), min_size=n_h * n_g, max_size=n_h * n_g))
    )
    w = w.reshape(n_h, n_g)
    counts = np.array(data.draw(st.lists(st.integers(0, C.tsteps), min_size=n_h, max_size=n_h)))
    signs = np.array(data.draw(st.lists(st.sampled_from([-1, 1]), min_size=n_h, max_size=n_h)))
    act = np.array(data.draw(st.lists(st.booleans(), min_size=n_h, max_size=n_h)))
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=n_h, max_size=n_h)))
    q = ternary(act, signs.astype(np.int8), keep)
    active, sign, _ = hidden_desire(w, local_error(counts, signs, C), q, C)
    r, th = Fraction(C.target_count), Fraction(str(CFG.network.desire_thres_hidden))
    for g in range(n_g):
        total = sum(
            Fraction(int(w[h, g]), 2**C.weight_frac)
            * abs(Fraction(int(signs[h] > 0)) - Fraction(int(counts[h])) / r)
            * int(signs[h])
            * int(act[h])
            * int(keep[h])
            for h in range(n_h)
        )
        assert bool(active[g]) == (abs(total) >= th)
        assert int(sign[g]) == (1 if total > 0 else -1)


# ---------------------------------------------------------------- update unit
def test_stdp_accumulate_pairs_same_step() -> None:
    post = np.array([[0, 1], [1, 1], [0, 0]], dtype=bool)  # (T=3, n_out=2)
    traces = np.array([[32, 0], [56, 32], [42, 24]])  # (T=3, n_in=2)
    assert stdp_accumulate(post, traces).tolist() == [[56, 32], [88, 32]]


def test_weight_update_hand_cases_and_saturation() -> None:
    c = constants(CFG.replace(formats={"rounding": "truncate", "lr_shift": 4}))
    w = np.array([[W_HI - 1, 0], [W_LO + 1, 0], [5, 5]], dtype=np.int32)
    acc = np.array([[100, 16], [100, 17], [100, 100]])
    gate = np.array([1, -1, 0], dtype=np.int8)
    new, delta = weight_update(w, acc, gate, 8, rounding_offsets(c, None, 2, np.arange(3)), c)
    # mag = 8*acc >> 4 = acc // 2: 50 saturates at W_HI; 8; -50 saturates at W_LO; -8; gate 0
    assert new.tolist() == [[W_HI, 8], [W_LO, -8], [5, 5]]
    assert delta.tolist() == [[1, 8], [-1, -8], [0, 0]]
    n = constants(CFG.replace(formats={"rounding": "nearest", "lr_shift": 4}))
    new, _ = weight_update(w, acc, gate, 8, rounding_offsets(n, None, 2, np.arange(3)), n)
    assert new.tolist()[0][1] == 8 and new.tolist()[1][1] == -9  # 8.5 rounds half up in magnitude


@given(
    st.integers(0, C.tsteps * C.trace_max),
    st.integers(0, 2**20),
    st.integers(0, 2**C.lr_shift - 1),
    st.sampled_from([-1, 0, 1]),
    st.integers(W_LO, W_HI),
)
def test_weight_update_matches_spec(acc: int, lr: int, rnd: int, gate: int, w: int) -> None:
    new, _ = weight_update(
        np.array([[w]], np.int32),
        np.array([[acc]]),
        np.array([gate], np.int8),
        lr,
        np.array([[rnd]]),
        C,
    )
    expected = min(max(w + gate * ((lr * acc + rnd) // 2**C.lr_shift), W_LO), W_HI)
    assert int(new[0, 0]) == expected


def test_stochastic_rounding_is_unbiased() -> None:
    rng = XorShift32(C.rounding_seed)
    rnd = rounding_offsets(C, rng, 1000, np.arange(50))
    acc = np.full(rnd.shape, 7)
    lr = 3 * 2**C.lr_shift // 10  # 0.3 per unit: exact value 2.1 per synapse
    mag = (lr * acc + rnd) >> C.lr_shift
    assert set(np.unique(mag)) == {2, 3}
    assert abs(mag.mean() - lr * 7 / 2**C.lr_shift) < 0.01


# ----------------------------------------------------------------------- PRNG
def scalar_xorshift(x: int) -> int:
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    return x ^ (x << 5) & 0xFFFFFFFF


def test_xorshift_known_values() -> None:
    rng = XorShift32(1)
    assert [rng.next() for _ in range(3)] == [270369, 67634689, 2647435461]
    with pytest.raises(ValueError):
        XorShift32(0)


@given(st.integers(1, 2**32 - 1), st.integers(0, 3000))
@settings(max_examples=20)
def test_block_draw_equals_sequential(seed: int, n: int) -> None:
    a, b = XorShift32(seed), XorShift32(seed)
    assert b.draw(n).tolist() == [a.next() for _ in range(n)]
    assert a.state == b.state


@given(st.integers(1, 2**32 - 1), st.integers(0, 2**16), st.integers(1, 50))
def test_dropout_mask_matches_spec(seed: int, p_int: int, n: int) -> None:
    mask = dropout_mask(XorShift32(seed), n, p_int, 16)
    x, expected = seed, []
    for _ in range(n if p_int else 0):
        x = scalar_xorshift(x)
        expected.append((x >> 16) >= p_int)
    assert mask.tolist() == (expected if p_int else [True] * n)


def test_weyl_offsets_by_hand() -> None:
    out = weyl_rounding(np.array([0, 0xFFFFFFFF], dtype=np.uint32), np.arange(2), 4)
    assert out.tolist() == [[0, 0x9], [0xF, 0x9]]  # top 4 bits of 0x9E3779B9 and of +(-1)


def test_quantize_saturates_and_rejects() -> None:
    w = [np.array([[100.0, -100.0, 0.5 / 4096]] * 64), np.zeros((10, 64))]
    w[0] = np.tile(w[0], (1, 262))[:, :784]
    q = quantize_weights(w, C)
    assert q[0][0, 0] == W_HI and q[0][0, 1] == W_LO and q[0][0, 2] == 0  # half to even
    with pytest.raises(ValueError, match="shape"):
        quantize_weights([np.zeros((3, 3)), w[1]], C)
    w[1][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        quantize_weights(w, C)
    assert sat(np.array([10**9]), 8)[0] == 127
