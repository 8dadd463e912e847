"""rtl.neuron_core.NeuronCore in the Amaranth simulator against golden.neuron_core.lif_step."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.sim import Simulator, SimulatorContext

from desire.config import load_config
from golden.fixed import constants, signed_range
from golden.neuron_core import lif_step, synaptic_drive
from rtl.neuron_core import NeuronCore, weight_rows

C = constants(load_config())


def _core(n_in: int, n_out: int, lanes: int, w: np.ndarray | None = None) -> NeuronCore:
    return NeuronCore(
        n_in,
        n_out,
        lanes,
        weight_bits=C.weight_bits,
        membrane_bits=C.membrane_bits,
        decay_shift=C.decay_shift,
        weights=w,
    )


def _golden(
    w: np.ndarray, spikes: np.ndarray, thr: int, keep: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-step (spikes, membranes) of golden for one sample."""
    v = np.zeros((1, w.shape[0]), dtype=np.int64)
    out = []
    for s_in in spikes:
        v, s = lif_step(v, synaptic_drive(s_in[None], np.ascontiguousarray(w.T)), thr, keep, C)
        out.append((s[0].copy(), v[0].copy()))
    return out


def _simulate(
    core: NeuronCore, spikes: np.ndarray, thr: int, keep: np.ndarray, order_seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Run one sample through the RTL: clear, then per step all events and a fire pass."""
    rng = np.random.default_rng(order_seed)
    results: list[tuple[np.ndarray, np.ndarray]] = []

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(core.threshold, thr)
        ctx.set(core.keep, int("".join("1" if k else "0" for k in keep[::-1]), 2))
        ctx.set(core.clear, 1)
        await ctx.tick()
        ctx.set(core.clear, 0)
        await ctx.tick().until(core.idle)
        for s_in in spikes:
            idx = np.flatnonzero(s_in)
            rng.shuffle(idx)  # integration is order-independent: exercise that
            for i in idx:
                ctx.set(core.events.payload, int(i))
                ctx.set(core.events.valid, 1)
                await ctx.tick().until(core.events.ready)
            ctx.set(core.events.valid, 0)
            await ctx.tick().until(core.idle)
            ctx.set(core.fire, 1)
            await ctx.tick()
            ctx.set(core.fire, 0)
            s = np.zeros(core.blocks * core.lanes, dtype=bool)
            v = np.zeros(core.blocks * core.lanes, dtype=np.int64)
            seen = 0
            while seen < core.blocks:
                if ctx.get(core.out_valid):
                    b = ctx.get(core.out_block)
                    bits = ctx.get(core.out_spikes)
                    for j in range(core.lanes):
                        s[b * core.lanes + j] = (bits >> j) & 1
                        v[b * core.lanes + j] = ctx.get(core.out_membrane[j])
                    seen += 1
                await ctx.tick()
            results.append((s[: core.n_out], v[: core.n_out]))
            await ctx.tick().until(core.idle)

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return results


def _check(core: NeuronCore, w: np.ndarray, spikes: np.ndarray, thr: int, keep: np.ndarray) -> None:
    got = _simulate(core, spikes, thr, keep, order_seed=1)
    want = _golden(w, spikes, thr, keep)
    assert len(got) == len(want)
    for t, ((gs, gv), (ws, wv)) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_array_equal(gs, ws, err_msg=f"spikes differ at step {t}")
        np.testing.assert_array_equal(gv, wv, err_msg=f"membranes differ at step {t}")


@pytest.mark.parametrize(("n_in", "n_out", "lanes"), [(12, 10, 4), (7, 3, 4), (9, 8, 8), (5, 6, 1)])
def test_sim_random_matches_golden(n_in: int, n_out: int, lanes: int) -> None:
    rng = np.random.default_rng(n_in * 100 + n_out * 10 + lanes)
    w = rng.integers(-6000, 9000, (n_out, n_in)).astype(np.int32)
    spikes = rng.random((6, n_in)) < 0.5
    keep = rng.random(n_out) < 0.8
    _check(_core(n_in, n_out, lanes, w), w, spikes, C.thr_eval, keep)


def test_sim_saturates_at_both_ends() -> None:
    lo, hi = signed_range(C.weight_bits)
    n_in = 40
    w = np.array([[hi] * n_in, [lo] * n_in, [hi // 3] * n_in])
    spikes = np.ones((4, n_in), dtype=bool)
    # a threshold above the membrane range: the top neuron stays pinned at the maximum
    thr = signed_range(C.membrane_bits)[1]
    _check(_core(n_in, 3, 2, w), w, spikes, thr, np.ones(3, dtype=bool))
    _check(_core(n_in, 3, 2, w), w, spikes, C.thr_eval, np.ones(3, dtype=bool))


def test_sim_every_neuron_dropped() -> None:
    rng = np.random.default_rng(3)
    w = rng.integers(0, 8000, (6, 5)).astype(np.int32)
    spikes = np.ones((3, 5), dtype=bool)
    _check(_core(5, 6, 4, w), w, spikes, C.thr_eval, np.zeros(6, dtype=bool))


def test_weight_rows_layout() -> None:
    w = np.arange(15).reshape(5, 3)  # (n_out, n_in)
    rows = weight_rows(w, 2)  # 3 blocks of 2 lanes, padded to 6 neurons
    assert rows[0] == [0, 3] and rows[1] == [6, 9] and rows[2] == [12, 0]
    assert rows[3] == [1, 4]


def test_init() -> None:
    core = _core(784, 64, 8)
    assert (core.blocks, core.depth) == (8, 784 * 8)
    assert core.acc_bits == max(C.membrane_bits, C.weight_bits + 10) + 1
    assert NeuronCore.for_layer(load_config(), 1).n_in == 64


def test_wrong_arguments() -> None:
    with pytest.raises(TypeError, match="lanes must be an integer"):
        _core(4, 4, 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_out must be >= 1"):
        _core(4, 0, 2)
    with pytest.raises(ValueError, match="weights must have shape"):
        _core(4, 4, 2, np.zeros((4, 5), dtype=np.int32))
    with pytest.raises(ValueError, match="weights must be integers in"):
        _core(4, 4, 2, np.full((4, 4), 1 << 20))
    with pytest.raises(ValueError, match="layer must be"):
        NeuronCore.for_layer(load_config(), 2)


@pytest.mark.parametrize(("n_out", "lanes"), [(10, 4), (3, 4), (16, 4)])
def test_sim_event_throughput(n_out: int, lanes: int) -> None:
    """A back-to-back event stream keeps the lanes busy: one event every B cycles (at least
    NeuronCore.WRITE_DISTANCE, so that no read misses a write-back in flight)."""
    core = _core(16, n_out, lanes)
    n_events = 7
    accepted: list[int] = []

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(core.events.valid, 1)
        for cycle in range(n_events * core.event_cycles + 5):
            ctx.set(core.events.payload, len(accepted) % 16)
            if ctx.get(core.events.ready) and len(accepted) < n_events:
                accepted.append(cycle)
            if len(accepted) == n_events:
                ctx.set(core.events.valid, 0)
            await ctx.tick()

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert core.event_cycles == max(core.blocks, NeuronCore.WRITE_DISTANCE)
    assert np.diff(accepted).tolist() == [core.event_cycles] * (n_events - 1)


# --- a tagged core: several layers time-shared on one set of lanes ------------------------

#: (layers, lanes): B = (3, 2, 1), every layer below WRITE_DISTANCE (bubbles within a layer);
#: B = (9, 5, 2), the first two at or above it (no bubble at all); one layer, tagged.
SMALL = (((40, 12), (12, 7), (7, 3)), 4)
WIDE = (((20, 18), (18, 9), (9, 3)), 2)
ONE = (((12, 10),), 4)

Op = tuple[str, int, int]  # ("event", layer, index) or ("fire", layer, 0)


def _network_core(
    layers: tuple[tuple[int, int], ...],
    lanes: int,
    weights: list[np.ndarray] | None = None,
    buffer_words: int | None = None,
) -> NeuronCore:
    return NeuronCore(
        layers=layers,
        lanes=lanes,
        weight_bits=C.weight_bits,
        membrane_bits=C.membrane_bits,
        decay_shift=C.decay_shift,
        weights=weights,
        buffer_words=buffer_words,
    )


class _WithBuffer(Elaboratable):
    """A core with external weights and the word buffer in front of it: what the
    testbench writes into ``fifo`` reaches ``w_stream`` (``w_level`` = the buffer's level)."""

    def __init__(self, core: NeuronCore) -> None:
        self.core = core
        self.fifo = SyncFIFOBuffered(
            width=len(core.w_stream.payload.as_value()), depth=core.buffer_words
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.core, m.submodules.fifo = core, fifo = self.core, self.fifo
        m.d.comb += [
            core.w_stream.payload.eq(fifo.r_data),
            core.w_stream.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(core.w_stream.ready),
            core.w_level.eq(fifo.r_level),
        ]
        return m


def _stream_words(core: NeuronCore, weights: list[np.ndarray], ops: list[Op]) -> list[int]:
    """The weight words the events of ``ops`` need, in order, as the buffer holds them."""
    out = []
    for kind, layer, index in ops:
        if kind != "event":
            continue
        rows = weight_rows(weights[layer][:, index : index + 1], core.lanes)
        mask = (1 << C.weight_bits) - 1
        out += [sum((v & mask) << (j * C.weight_bits) for j, v in enumerate(r)) for r in rows]
    return out


def _network_weights(
    rng: np.random.Generator, layers: tuple[tuple[int, int], ...]
) -> list[np.ndarray]:
    """Random weights, some neurons with every weight on a rail (their membranes saturate)."""
    lo, hi = signed_range(C.weight_bits)
    out = []
    for n_in, n_out in layers:
        w = rng.integers(-6000, 9000, (n_out, n_in))
        rail = rng.random(n_out)
        w[rail < 0.15] = hi
        w[(rail >= 0.15) & (rail < 0.3)] = lo
        w[rng.random(w.shape) < 0.05] = hi
        out.append(w.astype(np.int32))
    return out


def _network_golden(
    weights: list[np.ndarray],
    inputs: list[np.ndarray],
    thr: list[int],
    keep: list[np.ndarray],
) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """(spikes, membranes) of golden per layer and step; ``inputs[l]`` (T, n_in_l)."""
    out = []
    for w, s_in, t, k in zip(weights, inputs, thr, keep, strict=True):
        v = np.zeros((1, w.shape[0]), dtype=np.int64)
        steps = []
        for s in s_in:
            v, spk = lif_step(v, synaptic_drive(s[None], np.ascontiguousarray(w.T)), t, k, C)
            steps.append((spk[0].copy(), v[0].copy()))
        out.append(steps)
    return out


def _schedule(inputs: list[np.ndarray], rng: np.random.Generator, interleave: bool) -> list[Op]:
    """Operations of a sample: per step, each layer's events (random order), then its fire
    pass; layer after layer (the shared schedule) or randomly merged across layers."""
    ops: list[Op] = []
    for t in range(inputs[0].shape[0]):
        per_layer = []
        for l, s_in in enumerate(inputs):
            idx = rng.permutation(np.flatnonzero(s_in[t]))
            per_layer.append([("event", l, int(i)) for i in idx] + [("fire", l, 0)])
        if not interleave:
            ops += [op for seq in per_layer for op in seq]
            continue
        while any(per_layer):
            seq = per_layer[rng.choice([l for l, s in enumerate(per_layer) if s])]
            ops.append(seq.pop(0))
    return ops


def _run_network(
    core: NeuronCore,
    ops: list[Op],
    thr: list[int],
    keep: list[np.ndarray],
    *,
    load: list[np.ndarray] | None = None,
    external: list[np.ndarray] | None = None,
    arrive: float = 1.0,
    gap: float = 0.0,
    seed: int = 0,
) -> tuple[list[int], int, list[tuple[int, int, int, list[int]]]]:
    """Clear, then offer ``ops`` back to back (``gap``: chance of idle cycles before an op).

    Returns the cycle each op was taken (from the first), the first cycle idle again after
    the last, and every fire-pass result (layer, block, spikes, membranes), in order.
    ``load``: weights written through the host port first (flat addresses). ``external``:
    the core reads these weights from a buffer (:class:`_WithBuffer`) into which one
    word arrives per cycle with probability ``arrive``.
    """
    rng = np.random.default_rng(seed)
    top = _WithBuffer(core) if external is not None else core
    taken: list[int] = []
    done: list[int] = []
    results: list[tuple[int, int, int, list[int]]] = []
    cycle = [0]

    async def tick(ctx: SimulatorContext) -> None:
        await ctx.tick()
        cycle[0] += 1

    async def driver(ctx: SimulatorContext) -> None:
        ctx.set(core.threshold, thr)
        ctx.set(core.keep, int("".join("1" if b else "0" for k in keep[::-1] for b in k[::-1]), 2))
        for l, w in enumerate(load or []):
            for i in range(w.shape[1]):
                for b, row in enumerate(weight_rows(w[:, i : i + 1], core.lanes)):
                    for j, value in enumerate(row):
                        ctx.set(core.w_word, core.word_address(l, i, b))
                        ctx.set(core.w_lane, j)
                        ctx.set(core.w_data, value)
                        ctx.set(core.w_we, 1)
                        await tick(ctx)
                ctx.set(core.w_we, 0)
        ctx.set(core.clear, 1)
        await tick(ctx)
        ctx.set(core.clear, 0)
        while not ctx.get(core.idle):
            await tick(ctx)
        start = cycle[0]
        for kind, layer, index in ops:
            while rng.random() < gap:
                await tick(ctx)
            if kind == "event":
                ctx.set(core.events.payload, {"index": index, "layer": layer})
                request, ready = core.events.valid, core.events.ready
            else:
                ctx.set(core.fire_layer, layer)
                request, ready = core.fire, core.fire_ready
            ctx.set(request, 1)
            while not ctx.get(ready):
                await tick(ctx)
            taken.append(cycle[0] - start)
            await tick(ctx)
            ctx.set(request, 0)
        while not ctx.get(core.idle):
            await tick(ctx)
        done.append(cycle[0] - start)

    async def monitor(ctx: SimulatorContext) -> None:
        while True:
            if ctx.get(core.out_valid):
                membranes = [ctx.get(core.out_membrane[j]) for j in range(core.lanes)]
                results.append(
                    (
                        ctx.get(core.out_layer),
                        ctx.get(core.out_block),
                        ctx.get(core.out_spikes),
                        membranes,
                    )
                )
            await ctx.tick()

    async def feeder(ctx: SimulatorContext) -> None:
        assert isinstance(top, _WithBuffer) and external is not None
        feed = np.random.default_rng(seed + 1)
        for word in _stream_words(core, external, ops):
            while feed.random() >= arrive or not ctx.get(top.fifo.w_rdy):
                await ctx.tick()
            ctx.set(top.fifo.w_data, word)
            ctx.set(top.fifo.w_en, 1)
            await ctx.tick()
            ctx.set(top.fifo.w_en, 0)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.add_testbench(monitor, background=True)
    if external is not None:
        sim.add_testbench(feeder, background=True)
    sim.run()
    return taken, done[0], results


def _check_network(
    layers: tuple[tuple[int, int], ...],
    lanes: int,
    seed: int,
    *,
    chain: bool = False,
    interleave: bool = False,
    host_load: bool = False,
    arrive: float | None = None,
    gap: float = 0.0,
    steps: int = 5,
) -> None:
    """A tagged core for ``steps`` steps of random (or, ``chain``, the network's delayed)
    inputs with dropout and per-layer thresholds: every fire pass equals golden.
    ``arrive``: weights from external memory, a word arriving per cycle with that chance."""
    rng = np.random.default_rng(seed)
    w = _network_weights(rng, layers)
    thr = [C.thr_eval, *(int(rng.integers(1, 3 * C.thr_eval)) for _ in layers[1:])]
    keep = [rng.random(n_out) < 0.8 for _, n_out in layers]
    inputs = [rng.random((steps, n_in)) < rng.uniform(0.2, 0.6) for n_in, _ in layers]
    want = _network_golden(w, inputs, thr, keep)
    if chain:  # layer l sees layer l - 1's spikes of the step before (none at t = 0)
        for l in range(1, len(layers)):
            inputs[l] = np.zeros_like(inputs[l])
            inputs[l][1:] = [s for s, _ in want[l - 1][:-1]]
            want = _network_golden(w, inputs, thr, keep)
    ops = _schedule(inputs, rng, interleave)
    if arrive is not None:
        blocks = _network_core(layers, lanes).layer_blocks
        core = _network_core(layers, lanes, buffer_words=2 * max(blocks) + 1)
        _, _, results = _run_network(
            core, ops, thr, keep, external=w, arrive=arrive, gap=gap, seed=seed
        )
    else:
        core = _network_core(layers, lanes, None if host_load else w)
        _, _, results = _run_network(
            core, ops, thr, keep, load=w if host_load else None, gap=gap, seed=seed
        )
    for l, ((_, n_out), blocks) in enumerate(zip(layers, core.layer_blocks, strict=True)):
        mine = [r for r in results if r[0] == l]
        assert len(mine) == steps * blocks, f"layer {l}: {len(mine)} result blocks"
        for t in range(steps):
            s = np.zeros(blocks * lanes, dtype=bool)
            v = np.zeros(blocks * lanes, dtype=np.int64)
            for b, (_, block, bits, membranes) in enumerate(mine[t * blocks : (t + 1) * blocks]):
                assert block == b, f"layer {l} step {t}: block {block} in place {b}"
                s[b * lanes : (b + 1) * lanes] = [(bits >> j) & 1 for j in range(lanes)]
                v[b * lanes : (b + 1) * lanes] = membranes
            ws, wv = want[l][t]
            np.testing.assert_array_equal(s[:n_out], ws, err_msg=f"spikes, layer {l} step {t}")
            np.testing.assert_array_equal(v[:n_out], wv, err_msg=f"membranes, layer {l} step {t}")


@pytest.mark.parametrize(
    ("shape", "kwargs"),
    [
        (SMALL, {}),
        (SMALL, {"chain": True}),
        (SMALL, {"interleave": True, "gap": 0.3, "host_load": True}),
        (WIDE, {"chain": True}),
        (WIDE, {"interleave": True, "gap": 0.2}),
        (ONE, {"gap": 0.3}),
        (SMALL, {"chain": True, "arrive": 1.0}),
        (SMALL, {"interleave": True, "arrive": 0.3}),
        (WIDE, {"chain": True, "arrive": 0.6, "gap": 0.2}),
    ],
)
def test_sim_network_matches_golden(shape: tuple, kwargs: dict) -> None:
    """Events of every layer, each layer's fire pass after its events, back to back (or with
    random gaps, or merged across layers): spikes and membranes equal golden's, step by step."""
    layers, lanes = shape
    _check_network(layers, lanes, seed=len(layers) * 10 + lanes + len(kwargs), **kwargs)


def test_sim_network_saturates_and_drops() -> None:
    """Rails in every layer: layer 0 fires from the top rail at the largest threshold (reset
    to hi - thr), layer 1 has every neuron dropped (pinned at both rails), layer 2 has the
    smallest threshold."""
    layers, lanes = SMALL
    lo, hi = signed_range(C.weight_bits)
    w = [
        np.where(np.arange(n_out)[:, None] % 2 == 0, hi, lo) * np.ones((1, n_in), int)
        for n_in, n_out in layers
    ]
    thr = [signed_range(C.membrane_bits)[1], C.thr_eval, 1]
    keep = [np.ones(layers[0][1], bool), np.zeros(layers[1][1], bool), np.ones(layers[2][1], bool)]
    inputs = [np.ones((4, n_in), dtype=bool) for n_in, _ in layers]
    want = _network_golden(w, inputs, thr, keep)
    ops = _schedule(inputs, np.random.default_rng(0), interleave=False)
    _, _, results = _run_network(_network_core(layers, lanes, w), ops, thr, keep)
    for l, ((_, n_out), blocks) in enumerate(zip(layers, (3, 2, 1), strict=True)):
        mine = [r for r in results if r[0] == l]
        for t in range(4):
            got = mine[t * blocks : (t + 1) * blocks]
            v = [m for _, _, _, ms in got for m in ms][:n_out]
            s = [(bits >> j) & 1 for _, _, bits, _ in got for j in range(lanes)][:n_out]
            np.testing.assert_array_equal(v, want[l][t][1], err_msg=f"layer {l} step {t}")
            np.testing.assert_array_equal(s, want[l][t][0], err_msg=f"layer {l} step {t}")
    mb_lo, mb_hi = signed_range(C.membrane_bits)
    assert want[0][3][0].any() and want[2][3][0].any()
    assert want[1][3][1].max() == mb_hi and want[1][3][1].min() == mb_lo


def _step_cycles(blocks: tuple[int, ...], events: list[int]) -> int:
    """The docstring's rule: one step of the shared schedule issues for
    sum_l (n_l * max(B_l, WRITE_DISTANCE) + B_l) cycles."""
    wd = NeuronCore.WRITE_DISTANCE
    return sum(n * max(b, wd) + b for n, b in zip(events, blocks, strict=True))


@pytest.mark.parametrize("shape", [SMALL, WIDE])
def test_sim_stream_cycles(shape: tuple) -> None:
    """Operations offered back to back are taken when NeuronCore.accept_cycles says (bubbles
    only within a layer with B < WRITE_DISTANCE; none between layers), the core is idle
    STAGES + 1 cycles after the last issue, and two steps of the shared schedule take the
    closed form's cycles."""
    layers, lanes = shape
    core = _network_core(layers, lanes)
    blocks = core.layer_blocks
    rng = np.random.default_rng(len(blocks) + lanes)
    ops: list[Op] = [
        (str(rng.choice(["event", "event", "fire"])), int(layer), 0)
        for layer in rng.integers(0, len(layers), 60)
    ]
    ops += [("event", 1, 0), ("event", 0, 0), ("event", 1, 1), ("fire", 1, 0)]  # A B A
    thr = [C.thr_eval] * len(layers)
    keep = [np.ones(n, bool) for _, n in layers]
    taken, idle, _ = _run_network(core, ops, thr, keep)
    want = NeuronCore.accept_cycles(blocks, [layer for _, layer, _ in ops])
    assert taken == want
    assert idle == want[-1] + blocks[ops[-1][1]] + NeuronCore.STAGES + 1
    assert np.diff(want).min() >= min(blocks)  # no bubble but the hazard rule's

    events = [[5, 3, 2], [4, 0, 1]]  # per step and layer
    ops = [
        op
        for step in events
        for l, n in enumerate(step)
        for op in [("event", l, i) for i in range(n)] + [("fire", l, 0)]
    ]
    taken, _, _ = _run_network(_network_core(layers, lanes), ops, thr, keep)
    issued = taken[-1] + blocks[-1]
    assert issued == sum(_step_cycles(blocks, step) for step in events)
    # every cycle issues a block to all lanes but the bubbles of layers with B < WRITE_DISTANCE
    wd = NeuronCore.WRITE_DISTANCE
    busy = sum((n + 1) * b for step in events for n, b in zip(step, blocks, strict=True))
    bubbles = sum(n * max(wd - b, 0) for step in events for n, b in zip(step, blocks, strict=True))
    assert issued == busy + bubbles


def test_accept_cycles_rule() -> None:
    blocks = (3, 1, 6)
    assert NeuronCore.accept_cycles(blocks, [0, 0, 1, 1, 2, 2, 1]) == [0, 4, 7, 11, 12, 18, 24]
    assert NeuronCore.accept_cycles(blocks, [1, 0, 1]) == [0, 1, 4]
    assert NeuronCore.accept_cycles(blocks, []) == []
    with pytest.raises(ValueError, match=r"ops\[1\] must be >= 0 and <= 2"):
        NeuronCore.accept_cycles(blocks, [0, 3])


def test_word_address_and_layout() -> None:
    """word_address: layer l's words follow the layers before, in-major within the layer;
    the weights given at elaboration read back there through w_rdata, and a u_addr write
    lands there."""
    layers, lanes = SMALL
    rng = np.random.default_rng(7)
    w = _network_weights(rng, layers)
    core = _network_core(layers, lanes, w)
    assert core.depth == 40 * 3 + 12 * 2 + 7 * 1
    assert core.word_address(0, 0, 0) == 0
    assert core.word_address(0, 39, 2) == 119
    assert core.word_address(1, 0, 0) == 120
    assert core.word_address(2, 3, 0) == 120 + 24 + 3
    with pytest.raises(ValueError, match="layer must be >= 0 and <= 2"):
        core.word_address(3, 0, 0)
    with pytest.raises(ValueError, match="inp must be >= 0 and <= 11"):
        core.word_address(1, 12, 0)
    with pytest.raises(ValueError, match="block must be >= 0 and <= 0"):
        core.word_address(2, 0, 1)
    addrs = [
        (l, i, b)
        for l, (n_in, _) in enumerate(layers)
        for i in range(n_in)
        for b in range(core.layer_blocks[l])
    ]
    new_word = [-1, 2, -3, 4]
    got: list[list[int]] = []

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(core.u_addr, core.word_address(2, 5, 0))
        ctx.set(core.u_data, new_word)
        ctx.set(core.u_we, 1)
        await ctx.tick()
        ctx.set(core.u_we, 0)
        for k in range(len(addrs) + NeuronCore.READ_LATENCY - 1):
            if k < len(addrs):
                ctx.set(core.w_word, core.word_address(*addrs[k]))
            await ctx.tick()
            if k + 1 >= NeuronCore.READ_LATENCY:
                got.append(list(ctx.get(core.w_rdata)))

    sim = Simulator(core)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    for (l, i, b), word in zip(addrs, got, strict=True):
        n_out = layers[l][1]
        want = [int(w[l][b * lanes + j, i]) if b * lanes + j < n_out else 0 for j in range(lanes)]
        assert word == (new_word if (l, i) == (2, 5) else want), (l, i, b)


def test_network_init() -> None:
    cfg = load_config()
    core = NeuronCore.for_network(cfg)
    assert core.tagged and core.layers == ((784, 64), (64, 10))
    assert core.layer_blocks == (8, 2) and core.words == 10
    assert core.depth == 784 * 8 + 64 * 2
    assert core.acc_bits == max(C.membrane_bits, C.weight_bits + 10) + 1  # layer 0's
    small = _network_core(((3, 4), (70, 2)), 2)
    assert small.acc_bits == max(C.membrane_bits, C.weight_bits + 7) + 1  # layer 1's
    assert _network_core(((12, 10),), 4).blocks == 3  # one layer: the per-layer properties
    assert not NeuronCore.for_layer(cfg, 0).tagged


def test_network_wrong_arguments() -> None:
    def make(layers: object, weights: object = None) -> NeuronCore:
        return _network_core(layers, 4, weights)  # type: ignore[arg-type]

    with pytest.raises(TypeError, match=r"layers must be a sequence of \(n_in, n_out\) pairs"):
        make(5)
    with pytest.raises(TypeError, match="layers must be a sequence"):
        make("12")
    with pytest.raises(ValueError, match="layers must hold at least one"):
        make([])
    with pytest.raises(TypeError, match=r"layers\[1\] must be a pair \(n_in, n_out\)"):
        make([(4, 4), (4,)])
    with pytest.raises(TypeError, match=r"layers\[0\] n_out must be an integer"):
        make([(4, 2.0)])
    with pytest.raises(ValueError, match=r"layers\[1\] n_in must be >= 1"):
        make([(4, 4), (0, 3)])
    with pytest.raises(TypeError, match="give n_in and n_out, or layers, not both"):
        NeuronCore(4, 4, 2, layers=[(4, 4)], weight_bits=16, membrane_bits=20, decay_shift=2)
    with pytest.raises(TypeError, match="n_in must be an integer, not None"):
        NeuronCore(lanes=2, weight_bits=16, membrane_bits=20, decay_shift=2)
    with pytest.raises(TypeError, match="lanes must be an integer, not None"):
        NeuronCore(layers=[(4, 4)], weight_bits=16, membrane_bits=20, decay_shift=2)
    with pytest.raises(TypeError, match="weights must be a sequence of one array per layer"):
        make([(4, 4)], np.zeros((4, 4), dtype=np.int32))
    with pytest.raises(ValueError, match=r"weights must hold one array per layer \(2\), not 1"):
        make([(4, 4), (4, 2)], [np.zeros((4, 4), dtype=np.int32)])
    with pytest.raises(ValueError, match=r"weights\[1\] must have shape \(2, 4\), not \(4, 2\)"):
        make([(4, 4), (4, 2)], [np.zeros((4, 4), np.int32), np.zeros((4, 2), np.int32)])
    with pytest.raises(ValueError, match=r"weights\[0\] must be integers in"):
        make([(4, 4)], [np.full((4, 4), 1 << 20)])
    with pytest.raises(ValueError, match="this core has 2 layers"):
        _ = make([(4, 4), (4, 2)]).blocks
    with pytest.raises(ValueError, match="weights must hold one array per layer"):
        NeuronCore.for_network(load_config(), [np.zeros((64, 784), np.int32)])
