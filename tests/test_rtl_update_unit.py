"""rtl.update_unit.UpdateUnit and rtl.prng.XorShift32 in the Amaranth simulator against golden."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator, SimulatorContext

from desire.config import Config, load_config
from golden.fixed import constants, signed_range
from golden.prng import XorShift32 as GoldenXorShift
from golden.update_unit import update_from_trains
from rtl.prng import XorShift32
from rtl.update_unit import UpdateUnit

BASE = load_config().replace(network={"layers": (9, 10, 3), "tsteps": 12}, hardware={"lanes": 4})


def _simulate(
    dut: UpdateUnit,
    w: np.ndarray,
    pre: np.ndarray,
    post: np.ndarray,
    gate: np.ndarray,
    lr_int: int,
    words: np.ndarray,
    early: int = 0,
) -> np.ndarray:
    """Row by row, block by block, as the accelerator's sequencer drives the unit: a row
    load, ``load_cycles`` later the words back to back, the next load as early as the
    unit allows; results come ``latency`` later. ``early`` issues every word that many
    cycles sooner (a schedule the unit does not allow)."""
    p = dut.lanes
    n_out, n_in = w.shape
    blocks = -(-n_out // p)
    out = w.copy()

    def bits(train: np.ndarray) -> int:
        return sum(int(s) << t for t, s in enumerate(train))

    issued: list[tuple[int, int]] = []  # (row, block) of each word_valid, in order
    results: list[list[int]] = []

    def lane_value(arr: np.ndarray, o: int) -> int:
        return int(arr[o]) if o < n_out else 0

    row_at, words_at = dut.tightest_schedule(n_in, blocks)
    words_at = {cycle - early: word for cycle, word in words_at.items()}

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(dut.lr_int, lr_int)
        for cycle in range(max(words_at) + dut.latency + 2):
            if (i := row_at.get(cycle)) is not None:
                ctx.set(dut.row_train, bits(pre[:, i]))
                ctx.set(dut.row_rand, int(words[i]))
            ctx.set(dut.row_load, i is not None)
            word = words_at.get(cycle)
            if word is not None:
                i, b = word
                for j in range(p):
                    o = b * p + j
                    ctx.set(dut.post[j], 0 if o >= n_out else bits(post[:, o]))
                    ctx.set(dut.gate[j], lane_value(gate, o))
                    ctx.set(dut.w_old[j], int(w[o, i]) if o < n_out else 0)
                ctx.set(dut.word_first, b == 0)
                issued.append(word)
            ctx.set(dut.word_valid, word is not None)
            if ctx.get(dut.out_valid):
                assert len(results) < len(issued), "out_valid without a word"
                results.append([ctx.get(dut.w_new[j]) for j in range(p)])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert len(results) == len(issued), "every word comes back, once"
    for (i, b), lanes in zip(issued, results, strict=True):
        for j in range(min(p, n_out - b * p)):
            out[b * p + j, i] = lanes[j]
    return out


@pytest.mark.parametrize("early", [0, 1])
def test_load_cycles_is_the_least_wait(early: int) -> None:
    """The wait after a row load that the sequencer and the cycle model use is also the
    least that works: words issued one cycle sooner read traces still being computed,
    and the weights differ from golden's. One row (no neighbour to blame), every input
    and output spiking every step, so every trace step counts."""
    c = constants(BASE)
    n_in, n_out = 1, 8
    dut = UpdateUnit.for_config(BASE)
    assert dut.load_cycles > early
    pre = np.ones((c.tsteps, n_in), dtype=bool)
    post = np.ones((c.tsteps, n_out), dtype=bool)
    w = np.zeros((n_out, n_in), dtype=np.int64)
    gate = np.ones(n_out, dtype=np.int8)
    lr_int = c.lr_int(0) * 32
    words = GoldenXorShift(c.rounding_seed).draw(n_in)
    want = update_from_trains(c, w, pre, post, gate, lr_int, words)
    assert (want != w).all(), "the update must change every weight to show the timing"
    got = _simulate(dut, w, pre, post, gate, lr_int, words, early=early)
    assert np.array_equal(got, want) == (early == 0)


def _case(cfg: Config, case: str, seed: int) -> None:
    c = constants(cfg)
    rng = np.random.default_rng(seed)
    n_in, n_out, tsteps = 7, 10, c.tsteps
    lo, hi = signed_range(c.weight_bits)
    w = rng.integers(-5000, 5000, (n_out, n_in)).astype(np.int64)
    pre = rng.random((tsteps, n_in)) < 0.5
    pre[:, 0] = False  # a silent row: no update, whatever the rounding
    post = rng.random((tsteps, n_out)) < 0.5
    gate = rng.integers(-1, 2, n_out).astype(np.int8)
    lr_int = c.lr_int(0) * 32
    if case == "zero-desire":
        gate[:] = 0
    elif case == "full-desire":
        gate = np.where(rng.random(n_out) < 0.5, 1, -1).astype(np.int8)
    elif case == "max-traces":  # every input and output spikes every step
        pre[:, 1:] = True
        post[:] = True
    elif case == "saturation":  # huge learning rate, weights at the rails
        pre[:, 1:], post[:] = True, True
        w[::2] = hi - 3
        w[1::2] = lo + 3
        lr_int = 2**32 - 1
        gate = np.where(np.arange(n_out) % 2 == 0, 1, -1).astype(np.int8)
    words = GoldenXorShift(c.rounding_seed).draw(n_in)
    want = update_from_trains(c, w, pre, post, gate, lr_int, words)
    got = _simulate(UpdateUnit.for_config(cfg), w, pre, post, gate, lr_int, words)
    np.testing.assert_array_equal(got, want)
    if case == "zero-desire":
        np.testing.assert_array_equal(got, w)
    else:
        assert (got != w).any(), "the case must change weights to test anything"
    if case == "saturation":
        assert (got[::2, 1:] == hi).all() and (got[1::2, 1:] == lo).all()


@pytest.mark.parametrize(
    "case", ["random", "zero-desire", "full-desire", "max-traces", "saturation"]
)
def test_sim_update_matches_golden(case: str) -> None:
    _case(BASE, case, seed=len(case))


@pytest.mark.parametrize("lanes", [8, 16])
def test_sim_few_blocks_per_row(lanes: int) -> None:
    """Two blocks and one block per row: the next row loads during (or before) the
    row's only word, and its Weyl base must not overtake the word's."""
    _case(BASE.replace(hardware={"lanes": lanes}), "random", seed=lanes)


@pytest.mark.parametrize("rounding", ["nearest", "truncate"])
def test_sim_rounding_modes(rounding: str) -> None:
    _case(BASE.replace(formats={"rounding": rounding}), "random", seed=5)


def test_sim_trace_clamp() -> None:
    """trace_bits = 7 with 6 fraction bits: a trace spiking every step goes 64, 112, then
    148 unclamped, so it clamps at 127. (With 5 fraction bits it would approach its limit
    4.0 = 128 from below, 125 at most, and never reach the clamp.)"""
    cfg = BASE.replace(formats={"trace_bits": 7, "trace_frac": 6})
    c = constants(cfg)
    r, reached = 0, False
    for _ in range(c.tsteps):
        r = r - (r >> c.decay_shift) + c.trace_one
        reached |= r > c.trace_max
        r = min(r, c.trace_max)
    assert reached, "the config must reach the clamp, else the case tests nothing"
    _case(cfg, "max-traces", seed=6)


def test_sim_exact_half_and_small_overflow() -> None:
    """Directed edges: ``lr_int * acc`` exactly half an LSB above an integer (nearest
    rounding rounds it up; random draws hit this 1 in 2^24), and updates that overflow
    a weight rail by one (the clamp's overflow check reads the bit above the sign;
    random cases overflow by far more, or not at all)."""
    cfg = BASE.replace(formats={"rounding": "nearest"})
    c = constants(cfg)
    lo, hi = signed_range(c.weight_bits)
    pre = np.zeros((c.tsteps, 2), dtype=bool)
    pre[0, 0] = True  # row 0: one spike at step 0, trace one unit there; row 1 silent
    post = np.zeros((c.tsteps, 8), dtype=bool)
    post[0] = True  # acc = one trace unit for every neuron of row 0
    lr_int = 3 << (c.lr_shift - c.trace_frac - 1)  # lr_int * acc = 1.5 * 2^lr_shift
    w = np.array([hi - 1, lo + 1, hi - 2, 0, 100, -100, hi, lo])[:, None].repeat(2, axis=1)
    gate = np.array([1, -1, 1, 0, 1, -1, 1, -1], dtype=np.int8)
    words = GoldenXorShift(c.rounding_seed).draw(2)
    want = update_from_trains(c, w, pre, post, gate, lr_int, words)
    np.testing.assert_array_equal(want[:, 0], [hi, lo, hi, 0, 102, -102, hi, lo])
    got = _simulate(UpdateUnit.for_config(cfg), w, pre, post, gate, lr_int, words)
    np.testing.assert_array_equal(got, want)


def test_sim_xorshift_stream() -> None:
    dut = XorShift32(0x1234_5678)
    got: list[int] = []

    async def testbench(ctx: SimulatorContext) -> None:
        for k in range(40):
            draw = k % 3 != 2  # a pause must hold the state
            ctx.set(dut.draw, draw)
            if draw:
                got.append(ctx.get(dut.value))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    np.testing.assert_array_equal(got, GoldenXorShift(0x1234_5678).draw(len(got)))


def test_wrong_arguments() -> None:
    kw = {"tsteps": 4, "weight_bits": 16, "trace_bits": 8, "trace_frac": 5, "decay_shift": 2}
    with pytest.raises(ValueError, match="rounding must be one of"):
        UpdateUnit(4, lr_shift=24, rounding="up", **kw)
    with pytest.raises(ValueError, match="lr_shift must be"):
        UpdateUnit(4, lr_shift=33, rounding="nearest", **kw)
    with pytest.raises(ValueError, match="seed must be"):
        XorShift32(0)
