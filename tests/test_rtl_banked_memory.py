"""rtl.banked_memory.BankedMemory in the Amaranth simulator against a list; its Verilog size."""

from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import ClockDomain, Module, signed
from amaranth.sim import Simulator, SimulatorContext

from rtl.banked_memory import BankedMemory


@pytest.mark.parametrize(("depth", "bank_words"), [(37, 8), (16, 16), (5, 1024)])
@pytest.mark.parametrize("single_port", [False, True], ids=["dual", "single"])
def test_reads_writes_and_latency(depth: int, bank_words: int, single_port: bool) -> None:
    """Random lane writes and reads back to back, across banks: every read returns the word
    with every write presented before its own cycle, READ_LATENCY cycles after its address
    (single-ported: a read in the cycle of a write is stale, so none is checked)."""
    lanes, rng = 3, np.random.default_rng(depth)
    init = rng.integers(-100, 100, (depth, lanes)).tolist()
    dut = BankedMemory(
        signed(8), depth, lanes, bank_words=bank_words, init=init, single_port=single_port
    )
    assert dut.banks == -(-depth // min(bank_words, 1 << (depth - 1).bit_length()))
    model = [list(w) for w in init]
    got: list[tuple[int, list[int], list[int]]] = []  # (address, read, expected)

    async def testbench(ctx: SimulatorContext) -> None:
        history: list[list[list[int]]] = []  # model after each cycle's write
        reads: list[int | None] = []
        for cycle in range(200):
            write = rng.random() < 0.5
            waddr, lane = int(rng.integers(depth)), int(rng.integers(lanes))
            value = int(rng.integers(-128, 128))
            raddr = int(rng.integers(depth)) if rng.random() < 0.8 else None
            if single_port and write:
                raddr = None
            ctx.set(dut.wen, (1 << lane) if write else 0)
            ctx.set(dut.waddr, waddr)
            ctx.set(dut.wdata[lane], value)
            ctx.set(dut.raddr, raddr or 0)
            reads.append(raddr)
            back = cycle - BankedMemory.READ_LATENCY
            if back >= 0 and reads[back] is not None:
                # the read of cycle ``back`` sees the writes presented up to back - 1
                expect = history[back - 1][reads[back]] if back >= 1 else init[reads[back]]
                got.append((reads[back], [ctx.get(dut.rdata[j]) for j in range(lanes)], expect))
            if write:
                model[waddr][lane] = value
            history.append([list(w) for w in model])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert len(got) > 50
    for addr, read, expect in got:
        assert read == expect, f"address {addr}"


def test_wrong_arguments() -> None:
    with pytest.raises(ValueError, match="bank_words must be a power of two"):
        BankedMemory(signed(8), 10, 2, bank_words=12)
    with pytest.raises(ValueError, match="initial words"):
        BankedMemory(signed(8), 2, 1, init=[[1], [2], [3]])


def test_reset_drops_a_write_in_flight() -> None:
    """The write enables keep their reset (the data and address registers have none): a write
    presented in the cycle before a reset never lands, one presented earlier does."""
    dut = BankedMemory(signed(8), 40, 2, bank_words=16, init=[[k, -k] for k in range(40)])
    top = Module()
    top.domains.sync = sync = ClockDomain("sync")
    top.submodules.dut = dut
    got: list[list[int]] = []

    async def testbench(ctx: SimulatorContext) -> None:
        for addr, value in ((21, 99), (22, 77)):  # 22: the cycle before the reset
            ctx.set(dut.waddr, addr)
            ctx.set(dut.wdata[1], value)
            ctx.set(dut.wen, 0b10)
            await ctx.tick()
        ctx.set(dut.wen, 0)
        ctx.set(sync.rst, 1)
        await ctx.tick()
        ctx.set(sync.rst, 0)
        for addr in (21, 22, 23):
            ctx.set(dut.raddr, addr)
            await ctx.tick()
        await ctx.tick().repeat(BankedMemory.READ_LATENCY - 3)
        for _ in range(3):
            got.append([ctx.get(dut.rdata[j]) for j in range(2)])
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert got == [[21, 99], [22, -22], [23, -23]]


def test_verilog_nets_per_bank() -> None:
    """Each bank adds few nets to the Verilog: the design is ``lanes x banks`` copies of a
    bank (768 for 784-1000 at 8 lanes), and Verilator keeps every named net as a C++
    variable (issue 12: a build of the 784-1000-100-10 top compiled for over 20 minutes).
    A bank has its 5 registers, its memory and read data, 3 next-state nets and its OR:
    about 15 nets; decoding the bank anew in every bank, with reset muxes and the port
    objects of ``lib.memory``, took 28."""

    def nets(banks: int) -> int:
        top = BankedMemory(signed(16), banks * 16, 1, bank_words=16)
        text = verilog.convert(top, name="bm", emit_src=False)
        return len(re.findall(r"(?m)^ +(?:wire|reg)\b", text))

    assert nets(6) - nets(2) <= 4 * 16


def test_single_port_bank_does_not_read_while_it_writes() -> None:
    """Single-ported, a bank's read data holds in a cycle with a write to it, as an SPRAM's
    does (yosys maps a bank to one only if the read is disabled then: ``rdwr no_change``)."""
    init = [[k] for k in range(8)]
    dut = BankedMemory(signed(8), 8, 1, bank_words=8, init=init, single_port=True)
    got: list[int] = []

    async def testbench(ctx: SimulatorContext) -> None:
        for raddr, write in ((3, None), (5, (6, 99)), (5, None)):
            ctx.set(dut.raddr, raddr)
            ctx.set(dut.wen, 0 if write is None else 1)
            if write is not None:
                ctx.set(dut.waddr, write[0])
                ctx.set(dut.wdata[0], write[1])
            await ctx.tick()
        ctx.set(dut.wen, 0)
        await ctx.tick().repeat(BankedMemory.READ_LATENCY - 3)
        for _ in range(3):
            got.append(ctx.get(dut.rdata[0]))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert got == [3, 3, 5]
