"""rtl.host_bus.HostBus in the Amaranth simulator: decoding, refusals, registers, counters.

The neuron cores' weight ports are a Python model (a process): writes land at the
clock edge, ``weight_rdata`` is the word addressed ``weight_latency`` cycles before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from amaranth.sim import Simulator, SimulatorContext

from rtl.host_bus import HostBus
from rtl.register_map import AddressMap, Mode, Status

#: Three layers of 6, 10 and 4 words, 3 lanes (lane 3 and layer 3 are bad addresses).
AMAP = AddressMap([6, 10, 4], 3)
REGS = AMAP.regs
LATENCY = 3
THR_INIT, THR_HI = 100, (1 << 11) - 1  # membrane_bits = 12

Memories = list[list[list[int]]]  # [layer][word][lane]


def _dut(*, training: bool = True) -> HostBus:
    return HostBus(
        AMAP,
        weight_bits=8,
        membrane_bits=12,
        thr_init=THR_INIT,
        training=training,
        weight_latency=LATENCY,
    )


def _raw(layer: int, word: int, lane: int) -> int:
    """A weight address from its fields, also ones outside the layers (bad addresses)."""
    field = (((layer << AMAP.word_bits) | word) << AMAP.lane_bits) | lane
    return (1 << (AMAP.addr_bits - 1)) | field


def _value(layer: int, word: int, lane: int) -> int:
    """A distinct 8-bit weight per (layer, word, lane), negative ones included."""
    return (layer * 60 + word * 3 + lane) % 256 - 128


def _run(dut: HostBus, testbench: Callable[[SimulatorContext], Awaitable[None]]) -> Memories:
    """Run ``testbench`` beside the weight memories; returns their final contents."""
    mems = [[[0] * AMAP.lanes for _ in range(depth)] for depth in AMAP.depths]

    async def memories(ctx: SimulatorContext) -> None:
        words: list[int] = []  # weight_word of every cycle so far
        sampled = (dut.weight_word, dut.weight_lane, dut.weight_data, dut.weight_we)
        async for _, _, word, lane, value, we in ctx.tick().sample(*sampled):
            words.append(word)
            for l, mem in enumerate(mems):
                if we >> l & 1:
                    mem[word][lane] = value
            at = len(words) - LATENCY  # the next cycle's data: the address LATENCY before
            for l, mem in enumerate(mems):
                row = mem[words[at]] if at >= 0 and words[at] < len(mem) else [0] * AMAP.lanes
                for j, x in enumerate(row):
                    ctx.set(dut.weight_rdata[l][j], x)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(memories)
    sim.add_testbench(testbench)
    sim.run()
    return mems


async def _write(ctx: SimulatorContext, dut: HostBus, addr: int, value: int) -> None:
    ctx.set(dut.bus.addr, addr)
    ctx.set(dut.bus.wdata, value & 0xFFFF_FFFF)
    ctx.set(dut.bus.we, 1)
    await ctx.tick()
    ctx.set(dut.bus.we, 0)


async def _read(ctx: SimulatorContext, dut: HostBus, addr: int) -> int:
    """Signed 32-bit value at ``addr``."""
    ctx.set(dut.bus.addr, addr)
    await ctx.tick().repeat(dut.read_latency)
    value = ctx.get(dut.bus.rdata)
    return value - (1 << 32) if value >> 31 else value


def test_sim_weights_decoded_and_read_back() -> None:
    dut = _dut()
    seen: dict[str, object] = {}
    every = [(l, w, j) for l, d in enumerate(AMAP.depths) for w in range(d) for j in range(3)]

    async def testbench(ctx: SimulatorContext) -> None:
        for l, w, j in every:
            await _write(ctx, dut, AMAP.weight(l, w, j), _value(l, w, j))
        seen["status"] = await _read(ctx, dut, REGS.STATUS)
        seen["back"] = [await _read(ctx, dut, AMAP.weight(l, w, j)) for l, w, j in every]
        # back to back: a new address every cycle, rdata READ_LATENCY later
        stream = every[:12]
        got = []
        for k in range(len(stream) + dut.read_latency):
            if k < len(stream):
                ctx.set(dut.bus.addr, AMAP.weight(*stream[k]))
            await ctx.tick()
            if k + 1 >= dut.read_latency:
                got.append(ctx.get(dut.bus.rdata.as_signed()))
        seen["pipelined"] = got[: len(stream)]

    mems = _run(dut, testbench)
    assert mems == [
        [[_value(l, w, j) for j in range(3)] for w in range(d)] for l, d in enumerate(AMAP.depths)
    ]
    assert seen["status"] == 0
    assert seen["back"] == [_value(*a) for a in every]
    assert seen["pipelined"] == [_value(*a) for a in every[:12]]


@pytest.mark.parametrize(
    ("layer", "word", "lane"),
    [(0, 6, 0), (1, 10, 2), (2, 4, 1), (1, 15, 0), (0, 0, 3), (3, 1, 1)],
    ids=["past-layer0", "past-layer1", "past-layer2", "last-field-word", "lane", "layer3"],
)
def test_sim_bad_weight_address_refused(layer: int, word: int, lane: int) -> None:
    dut = _dut()
    seen: dict[str, int] = {}

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(dut.bus.addr, _raw(layer, word, lane))
        ctx.set(dut.bus.wdata, 55)
        ctx.set(dut.bus.we, 1)
        seen["we"] = ctx.get(dut.weight_we)
        await ctx.tick()
        ctx.set(dut.bus.we, 0)
        seen["status"] = await _read(ctx, dut, REGS.STATUS)
        await _write(ctx, dut, REGS.STATUS, Status.ERR_WRITE)
        seen["cleared"] = await _read(ctx, dut, REGS.STATUS)

    mems = _run(dut, testbench)
    assert seen == {"we": 0, "status": Status.ERR_WRITE, "cleared": 0}
    assert all(x == 0 for mem in mems for row in mem for x in row)


def test_sim_busy_refuses_writes() -> None:
    dut = _dut()
    seen: dict[str, int] = {}

    async def testbench(ctx: SimulatorContext) -> None:
        await _write(ctx, dut, AMAP.weight(1, 4, 2), -7)
        ctx.set(dut.busy, 1)
        ctx.set(dut.bus.addr, AMAP.weight(1, 4, 2))
        ctx.set(dut.bus.wdata, 99)
        ctx.set(dut.bus.we, 1)
        seen["we"] = ctx.get(dut.weight_we)
        await ctx.tick()
        ctx.set(dut.bus.we, 0)
        for addr, value in ((REGS.THRESHOLD, 50), (REGS.MODE, Mode.TRAINING), (REGS.LR_INT, 9)):
            await _write(ctx, dut, addr, value)
        seen["status"] = await _read(ctx, dut, REGS.STATUS)
        seen["weight_busy"] = await _read(ctx, dut, AMAP.weight(1, 4, 2))
        # weight addresses whose low bits spell STATUS and CYCLES still read 0
        seen["alias_status"] = await _read(ctx, dut, AMAP.weight(0, 0, 0))
        seen["alias_cycles"] = await _read(ctx, dut, AMAP.weight(0, 1, 0))
        seen["thr"] = await _read(ctx, dut, REGS.THRESHOLD)
        seen["mode"] = await _read(ctx, dut, REGS.MODE)
        seen["lr"] = await _read(ctx, dut, REGS.LR_INT)
        await _write(ctx, dut, REGS.STATUS, Status.ERR_BUSY)  # W1C works while busy
        seen["cleared"] = await _read(ctx, dut, REGS.STATUS)
        ctx.set(dut.busy, 0)
        seen["weight"] = await _read(ctx, dut, AMAP.weight(1, 4, 2))

    mems = _run(dut, testbench)
    assert seen == {
        "we": 0,
        "status": Status.BUSY | Status.ERR_BUSY,
        "weight_busy": 0,
        "alias_status": 0,
        "alias_cycles": 0,
        "thr": THR_INIT,
        "mode": Mode.INFERENCE,
        "lr": 0,
        "cleared": Status.BUSY,
        "weight": -7,
    }
    assert mems[1][4][2] == -7


def test_sim_threshold_range() -> None:
    """THRESHOLD + l takes (0, 2^(membrane_bits-1)); anything else is ERR_WRITE, ignored."""
    dut = _dut()
    seen: list[tuple[int, int, int]] = []  # (written, read back, ERR_WRITE)

    async def testbench(ctx: SimulatorContext) -> None:
        assert [ctx.get(t) for t in dut.threshold] == [THR_INIT] * 3
        for value in (0, -1, THR_HI + 1, 1 << 31, THR_HI, 1, 2000):
            await _write(ctx, dut, REGS.THRESHOLD + 1, value)
            status = await _read(ctx, dut, REGS.STATUS)
            seen.append((value, await _read(ctx, dut, REGS.THRESHOLD + 1), status >> 3 & 1))
            await _write(ctx, dut, REGS.STATUS, Status.ERR_WRITE)
        assert [ctx.get(t) for t in dut.threshold] == [THR_INIT, 2000, THR_INIT]

    _run(dut, testbench)
    assert seen == [
        (0, THR_INIT, 1),
        (-1, THR_INIT, 1),
        (THR_HI + 1, THR_INIT, 1),
        (1 << 31, THR_INIT, 1),
        (THR_HI, THR_HI, 0),
        (1, 1, 0),
        (2000, 2000, 0),
    ]


def test_sim_status_bits_and_read_only_registers() -> None:
    dut = _dut()
    seen: dict[str, int] = {}

    async def testbench(ctx: SimulatorContext) -> None:
        ctx.set(dut.result, 1)
        seen["result"] = await _read(ctx, dut, REGS.STATUS)
        ctx.set(dut.result, 0)
        await _write(ctx, dut, REGS.CYCLES, 5)  # read-only
        ctx.set(dut.busy, 1)
        await _write(ctx, dut, AMAP.weight(0, 0, 0), 5)
        ctx.set(dut.busy, 0)
        seen["both"] = await _read(ctx, dut, REGS.STATUS)
        await _write(ctx, dut, REGS.STATUS, Status.ERR_BUSY | Status.BUSY | Status.RESULT)
        seen["busy_cleared"] = await _read(ctx, dut, REGS.STATUS)
        await _write(ctx, dut, REGS.STATUS, Status.ERR_WRITE)
        seen["clear"] = await _read(ctx, dut, REGS.STATUS)
        await _write(ctx, dut, REGS.size, 1)  # no register there
        seen["unmapped"] = await _read(ctx, dut, REGS.STATUS)
        seen["unmapped_read"] = await _read(ctx, dut, REGS.size)

    _run(dut, testbench)
    assert seen == {
        "result": Status.RESULT,
        "both": Status.ERR_BUSY | Status.ERR_WRITE,
        "busy_cleared": Status.ERR_WRITE,
        "clear": 0,
        "unmapped": Status.ERR_WRITE,
        "unmapped_read": 0,
    }


def test_sim_w1c_clears_only_the_bits_written() -> None:
    """With both error bits set, writing ERR_WRITE leaves ERR_BUSY set and the reverse (the
    other tests only ever clear a lone error bit, or ERR_BUSY first)."""
    dut = _dut()
    seen: list[int] = []

    async def testbench(ctx: SimulatorContext) -> None:
        for clear in (Status.ERR_WRITE, Status.ERR_BUSY):
            ctx.set(dut.busy, 1)
            await _write(ctx, dut, REGS.THRESHOLD, 50)  # ERR_BUSY
            ctx.set(dut.busy, 0)
            await _write(ctx, dut, REGS.THRESHOLD, 0)  # ERR_WRITE
            await _write(ctx, dut, REGS.STATUS, clear)
            seen.append(await _read(ctx, dut, REGS.STATUS))
            await _write(ctx, dut, REGS.STATUS, Status.ERR_BUSY | Status.ERR_WRITE)

    _run(dut, testbench)
    assert seen == [Status.ERR_BUSY, Status.ERR_WRITE]


def test_sim_registers_and_weights_back_to_back() -> None:
    """A new address every cycle, registers and weights mixed: each ``rdata`` belongs to
    the address of exactly ``read_latency`` cycles before (``_read`` holds the address
    still, so a register path one cycle short would pass there)."""
    dut = _dut()
    got: list[int] = []
    values = {REGS.THRESHOLD: 7, REGS.THRESHOLD + 1: 300, REGS.THRESHOLD + 2: 2000}
    values |= {REGS.LR_INT: 0x1234, REGS.MODE: Mode.TRAINING, REGS.STATUS: 0}
    weights = [AMAP.weight(l, w, j) for l, w, j in ((0, 1, 2), (1, 9, 0), (2, 3, 1))]
    stream = [*values, weights[0], REGS.LR_INT, weights[1], REGS.THRESHOLD, weights[2]]
    stream += [REGS.MODE, REGS.THRESHOLD + 2, REGS.STATUS, REGS.THRESHOLD + 1]

    async def testbench(ctx: SimulatorContext) -> None:
        for addr, value in values.items():
            if addr != REGS.STATUS:
                await _write(ctx, dut, addr, value)
        for k, addr in enumerate(weights):
            await _write(ctx, dut, addr, -10 - k)
        for k in range(len(stream) + dut.read_latency):
            if k < len(stream):
                ctx.set(dut.bus.addr, stream[k])
            await ctx.tick()
            if k + 1 >= dut.read_latency:
                got.append(ctx.get(dut.bus.rdata.as_signed()))

    _run(dut, testbench)
    weight_values = {addr: -10 - k for k, addr in enumerate(weights)}
    assert got[: len(stream)] == [values.get(a, weight_values.get(a)) for a in stream]


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference-only"])
def test_sim_mode_and_lr_int(training: bool) -> None:
    dut = _dut(training=training)
    seen: dict[str, int] = {}

    async def testbench(ctx: SimulatorContext) -> None:
        await _write(ctx, dut, REGS.MODE, Mode.TRAINING)
        seen["mode"] = await _read(ctx, dut, REGS.MODE)
        seen["port"] = ctx.get(dut.mode)
        seen["status"] = await _read(ctx, dut, REGS.STATUS)
        await _write(ctx, dut, REGS.MODE, 2)
        seen["mode2"] = await _read(ctx, dut, REGS.MODE)
        await _write(ctx, dut, REGS.LR_INT, 0xDEAD_BEEF)
        seen["lr"] = await _read(ctx, dut, REGS.LR_INT) & 0xFFFF_FFFF
        seen["lr_port"] = ctx.get(dut.lr_int)

    _run(dut, testbench)
    mode = Mode.TRAINING if training else Mode.INFERENCE
    assert seen == {
        "mode": mode,
        "port": mode,
        "status": 0 if training else Status.ERR_WRITE,
        "mode2": mode,
        "lr": 0xDEAD_BEEF,
        "lr_port": 0xDEAD_BEEF,
    }


def test_sim_counters() -> None:
    """CYCLES counts busy cycles, the pass counters theirs, EVENTS each layer's input
    events; ``sample_start`` clears them all but STALLS, which any write clears."""
    dut = _dut()
    seen: dict[str, list[int]] = {}
    regs = (REGS.CYCLES, REGS.CYCLES_BACKWARD, REGS.CYCLES_UPDATE, REGS.EVENTS, REGS.EVENTS + 1)

    async def counters(ctx: SimulatorContext) -> list[int]:
        return [await _read(ctx, dut, a) for a in (*regs, REGS.STALLS)]

    async def testbench(ctx: SimulatorContext) -> None:
        pattern = [  # busy, backward, update, events, stall
            (1, 0, 0, 0b01, 1),
            (1, 1, 0, 0b11, 1),
            (1, 1, 0, 0b10, 0),
            (1, 0, 1, 0b00, 1),
            (0, 0, 0, 0b01, 0),
        ]
        for busy, backward, update, events, stall in pattern:
            for port, value in zip(
                (dut.busy, dut.backward, dut.update, dut.events, dut.stall),
                (busy, backward, update, events, stall),
                strict=True,
            ):
                ctx.set(port, value)
            await ctx.tick()
        for port in (dut.busy, dut.backward, dut.update, dut.events, dut.stall):
            ctx.set(port, 0)
        seen["counted"] = await counters(ctx)
        ctx.set(dut.sample_start, 1)
        await ctx.tick()
        ctx.set(dut.sample_start, 0)
        seen["started"] = await counters(ctx)
        await _write(ctx, dut, REGS.STALLS, 0)
        seen["stalls_cleared"] = await counters(ctx)
        ctx.set(dut.dropout_state, 0x1234_5678)
        ctx.set(dut.rounding_state, 0x8765_4321)
        states = (REGS.DROPOUT_STATE, REGS.ROUNDING_STATE)
        seen["states"] = [await _read(ctx, dut, a) & 0xFFFF_FFFF for a in states]

    _run(dut, testbench)
    assert seen == {
        "counted": [4, 2, 1, 3, 2, 3],
        "started": [0, 0, 0, 0, 0, 3],
        "stalls_cleared": [0, 0, 0, 0, 0, 0],
        "states": [0x1234_5678, 0x8765_4321],
    }


def test_init() -> None:
    dut = _dut()
    assert dut.addresses is AMAP
    assert len(dut.bus.addr) == AMAP.addr_bits and len(dut.threshold) == 3
    assert dut.threshold[0].shape().signed and len(dut.weight_rdata) == 3


def test_wrong_arguments() -> None:
    kwargs = {
        "weight_bits": 8,
        "membrane_bits": 12,
        "thr_init": 100,
        "training": True,
        "weight_latency": 5,
    }
    with pytest.raises(TypeError, match=r"addresses must be an rtl\.register_map\.AddressMap"):
        HostBus([6, 10, 4], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="thr_init must be >= 1 and <= 2047, not 0"):
        HostBus(AMAP, **{**kwargs, "thr_init": 0})
    with pytest.raises(ValueError, match="thr_init must be >= 1 and <= 2047, not 2048"):
        HostBus(AMAP, **{**kwargs, "thr_init": 2048})
    with pytest.raises(TypeError, match="training must be a bool, not 1"):
        HostBus(AMAP, **{**kwargs, "training": 1})
    with pytest.raises(ValueError, match="weight_bits must be >= 2 and <= 32, not 33"):
        HostBus(AMAP, **{**kwargs, "weight_bits": 33})
    with pytest.raises(ValueError, match="weight_latency must be >= 0, not -1"):
        HostBus(AMAP, **{**kwargs, "weight_latency": -1})
