"""rtl.axi_shell.AxiShell in the Amaranth simulator: AXI4-Lite, AXI4-Stream and irq.

The testbench helpers are small AXI masters, sources and sinks with random gaps on
every ``valid`` they drive and random stretches of low ``ready`` on every channel the
shell drives (``bready``, ``rready``, ``m_axis.tready``), plus a checker of the AXI
rule that a ``valid`` once high holds still, payload and all, until its handshake.
Results are compared with golden.network.GoldenNet, as in tests/test_rtl_accelerator.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.lib import data
from amaranth.sim import Simulator, SimulatorContext

from desire.config import Config, load_config
from golden.network import GoldenNet, strict_argmax
from rtl.axi_shell import (
    IRQ_SOURCES,
    RESP_OKAY,
    RESP_SLVERR,
    AxiShell,
    ResultFormat,
)
from rtl.register_map import Mode, Status

SMALL = load_config().replace(network={"layers": (20, 12, 6), "tsteps": 6}, hardware={"lanes": 4})
CLOCK = 1e-8
Testbench = Callable[[SimulatorContext], Awaitable[None]]


class AxiLite:
    """AXI-Lite master: AW and W offered after independent random gaps (garbage on the
    payload while ``valid`` is low), B and R taken with random ``ready`` stretches."""

    def __init__(self, dut: AxiShell, rng: np.random.Generator) -> None:
        self.dut, self.bus, self.rng = dut, dut.s_axil, rng

    def _garbage(self) -> int:
        return int(self.rng.integers(0, 1 << 32))

    async def write(self, ctx: SimulatorContext, word: int, value: int, strb: int = 0xF) -> int:
        """Write ``value`` to word address ``word``; returns ``bresp``."""
        bus, addr = self.bus, self.dut.byte_address(word)
        aw_at, w_at = (int(x) for x in self.rng.integers(0, 4, 2))
        aw_done = w_done = False
        t = 0
        while not (aw_done and w_done):
            aw_on, w_on = not aw_done and t >= aw_at, not w_done and t >= w_at
            ctx.set(bus.awvalid, aw_on)
            ctx.set(bus.awaddr, addr if aw_on else self._garbage() & 0xFFF)
            ctx.set(bus.wvalid, w_on)
            ctx.set(bus.wdata, value & 0xFFFF_FFFF if w_on else self._garbage())
            ctx.set(bus.wstrb, strb if w_on else self._garbage() & 0xF)
            _, _, aw_hs, w_hs = await ctx.tick().sample(
                bus.awvalid & bus.awready, bus.wvalid & bus.wready
            )
            aw_done, w_done, t = aw_done or bool(aw_hs), w_done or bool(w_hs), t + 1
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        (resp,) = await self._response(ctx, bus.bvalid, bus.bready, bus.bresp)
        return resp

    async def read(self, ctx: SimulatorContext, word: int) -> tuple[int, int]:
        """``(rdata, rresp)`` of word address ``word``."""
        bus = self.bus
        for _ in range(int(self.rng.integers(0, 3))):
            ctx.set(bus.araddr, self._garbage() & 0xFFF)
            await ctx.tick()
        ctx.set(bus.arvalid, 1)
        ctx.set(bus.araddr, self.dut.byte_address(word))
        await ctx.tick().until(bus.arready)
        ctx.set(bus.arvalid, 0)
        rdata, resp = await self._response(ctx, bus.rvalid, bus.rready, bus.rdata, bus.rresp)
        return rdata, resp

    async def read_ok(self, ctx: SimulatorContext, word: int) -> int:
        value, resp = await self.read(ctx, word)
        assert resp == RESP_OKAY
        return value

    async def _response(
        self, ctx: SimulatorContext, valid: Value, ready: Value, *payload: Value
    ) -> list[int]:
        """Take one transfer with ``ready`` low for a random stretch, then random."""
        ctx.set(ready, 0)
        for _ in range(int(self.rng.integers(0, 8))):
            await ctx.tick()
        while True:
            ctx.set(ready, int(self.rng.random() < 0.6))
            _, _, hs, *values = await ctx.tick().sample(valid & ready, *payload)
            if hs:
                ctx.set(ready, 0)
                return [int(v) for v in values]


async def send_frames(
    ctx: SimulatorContext, port: Any, rng: np.random.Generator, frames: Sequence[Sequence[int]]
) -> None:
    """AXI-Stream source: every frame with ``tlast`` on its last beat, random gaps."""
    width = len(port.tdata)
    for frame in frames:
        for k, x in enumerate(frame):
            if rng.random() < 0.3:  # a gap, with garbage on the payload
                ctx.set(port.tvalid, 0)
                ctx.set(port.tdata, int(rng.integers(0, 1 << width)))
                ctx.set(port.tlast, int(rng.integers(0, 2)))
                await ctx.tick().repeat(int(rng.integers(1, 5)))
            ctx.set(port.tvalid, 1)
            ctx.set(port.tdata, int(x) & ((1 << width) - 1))
            ctx.set(port.tlast, int(k == len(frame) - 1))
            await ctx.tick().until(port.tready)
        ctx.set(port.tvalid, 0)


def sink(port: Any, rng: np.random.Generator, frames: list[list[int]]) -> Testbench:
    """AXI-Stream sink (background): ``tready`` low for random stretches of up to 30
    cycles; appends every frame (by ``tlast``) to ``frames``."""

    async def testbench(ctx: SimulatorContext) -> None:
        current: list[int] = []
        while True:
            ready = int(rng.random() < 0.5)
            ctx.set(port.tready, ready)
            for _ in range(int(rng.integers(1, 30 if not ready else 8))):
                _, _, hs, value, last = await ctx.tick().sample(
                    port.tvalid & port.tready, port.tdata, port.tlast
                )
                if hs:
                    current.append(int(value))
                    if last:
                        frames.append(current)
                        current = []

    return testbench


def hold_checker(dut: AxiShell) -> Testbench:
    """Background: every channel the shell drives keeps ``valid`` and its payload from the
    edge where ``valid`` was high and ``ready`` low to its handshake (AXI's rule)."""
    axil, out = dut.s_axil, dut.m_axis
    channels = [
        ("B", axil.bvalid, axil.bready, [axil.bresp]),
        ("R", axil.rvalid, axil.rready, [axil.rdata, axil.rresp]),
        ("m_axis", out.tvalid, out.tready, [out.tdata, out.tlast]),
    ]
    flat = [x for _, v, r, p in channels for x in (v, r, *p)]

    async def testbench(ctx: SimulatorContext) -> None:
        before: list[int] | None = None
        async for _, _, *values in ctx.tick().sample(*flat):
            now, k = [int(v) for v in values], 0
            for name, _, _, payload in channels:
                n = 2 + len(payload)
                if before is not None and before[k] and not before[k + 1]:
                    assert now[k], f"{name}: valid dropped before its handshake"
                    assert now[k + 2 : k + n] == before[k + 2 : k + n], f"{name}: payload changed"
                k += n
            before = now

    return testbench


def run(
    dut: AxiShell, foreground: list[Testbench], background: list[Testbench], cycles: int
) -> None:
    """Simulate until every foreground testbench is done; fail after ``cycles``."""
    done: list[int] = []

    def finishing(tb: Testbench) -> Testbench:
        async def wrapped(ctx: SimulatorContext) -> None:
            await tb(ctx)
            done.append(1)

        return wrapped

    sim = Simulator(dut)
    sim.add_clock(CLOCK)
    for tb in foreground:
        sim.add_testbench(finishing(tb))
    for tb in [hold_checker(dut), *background]:
        sim.add_testbench(tb, background=True)
    for chunk in range(1, cycles // 1000 + 1):  # stop as soon as the foreground is done
        sim.run_until(chunk * 1000 * CLOCK)
        if len(done) == len(foreground):
            return
    raise AssertionError(f"the simulation did not finish in {cycles} cycles: a hang")


def stronger(cfg: Config, seed: int) -> GoldenNet:
    """A random net whose hidden and output layers spike (as tests/test_rtl_accelerator)."""
    net = GoldenNet.init_random(cfg, seed=seed)
    net.weights = [np.clip(w * 3, -(2**15), 2**15 - 1).astype(np.int32) for w in net.weights]
    return net


def expected(dut: AxiShell, counts: np.ndarray) -> tuple[list[int], int, int]:
    pred = int(strict_argmax(counts))
    cls, valid = (pred, 1) if pred >= 0 else (dut.core.no_class, 0)
    return [int(x) for x in counts], cls, valid


def images(cfg: Config, n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).integers(0, 256, (n, cfg.network.layers[0]))
    x[0] = 0  # a tie: no class
    return x.astype(np.uint8)


# --- pure Python: the result layout and the weight order -----------------------------------


def test_result_format_from_the_layout() -> None:
    dut = AxiShell(SMALL)
    fmt = dut.result_format
    assert fmt == ResultFormat(classes=6, count_bits=3, cls_bits=3)
    assert (fmt.count_bytes, fmt.trailer_bytes, fmt.n_bytes) == (1, 1, 7)
    assert fmt.decode([1, 2, 3, 4, 5, 6, 0x80 | 5]) == ([1, 2, 3, 4, 5, 6], 5, 1)
    assert fmt.decode([0] * 6 + [7]) == ([0] * 6, 7, 0)
    wide = ResultFormat.for_layout(
        data.StructLayout(
            {"counts": data.ArrayLayout(9, 3), "cls": 8, "valid_class": 1}  # 9-bit counts
        )
    )
    assert (wide.count_bytes, wide.trailer_bytes, wide.n_bytes) == (2, 2, 8)
    assert wide.decode([0x34, 0x01, 0, 0, 0xFF, 0x01, 0xAB, 0x80]) == ([0x134, 0, 0x1FF], 0xAB, 1)
    assert "valid_class in bit 7" in fmt.markdown()
    with pytest.raises(ValueError, match="unknown result layout"):
        ResultFormat.for_layout(data.StructLayout({"counts": data.ArrayLayout(3, 2), "cls": 2}))
    with pytest.raises(ValueError, match="a result frame has 7 bytes, not 6"):
        fmt.decode([0] * 6)


def test_weight_beats_follow_the_window() -> None:
    """Beat k writes the k-th weight address of the window (padding lanes 0)."""
    cfg = SMALL.replace(network={"layers": (5, 7, 3)}, hardware={"lanes": 2})
    dut = AxiShell(cfg)
    net = GoldenNet.init_random(cfg, seed=1)
    by_address = {
        dut.core.weight_address(l, o, i): int(w[o, i]) & 0xFFFF_FFFF
        for l, w in enumerate(net.weights)
        for o in range(w.shape[0])
        for i in range(w.shape[1])
    }
    beats = dut.weight_beats(net.weights)
    padding = [
        block * 2 + lane >= n_out
        for n_inp, n_out in ((5, 7), (7, 3))
        for _ in range(n_inp)
        for block in range(-(-n_out // 2))
        for lane in range(2)
    ]
    assert len(beats) == len(padding) == 5 * 4 * 2 + 7 * 2 * 2  # window words x lanes
    assert [b for b, pad in zip(beats, padding, strict=True) if pad] == [0] * (5 + 7)
    real = [b for b, pad in zip(beats, padding, strict=True) if not pad]
    assert real == [v for _, v in sorted(by_address.items())]
    with pytest.raises(ValueError, match="expected 2 weight layers"):
        dut.weight_beats(net.weights[:1])
    with pytest.raises(ValueError, match=r"weights\[1\] has shape"):
        dut.weight_beats([net.weights[0], net.weights[1].T])


def test_ports_and_verilog_names() -> None:
    """AMBA names under the members, flattened with ``__`` (cocotbext-axi's from_prefix)."""
    dut = AxiShell(SMALL)
    names = {".".join(str(p) for p in path) for path, _, _ in dut.signature.flatten(dut)}
    for sig in ("awaddr", "awprot", "wstrb", "bresp", "araddr", "arprot", "rresp", "rready"):
        assert f"s_axil.{sig}" in names
    for port in ("s_axis", "m_axis", "s_axis_weights"):
        assert {f"{port}.{s}" for s in ("tdata", "tvalid", "tready", "tlast")} <= names
    assert "irq" in names
    assert len(dut.s_axil.awaddr) == dut.core.addr_bits + 2
    external = SMALL.replace(
        hardware={"weights": "external", "training": False, "architecture": "shared"}
    )
    members = AxiShell(external).signature.members
    assert "s_axis_weights" not in members and "m_axi" in members


# --- simulation ----------------------------------------------------------------------------


def test_sim_inference_framing_errors_and_registers() -> None:
    """Good and bad frames back to back (short, long, one beat too many, one too few),
    random gaps and back-pressure everywhere, register traffic alongside: every good
    sample's result is exact, the bad ones are never run, ERR_FRAME is set and clears."""
    cfg = SMALL
    net = stronger(cfg, seed=3)
    dut = AxiShell(cfg, net.weights)
    regs, n_in = dut.regs, cfg.network.layers[0]
    rng = np.random.default_rng(7)
    good = images(cfg, 6, seed=2)
    want = [expected(dut, c) for c in net.infer(good)]
    bad = [
        [9] * 5,  # short
        [200] * (2 * n_in + 1),  # long, its tail after n_in + 1 beats a sample's length:
        # dropped up to its tlast, the tail must not run
        [50] * (n_in + 1),  # one too many (a training frame in inference)
        [1] * (n_in - 1),  # one too few
        [3],  # one beat
    ]
    frames: list[list[int]] = []
    for k, img in enumerate(good):
        frames.append([int(x) for x in img])
        if k < len(bad):
            frames.append(bad[k])
    got: list[list[int]] = []
    seen: dict[str, Any] = {"reads": 0}
    host = AxiLite(dut, rng)

    async def source(ctx: SimulatorContext) -> None:
        await send_frames(ctx, dut.s_axis, rng, frames)

    async def registers(ctx: SimulatorContext) -> None:
        thr = net.c.thr_eval
        while len(got) < len(good):  # register traffic while samples stream
            assert await host.read_ok(ctx, regs.THRESHOLD + 1) == thr
            assert await host.write(ctx, regs.THRESHOLD, thr) == RESP_OKAY  # same value
            # a partial strobe: refused, nothing changes, no ERR_WRITE
            assert await host.write(ctx, regs.THRESHOLD, 7, strb=0b0011) == RESP_SLVERR
            assert await host.read_ok(ctx, regs.THRESHOLD) == thr
            assert await host.write(ctx, regs.STALLS, 0) == RESP_OKAY
            status = await host.read_ok(ctx, regs.STATUS)
            assert not status & Status.ERR_WRITE
            seen["reads"] += 1
            seen.setdefault("frame_seen", 0)
            seen["frame_seen"] |= status & Status.ERR_FRAME
        status = await host.read_ok(ctx, regs.STATUS)
        seen["status_end"] = status
        assert await host.write(ctx, regs.STATUS, Status.ERR_FRAME | Status.ERR_BUSY) == RESP_OKAY
        seen["status_cleared"] = await host.read_ok(ctx, regs.STATUS)

    run(dut, [source, registers], [sink(dut.m_axis, rng, got)], cycles=60_000)
    assert [dut.result_format.decode(f) for f in got] == want
    assert seen["reads"] >= 3, "the register traffic must overlap the samples"
    assert seen["status_end"] & Status.ERR_FRAME and seen["frame_seen"]
    assert seen["status_cleared"] & (Status.ERR_FRAME | Status.ERR_BUSY | Status.ERR_WRITE) == 0


def test_sim_training_bad_frames_never_run() -> None:
    """MODE = TRAINING: the label travels with its sample (tlast on the label). Frames
    without the label, with a byte too many or cut short are dropped before the core,
    so counts, weights and PRNG states equal golden's trained on the good ones only."""
    cfg = SMALL
    net = stronger(cfg, seed=3)
    dut = AxiShell(cfg, net.weights)
    regs, c, n_in = dut.regs, net.c, cfg.network.layers[0]
    rng = np.random.default_rng(11)
    lr_int = c.lr_int(0) * 256
    samples = rng.integers(0, 256, (4, n_in)).astype(np.uint8)
    labels = rng.integers(0, cfg.network.layers[-1], 4)
    frames: list[list[int]] = []
    for k, (img, label) in enumerate(zip(samples, labels, strict=True)):
        frames.append([*map(int, img), int(label)])
        frames.append(
            [
                [*map(int, img)],  # no label: an inference-length frame
                [*map(int, img), int(label), 0],  # a byte too many
                [*map(int, img[:7])],  # cut short
                [*map(int, img), int(label), *range(30)],  # long
            ][k]
        )
    got: list[list[int]] = []
    state: dict[str, Any] = {}
    host = AxiLite(dut, rng)
    start = [w.copy() for w in net.weights]

    async def main(ctx: SimulatorContext) -> None:
        assert await host.write(ctx, regs.MODE, Mode.TRAINING) == RESP_OKAY
        assert await host.write(ctx, regs.LR_INT, lr_int) == RESP_OKAY
        for l in range(c.n_linear):
            assert await host.write(ctx, regs.THRESHOLD + l, c.thr_train[l]) == RESP_OKAY
        await send_frames(ctx, dut.s_axis, rng, frames)
        while len(got) < len(samples):
            await ctx.tick()
        state["status"] = await host.read_ok(ctx, regs.STATUS)
        state["prng"] = [
            await host.read_ok(ctx, a) for a in (regs.DROPOUT_STATE, regs.ROUNDING_STATE)
        ]
        state["weights"] = [
            np.array(
                [
                    [
                        await host.read_ok(ctx, dut.core.weight_address(l, o, i))
                        for i in range(w.shape[1])
                    ]
                    for o in range(w.shape[0])
                ]
            )
            for l, w in enumerate(net.weights)
        ]

    run(dut, [main], [sink(dut.m_axis, rng, got)], cycles=80_000)
    for k, (img, label) in enumerate(zip(samples, labels, strict=True)):
        rec = net.train_step(img[None], int(label), lr_int, record=True)
        assert dut.result_format.decode(got[k])[0] == rec.counts[-1].tolist(), f"sample {k}"
    for l, w in enumerate(net.weights):
        assert (w != start[l]).any(), f"layer {l} never changed: the test would prove nothing"
        signed = np.where(
            state["weights"][l] >> 31, state["weights"][l] - (1 << 32), state["weights"][l]
        )
        np.testing.assert_array_equal(signed, w, err_msg=f"layer {l}")
    assert state["prng"] == [net.dropout_rng.state, net.rounding_rng.state]
    assert state["status"] & Status.ERR_FRAME
    assert not state["status"] & (Status.ERR_BUSY | Status.ERR_WRITE)


def test_sim_weight_stream() -> None:
    """Weights over s_axis_weights, one per cycle: a short frame and a long one set
    ERR_FRAME (the long one's weights all land, its extra beats are dropped); samples
    after it are exact. Then the same weights again while samples run: the stream
    waits while the core is busy (no ERR_BUSY) and nothing changes."""
    cfg = SMALL
    net = stronger(cfg, seed=5)
    dut = AxiShell(cfg)  # no weights at elaboration
    regs = dut.regs
    rng = np.random.default_rng(3)
    beats = dut.weight_beats(net.weights)
    good = images(cfg, 4, seed=9)
    want = [expected(dut, c) for c in net.infer(good)]
    got: list[list[int]] = []
    seen: dict[str, Any] = {}
    host = AxiLite(dut, rng)

    async def main(ctx: SimulatorContext) -> None:
        wide = dut.s_axis_weights
        garbage = [int(x) for x in rng.integers(-3000, 3000, 10)]
        await send_frames(ctx, wide, rng, [garbage, [*beats, 1, 2, 3]])
        seen["stalls_load"] = seen["stalls"]  # nothing else ran: one beat a cycle
        seen["status_load"] = await host.read_ok(ctx, regs.STATUS)
        assert await host.write(ctx, regs.STATUS, Status.ERR_FRAME) == RESP_OKAY
        seen["weight"] = await host.read_ok(ctx, dut.core.weight_address(1, 5, 7))
        await send_frames(ctx, dut.s_axis, rng, [[*map(int, img)] for img in good[:2]])
        while len(got) < 1:
            await ctx.tick()
        # the core is busy with sample 1 now: the stream must wait for it
        await send_frames(ctx, wide, rng, [beats])

    async def more_samples(ctx: SimulatorContext) -> None:
        while len(got) < 1:
            await ctx.tick()
        await send_frames(ctx, dut.s_axis, rng, [[*map(int, img)] for img in good[2:]])
        while len(got) < len(good):
            await ctx.tick()
        seen["status_end"] = await host.read_ok(ctx, regs.STATUS)

    def timed() -> Testbench:
        async def tb(ctx: SimulatorContext) -> None:
            port = dut.s_axis_weights
            seen["beats"] = seen["stalls"] = 0
            async for _, _, valid, ready in ctx.tick().sample(port.tvalid, port.tready):
                seen["beats"] += int(valid and ready)
                seen["stalls"] += int(valid and not ready)

        return tb

    run(dut, [main, more_samples], [sink(dut.m_axis, rng, got), timed()], cycles=60_000)
    assert seen["status_load"] & Status.ERR_FRAME
    assert seen["weight"] == int(net.weights[1][5, 7]) & 0xFFFF_FFFF
    assert [dut.result_format.decode(f) for f in got] == want
    assert not seen["status_end"] & (Status.ERR_BUSY | Status.ERR_WRITE | Status.ERR_FRAME)
    assert seen["beats"] == 10 + len(beats) + 3 + len(beats)
    assert seen["stalls_load"] == 0 and seen["stalls"] > 0  # the second load waited


def test_sim_irq_and_registers() -> None:
    """irq = STATUS & IRQ_ENABLE (BUSY excluded): a waiting result, ERR_FRAME and a core
    error (ERR_WRITE) each raise it when enabled, clearing lowers it by the B response."""
    cfg = SMALL
    net = stronger(cfg, seed=3)
    dut = AxiShell(cfg, net.weights)
    regs, n_in = dut.regs, cfg.network.layers[0]
    rng = np.random.default_rng(5)
    host = AxiLite(dut, rng)
    seen: dict[str, Any] = {}
    out = dut.m_axis

    async def irq_within(ctx: SimulatorContext, cycles: int) -> bool:
        for _ in range(cycles):
            if ctx.get(dut.irq):
                return True
            await ctx.tick()
        return bool(ctx.get(dut.irq))

    async def main(ctx: SimulatorContext) -> None:
        ctx.set(out.tready, 0)
        assert await host.write(ctx, regs.IRQ_ENABLE, 0xFFFF_FFFF) == RESP_OKAY
        seen["enable"] = await host.read_ok(ctx, regs.IRQ_ENABLE)
        seen["idle_irq"] = ctx.get(dut.irq)
        assert await host.write(ctx, regs.IRQ_ENABLE, Status.RESULT) == RESP_OKAY
        await send_frames(ctx, dut.s_axis, rng, [[7] * n_in])
        seen["result_irq"] = await irq_within(ctx, 2000)
        seen["result_status"] = await host.read_ok(ctx, regs.STATUS)
        ctx.set(out.tready, 1)
        await ctx.tick().until(out.tvalid & out.tlast)
        ctx.set(out.tready, 0)
        await ctx.tick().repeat(2)
        seen["taken_irq"] = ctx.get(dut.irq)
        # ERR_FRAME: not enabled, then enabled, then cleared
        await send_frames(ctx, dut.s_axis, rng, [[1] * 3])
        seen["masked_irq"] = await irq_within(ctx, 20)
        assert await host.write(ctx, regs.IRQ_ENABLE, Status.ERR_FRAME) == RESP_OKAY
        seen["frame_irq"] = await irq_within(ctx, 2)
        assert await host.write(ctx, regs.STATUS, Status.ERR_FRAME) == RESP_OKAY
        seen["frame_cleared_irq"] = ctx.get(dut.irq)
        # a core error, seen through the shell's own STATUS reads
        assert await host.write(ctx, regs.IRQ_ENABLE, Status.ERR_WRITE) == RESP_OKAY
        assert await host.write(ctx, regs.THRESHOLD, 0) == RESP_OKAY  # refused: ERR_WRITE
        seen["write_irq"] = await irq_within(ctx, 30)
        assert await host.write(ctx, regs.STATUS, Status.ERR_WRITE) == RESP_OKAY
        seen["write_cleared_irq"] = ctx.get(dut.irq)
        await ctx.tick().repeat(20)  # no stale STATUS read brings it back
        seen["write_later_irq"] = ctx.get(dut.irq)
        seen["status"] = await host.read_ok(ctx, regs.STATUS)

    run(dut, [main], [], cycles=20_000)
    assert seen["enable"] == IRQ_SOURCES == 0b111110
    assert seen["idle_irq"] == 0
    assert seen["result_irq"] and seen["result_status"] & Status.RESULT
    assert seen["taken_irq"] == 0
    assert not seen["masked_irq"] and seen["frame_irq"] and seen["frame_cleared_irq"] == 0
    assert seen["write_irq"] and seen["write_cleared_irq"] == 0 and seen["write_later_irq"] == 0
    assert seen["status"] == 0


def test_sim_mode_write_waits_for_the_frame() -> None:
    """A MODE write while a checked frame goes into the core waits until the frame is in,
    so the core runs it in the mode it was checked for (a MODE change mid-frame would
    have the core wait for a label: a hang)."""
    cfg = SMALL
    net = stronger(cfg, seed=3)
    dut = AxiShell(cfg, net.weights)
    regs, n_in = dut.regs, cfg.network.layers[0]
    rng = np.random.default_rng(2)
    host = AxiLite(dut, rng)
    got: list[list[int]] = []
    img = images(cfg, 2, seed=4)[1]
    seen: dict[str, Any] = {}

    async def main(ctx: SimulatorContext) -> None:
        src = dut.s_axis
        for k, x in enumerate(img):  # the whole frame in back to back
            ctx.set(src.tvalid, 1)
            ctx.set(src.tdata, int(x))
            ctx.set(src.tlast, int(k == n_in - 1))
            await ctx.tick().until(src.tready)
        ctx.set(src.tvalid, 0)
        # the frame is now checked and passed on: a MODE write waits until it is in the
        # core, which is busy by then and refuses it (ERR_BUSY), as the bare core would
        assert await host.write(ctx, regs.MODE, Mode.TRAINING) == RESP_OKAY
        while len(got) < 1:
            await ctx.tick()
        seen["mode"] = await host.read_ok(ctx, regs.MODE)
        seen["status"] = await host.read_ok(ctx, regs.STATUS)
        assert await host.write(ctx, regs.MODE, Mode.TRAINING) == RESP_OKAY  # core free now
        seen["mode_after"] = await host.read_ok(ctx, regs.MODE)

    run(dut, [main], [sink(dut.m_axis, rng, got)], cycles=10_000)
    assert dut.result_format.decode(got[0]) == expected(dut, net.infer(img[None])[0])
    assert seen["mode"] == Mode.INFERENCE and seen["mode_after"] == Mode.TRAINING
    assert seen["status"] & (Status.ERR_FRAME | Status.ERR_BUSY) == Status.ERR_BUSY
