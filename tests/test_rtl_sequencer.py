"""rtl.sequencer.Sequencer in the Amaranth simulator, against blocks modelled in Python.

The encoder, scanners, cores, arg-max, dropout draws and training passes are
countdowns with random durations (a process); every cycle's ports are recorded,
and the trace is checked against the schedule: pixel intake, the ``T + 1`` phases
in order with their strobes, fire passes at the first chance, the barrier, the
arg-max, the training states and the result handshake.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from amaranth.hdl import Signal
from amaranth.sim import Simulator, SimulatorContext

from rtl.register_map import Mode
from rtl.sequencer import Sequencer

N_IN, LANES, TSTEPS, N_LAYERS = 10, 4, 3, 2
CLASSES, DRAWS, LEARN_CYCLES = 4, 5, 6

#: Ports recorded every cycle (outputs and the modelled inputs).
PORTS = (
    "pix_we",
    "pix_word",
    "pix_lane",
    "pix_data",
    "sample_start",
    "busy",
    "draw",
    "draw_last",
    "phase",
    "launch",
    "encoder_start",
    "encoder_first",
    "encoder_busy",
    "clear",
    "scan",
    "scan_done",
    "core_idle",
    "fire",
    "argmax",
    "argmax_last",
    "learn",
    "learn_done",
    "result_valid",
    "result_ready",
    "label",
)


@dataclass
class Sample:
    pixels: list[int]
    label: int | None  # sent after the pixels (a training sample)


async def _until(ctx: SimulatorContext, signal: Signal, limit: int = 2_000) -> None:
    """``ctx.tick().until(signal)``, but failing after ``limit`` cycles instead of waiting
    for ever (a sequencer that misses a pixel or drops a result never offers the next)."""
    for _ in range(limit):
        high = ctx.get(signal)
        await ctx.tick()
        if high:
            return
    raise AssertionError(f"{signal.name} not high within {limit} cycles")


def _simulate(
    dut: Sequencer, samples: list[Sample], mode: int, seed: int, result_wait: int = 0
) -> list[dict]:
    """Send ``samples``, taking each result at once, or ``result_wait`` cycles after it
    is offered (``result_ready`` held low until then); the trace of every cycle."""
    trace: list[dict] = []
    done = [False]

    async def blocks(ctx: SimulatorContext) -> None:
        rng = random.Random(seed)
        enc_left, scan_left, core_left = 0, [0] * N_LAYERS, [0] * N_LAYERS
        argmax_k = draw_k = learn_left = 0
        ports = [getattr(dut, name) for name in PORTS]
        pixel = (dut.pixels.valid, dut.pixels.ready, dut.pixels.payload)
        async for _, _, *values in ctx.tick().sample(*ports, *pixel):
            if done[0]:
                return
            cycle = dict(zip(PORTS, values[: len(PORTS)], strict=True))
            cycle["valid"], cycle["ready"], cycle["payload"] = values[len(PORTS) :]
            trace.append(cycle)
            # the blocks react to this cycle's strobes
            enc_left = rng.randint(1, 5) if cycle["encoder_start"] else max(enc_left - 1, 0)
            for l in range(N_LAYERS):
                scan_left[l] = rng.randint(1, 6) if cycle["scan"] else max(scan_left[l] - 1, 0)
                if cycle["scan"] or cycle["clear"] or cycle["fire"] >> l & 1:
                    core_left[l] = rng.randint(1, 4)
                elif scan_left[l] and rng.random() < 0.3:  # an event arrives
                    core_left[l] = rng.randint(1, 3)
                else:
                    core_left[l] = max(core_left[l] - 1, 0)
            if cycle["argmax"]:
                argmax_k = 0 if argmax_k == CLASSES - 1 else argmax_k + 1
            if cycle["draw"]:
                draw_k = 0 if draw_k == DRAWS - 1 else draw_k + 1
            learn_left = LEARN_CYCLES if cycle["learn"] else max(learn_left - 1, 0)
            ctx.set(dut.encoder_busy, enc_left > 0)
            ctx.set(dut.scan_done, sum((s == 0) << l for l, s in enumerate(scan_left)))
            ctx.set(dut.core_idle, sum((c == 0) << l for l, c in enumerate(core_left)))
            ctx.set(dut.argmax_last, argmax_k == CLASSES - 1)
            ctx.set(dut.draw_last, draw_k == DRAWS - 1)
            ctx.set(dut.learn_done, learn_left == 1)

    async def host(ctx: SimulatorContext) -> None:
        ctx.set(dut.mode, mode)
        ctx.set(dut.scan_done, (1 << N_LAYERS) - 1)
        ctx.set(dut.core_idle, (1 << N_LAYERS) - 1)
        ctx.set(dut.argmax_last, CLASSES == 1)
        ctx.set(dut.draw_last, DRAWS == 1)
        for sample in samples:
            ctx.set(dut.pixels.valid, 1)
            extra = [] if sample.label is None else [sample.label]
            for x in [*sample.pixels, *extra]:
                ctx.set(dut.pixels.payload, x)
                await _until(ctx, dut.pixels.ready)
            ctx.set(dut.pixels.valid, 0)
            ctx.set(dut.result_ready, result_wait == 0)
            await _until(ctx, dut.result_valid)
            if result_wait:
                for _ in range(result_wait):
                    assert ctx.get(dut.result_valid), "the result left before ready"
                    await ctx.tick()
                ctx.set(dut.result_ready, 1)
                await ctx.tick()
            ctx.set(dut.result_ready, 0)
        await ctx.tick()
        done[0] = True
        await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(blocks)
    sim.add_testbench(host)
    sim.run()
    return trace


def _check_sample(trace: list[dict], start: int, sample: Sample, training: bool) -> int:
    """Check one sample's cycles from ``start`` (its first pixel cycle); returns the cycle
    after its result transfer."""
    c = start
    # pixels, in index order, into (word, lane); the sample starts with the last
    for i, x in enumerate(sample.pixels):
        while not (trace[c]["valid"] and trace[c]["ready"]):
            c += 1
        cyc = trace[c]
        assert (cyc["pix_we"], cyc["pix_word"], cyc["pix_lane"]) == (1, *divmod(i, LANES))
        assert cyc["pix_data"] == x and not cyc["busy"]
        assert cyc["sample_start"] == (i == N_IN - 1), f"pixel {i}"
        c += 1
    if training:  # the label, ready while not busy; then the dropout draws
        assert sample.label is not None
        assert trace[c]["ready"] and trace[c]["valid"] and not trace[c]["busy"]
        assert not trace[c]["pix_we"], "the label is not a pixel"
        c += 1
        assert trace[c]["label"] == sample.label
        for k in range(DRAWS):
            assert trace[c + k]["draw"] and trace[c + k]["busy"], f"draw {k}"
        c += DRAWS
    busy_from = c
    # the phases: a launch, then a barrier
    for phase in range(TSTEPS + 1):
        cyc = trace[c]
        assert cyc["launch"] and cyc["phase"] == phase, f"phase {phase} at cycle {c}"
        assert cyc["encoder_start"] == (phase < TSTEPS)
        assert cyc["encoder_first"] == (phase == 0)
        assert (cyc["clear"], cyc["scan"]) == (phase == 0, phase != 0)
        assert not cyc["fire"]
        fired = 0
        c += 1
        while True:
            cyc = trace[c]
            assert not cyc["launch"] and not cyc["argmax"], f"phase {phase}: early end"
            assert cyc["phase"] == phase
            ready = cyc["scan_done"] & cyc["core_idle"] & ~fired
            if phase == 0:
                assert not cyc["fire"], "no fire pass in phase 0"
            else:
                assert cyc["fire"] == ready, f"phase {phase}: fire at the first chance"
            all_done = not cyc["encoder_busy"] and all(
                cyc["core_idle"] >> l & 1 and (phase == 0 or fired >> l & 1)
                for l in range(N_LAYERS)
            )
            fired |= cyc["fire"]
            c += 1
            if all_done:
                break
        if phase:
            assert fired == (1 << N_LAYERS) - 1, f"phase {phase}: every core fired once"
    # arg-max, one class per cycle; then the training passes; then the result
    for k in range(CLASSES):
        assert trace[c + k]["argmax"] and trace[c + k]["busy"], f"arg-max step {k}"
        assert trace[c + k]["learn"] == (training and k == CLASSES - 1)
    c += CLASSES
    if training:
        for k in range(LEARN_CYCLES):
            assert trace[c + k]["busy"] and not trace[c + k]["result_valid"]
        c += LEARN_CYCLES
    assert all(trace[k]["busy"] for k in range(busy_from, c)), "busy from the start to here"
    assert trace[c]["result_valid"] and not trace[c]["busy"] and not trace[c]["ready"]
    while not trace[c]["result_ready"]:
        assert trace[c]["result_valid"] and not trace[c]["ready"], "the result waits for ready"
        c += 1
    return c + 1


@pytest.mark.parametrize(
    ("training", "dropout", "mode"),
    [(False, False, Mode.INFERENCE), (True, True, Mode.INFERENCE), (True, True, Mode.TRAINING)],
    ids=["inference-only", "training-build-inference", "training"],
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sim_phase_order(training: bool, dropout: bool, mode: Mode, seed: int) -> None:
    dut = Sequencer(N_IN, LANES, TSTEPS, N_LAYERS, training=training, dropout=dropout)
    rng = random.Random(seed)
    trained = mode == Mode.TRAINING
    samples = [
        Sample([rng.randrange(256) for _ in range(N_IN)], rng.randrange(10) if trained else None)
        for _ in range(3)
    ]
    trace = _simulate(dut, samples, mode, seed)
    c = 0
    for sample in samples:
        c = _check_sample(trace, c, sample, trained)


def test_sim_result_waits_for_ready() -> None:
    """``result_ready`` held low for a while: the result stays offered, no pixel is taken,
    and the next sample starts after the transfer (the other tests take it at once)."""
    dut = Sequencer(N_IN, LANES, TSTEPS, N_LAYERS, training=True, dropout=True)
    samples = [Sample(list(range(k, k + N_IN)), 2) for k in range(2)]
    trace = _simulate(dut, samples, Mode.TRAINING, seed=5, result_wait=4)
    c = 0
    for sample in samples:
        c = _check_sample(trace, c, sample, training=True)
    assert sum(cyc["result_valid"] for cyc in trace) == 2 * (4 + 2), "offered, 4 waits, taken"


def test_sim_training_without_dropout_skips_mask() -> None:
    """``dropout = False``: the label is followed by the first launch, no draw."""
    dut = Sequencer(N_IN, LANES, TSTEPS, N_LAYERS, training=True, dropout=False)
    trace = _simulate(dut, [Sample(list(range(N_IN)), 3)], Mode.TRAINING, seed=4)
    label = next(k for k, cyc in enumerate(trace) if cyc["sample_start"]) + 1
    assert trace[label]["ready"] and trace[label]["valid"]
    assert trace[label + 1]["launch"] and trace[label + 1]["phase"] == 0
    assert not any(cyc["draw"] for cyc in trace)


def test_init() -> None:
    dut = Sequencer(784, 8, 20, 3, training=True, dropout=True)
    assert len(dut.pix_word) == 7 and len(dut.pix_lane) == 3 and len(dut.fire) == 3
    assert len(dut.phase) == 5, "phase counts 0 .. T"


def test_wrong_arguments() -> None:
    with pytest.raises(ValueError, match="dropout needs training"):
        Sequencer(10, 4, 3, 2, training=False, dropout=True)
    with pytest.raises(TypeError, match="training must be a bool, not 1"):
        Sequencer(10, 4, 3, 2, training=1, dropout=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_layers must be >= 1, not 0"):
        Sequencer(10, 4, 3, 0, training=False, dropout=False)
