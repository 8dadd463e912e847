"""rtl.training_sequencer.TrainingSequencer in the Amaranth simulator, against its schedule.

The sequencer runs alone: ``row_silent`` comes from a random pattern of silent
rows, and every cycle's issue is compared with a Python transcription of the
documented schedule (``BWD_OUT``, the hidden layers top-down, the update rows
bottom-up with silent rows skipped, the drains), including which cycles count as
backward and update.
"""

from __future__ import annotations

import random
import re

import pytest
from amaranth.back import verilog
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator, SimulatorContext

from desire.config import load_config
from rtl.training_sequencer import (
    ISSUE_TO_UNIT,
    LOAD_TO_WORD,
    IssueSignature,
    TrainingSchedule,
    TrainingSequencer,
)

Cycle = tuple[tuple, int, int, int]  # (what is issued, backward, update, done)


def _reference(
    layers: tuple[int, ...], lanes: int, s: TrainingSchedule, silent: list[list[bool]]
) -> list[Cycle]:
    """The schedule, cycle by cycle, as the module docstring describes it."""
    blocks = [-(-n // lanes) for n in layers[1:]]
    n_layers = len(blocks)

    def row(i: int) -> tuple[int, int, int]:
        return (i, i // lanes, i % lanes)

    bwd: list[tuple] = [("out", b) for b in range(blocks[-1])] + [("idle",)] * s.out_drain
    for l in range(n_layers - 1, 0, -1):
        bwd += [
            ("mac", l, g * blocks[l] + b, b, b == blocks[l] - 1, row(g))
            for g in range(layers[l])
            for b in range(blocks[l])
        ]
        bwd += [("idle",)] * s.hid_drain
    upd: list[tuple] = []
    for l in range(n_layers):
        upd += [("read", l, 0), ("idle",)]  # UPD_ROW, UPD_LOAD of row 0
        for i in range(layers[l]):
            upd += [("read", l, (i + 1) // lanes), ("load", l, row(i))]  # UPD_CHECK, UPD_DECIDE
            if silent[l][i]:
                continue
            upd += [("idle",)] * s.row_wait
            upd += [
                ("upd", l, i * blocks[l] + b, b, b == blocks[l] - 1, row(i))
                for b in range(blocks[l])
            ]
            if i + 1 < layers[l]:
                upd += [("read", l, (i + 1) // lanes), ("idle",)]  # the next row, again
    upd += [("idle",)] * s.update_drain
    return [(x, 1, 0, 0) for x in bwd] + [
        (x, 0, 1, int(k == len(upd) - 1)) for k, x in enumerate(upd)
    ]


def _issued(ctx: SimulatorContext, dut: TrainingSequencer) -> tuple:
    """This cycle's issue in the reference's terms (at most one kind at a time)."""
    iss = dut.issue
    row = (ctx.get(iss.row_index), ctx.get(iss.row_word), ctx.get(iss.row_lane))
    kinds = {k: ctx.get(getattr(iss, k)) for k in ("out", "mac", "upd", "read_row", "load_row")}
    active = [k for k, v in kinds.items() if v]
    assert len(active) <= 1, f"more than one kind issued: {kinds}"
    if not active:
        return ("idle",)
    kind = active[0]
    layer = kinds[kind].bit_length() - 1
    assert kinds[kind] == 1 << layer, f"{kind} for more than one layer"
    if kind == "out":
        return ("out", ctx.get(iss.block))
    if kind in ("mac", "upd"):
        word, block, last = ctx.get(iss.word), ctx.get(iss.block), ctx.get(iss.last)
        flat = ctx.get(iss.flat)
        assert flat == dut.flat_bases[layer] + word, f"flat word {flat} of {kind} {layer}, {word}"
        return (kind, layer, word, block, bool(last), row)
    if kind == "read_row":
        return ("read", layer, ctx.get(iss.read_word))
    return ("load", layer, row)


def _simulate(dut: TrainingSequencer, silent: list[list[bool]], runs: int) -> list[list[Cycle]]:
    """``runs`` passes back to back (the next ``start`` right after ``done``)."""
    got: list[list[Cycle]] = []

    async def testbench(ctx: SimulatorContext) -> None:
        await ctx.tick()
        assert not ctx.get(dut.done) and not ctx.get(dut.backward), "idle until start"
        for _ in range(runs):
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles: list[Cycle] = []
            while not cycles or not cycles[-1][3]:
                i = ctx.get(dut.issue.row_index)
                bits = [i < len(rows) and rows[i] for rows in silent]
                ctx.set(dut.issue.row_silent, sum(int(b) << l for l, b in enumerate(bits)))
                flags = (ctx.get(dut.backward), ctx.get(dut.update), ctx.get(dut.done))
                cycles.append((_issued(ctx, dut), *flags))
                await ctx.tick()
                assert len(cycles) < 10_000, "never done"
            got.append(cycles)
        for _ in range(3):
            assert _issued(ctx, dut) == ("idle",) and not ctx.get(dut.update), "idle after done"
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return got


@pytest.mark.parametrize(
    ("layers", "lanes"),
    [((5, 7, 6, 3), 2), ((9, 3), 4), ((6, 9, 4), 3), ((3, 2, 2), 1)],
    ids=["three-layers", "one-layer-one-block", "lanes3", "lanes1"],
)
@pytest.mark.parametrize("row_wait", [0, 2])
def test_sim_schedule(layers: tuple[int, ...], lanes: int, row_wait: int) -> None:
    rng = random.Random(sum(layers) * 10 + lanes + row_wait)
    schedule = TrainingSchedule(out_drain=2, hid_drain=3, update_drain=4, row_wait=row_wait)
    silent = [[rng.random() < 0.4 for _ in range(n)] for n in layers[:-1]]
    silent[0][0] = silent[0][-1] = True  # the first and the last row silent
    if len(silent) > 1:
        silent[1] = [True] * len(silent[1])  # a layer whose every row is silent
    dut = TrainingSequencer(layers, lanes, schedule)
    want = _reference(layers, lanes, schedule, silent)
    for k, got in enumerate(_simulate(dut, silent, runs=2)):
        assert len(got) == len(want), f"run {k}: {len(got)} cycles, not {len(want)}"
        for c, (g, w) in enumerate(zip(got, want, strict=True)):
            assert g == w, f"run {k}, cycle {c}: {g} != {w}"


def test_schedule_for_config() -> None:
    """The drains cover the read (ISSUE_TO_UNIT) and the unit; UPD_WAIT what is left of
    the update unit's trace building after LOAD_TO_WORD."""
    cfg = load_config().replace(network={"layers": (20, 12, 6), "tsteps": 6})
    s = TrainingSchedule.for_config(cfg)
    assert min(s.out_drain, s.hid_drain, s.update_drain) > ISSUE_TO_UNIT
    assert LOAD_TO_WORD == ISSUE_TO_UNIT + 1
    long = TrainingSchedule.for_config(cfg.replace(network={"tsteps": 40}))
    assert long.row_wait > s.row_wait >= 0 and long.out_drain >= s.out_drain


def test_init() -> None:
    dut = TrainingSequencer((784, 64, 10), 8, TrainingSchedule(1, 1, 1, 0))
    assert dut.schedule == TrainingSchedule(1, 1, 1, 0)
    assert len(dut.issue.mac) == 2 and len(dut.issue.row_index) == 10
    sig = IssueSignature.for_layers((784, 64, 10), 8)
    assert sig.members["word"].shape == range(784 * 8 + 1)
    assert sig.members["flat"].shape == range(784 * 8 + 64 * 2 + 1)
    assert dut.flat_bases == (0, 784 * 8) and sig.members["flat"].init == 784 * 8
    flows = {name: member.flow for name, member in sig.members.items()}
    assert flows.pop("row_silent") == In and set(flows.values()) == {Out}


def test_wrong_arguments() -> None:
    with pytest.raises(ValueError, match="out_drain must be >= 1, not 0"):
        TrainingSchedule(0, 1, 1, 0)
    with pytest.raises(ValueError, match="row_wait must be >= 0, not -1"):
        TrainingSchedule(1, 1, 1, -1)
    with pytest.raises(TypeError, match="layers must be a sequence of at least 2 layer sizes"):
        TrainingSequencer((10,), 4, TrainingSchedule(1, 1, 1, 0))
    with pytest.raises(TypeError, match="schedule must be a TrainingSchedule"):
        TrainingSequencer((10, 4), 4, (1, 1, 1, 0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"layers\[1\] must be >= 1, not 0"):
        TrainingSequencer((10, 0), 4, TrainingSchedule(1, 1, 1, 0))


def test_verilog_has_no_constant_only_process() -> None:
    """No ``always @*`` whose body is a lone constant: Icarus never runs such a block (it
    has no sensitivities), so the signal would stay X. ``mac`` has no bit-0 state, and is
    assigned as a whole so that its bit 0 is not split off into such a block."""
    dut = TrainingSequencer((5, 7, 6, 3), 2, TrainingSchedule(2, 3, 4, 1))
    text = verilog.convert(dut, name="training_sequencer", emit_src=False)
    lone = re.findall(r"always @\*\s*\n\s*([^\s;]+) = \d+'[hbd][0-9a-f]+;\n", text)
    assert lone == []
