"""A large memory as banks of block RAM, every port registered next to its bank.

Why: a neuron core's weight memory (784 x 8 words of 8 x 16 bits at the
default config) takes 50-odd ECP5 block RAMs spread over the die. As one
``Memory`` its address and write data were each one net fanning out to all of
them, and its read data a 13-way multiplexer fed from all of them: single
routes of 13-18 ns in nextpnr, and the router's worst congestion where the
1,664 data wires met (docs/fpga.md, *Timing*). Here every lane is its own
column of banks (1024 x 16 bits each, one block RAM) with its own port
registers; every bank has its own address, write-data and enable registers,
loaded only when the access is for that bank; the copies are marked ``keep``
(:data:`rtl.pipeline.KEEP`), since the lanes' read-address copies have equal
inputs and synthesis would merge them back into one net to every bank; its
read data is registered and zeroed unless selected; and a lane's banks are
OR-ed together into one more register.

Read latency :data:`BankedMemory.READ_LATENCY` = 5 (lane and bank address
registers, bank read, bank register, OR register); a write lands two cycles
after it is presented (the lane and bank registers). A read sees every write presented in an earlier
cycle, not one presented in the same cycle (the accelerator never reads a
word it writes in the same cycle).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from rtl import check_int, index_shape
from rtl.pipeline import KEEP, delay

__all__ = ["BankedMemory"]


class BankedMemory(wiring.Component):
    """``depth`` words of ``lanes`` lanes of ``shape``; each lane its own banks of ``bank_words``.

    Each lane is a separate column of banks, so a lane's read data gathers from
    that column only (a few banks, ``shape``-wide) instead of all the block RAMs
    of the memory converging on one place, which is what congested the router.

    Ports
    -----
    raddr : In(range(depth))
        Read address; the word comes out on ``rdata`` :attr:`READ_LATENCY` cycles later.
    rdata : Out(ArrayLayout(shape, lanes))
    waddr : In(range(depth))
    wdata : In(ArrayLayout(shape, lanes))
    wen : In(lanes)
        Per-lane write enables.
    """

    #: Cycles from ``raddr`` to ``rdata``: lane and bank address registers, block RAM,
    #: bank data register, OR register.
    READ_LATENCY = 5

    def __init__(
        self,
        shape: object,
        depth: int,
        lanes: int,
        *,
        bank_words: int = 1024,
        init: list | None = None,
    ) -> None:
        self._shape = shape
        self._depth = check_int("depth", depth, 1)
        self._lanes = check_int("lanes", lanes, 1)
        check_int("bank_words", bank_words, 2)
        if bank_words & (bank_words - 1):
            raise ValueError(f"bank_words must be a power of two, not {bank_words}")
        self._bank_words = min(bank_words, 1 << ceil_log2(max(depth, 2)))
        self._init = list(init or [])
        if len(self._init) > depth:
            raise ValueError(f"{len(self._init)} initial words for a depth of {depth}")
        layout = data.ArrayLayout(shape, lanes)
        super().__init__(
            {
                "raddr": In(index_shape(depth)),
                "rdata": Out(layout),
                "waddr": In(index_shape(depth)),
                "wdata": In(layout),
                "wen": In(lanes),
            }
        )

    @property
    def banks(self) -> int:
        """Banks per lane."""
        return -(-self._depth // self._bank_words)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        bw, n_banks = self._bank_words, self.banks
        low = ceil_log2(bw)
        r_bank = delay(m, self.raddr >> low, 3, "r_bank")  # the bank of the read at its data
        for j in range(self._lanes):
            # one register per lane between the ports and the lane's banks: two levels of
            # fan-out (lanes, then banks) instead of one net to every bank
            raddr = delay(m, self.raddr, 1, f"raddr{j}", keep=True)
            waddr = delay(m, self.waddr, 1, f"waddr{j}", keep=True)
            wdata = delay(m, self.wdata[j], 1, f"wdata{j}")
            wen = delay(m, self.wen[j], 1, f"wen{j}")
            w_bank, r_bank_now = waddr >> low, raddr >> low
            lane_init = [word[j] for word in self._init]
            outs = []
            for b in range(n_banks):
                size = min(bw, self._depth - b * bw)
                mem = Memory(
                    shape=self._shape,
                    depth=max(size, 2),
                    init=lane_init[b * bw : b * bw + size],
                )
                m.submodules[f"lane{j}_bank{b}"] = mem
                wr, rd = mem.write_port(), mem.read_port()
                wa = Signal(range(max(size, 2)), name=f"waddr{j}_{b}", attrs=KEEP)
                wd = Signal(self._shape, name=f"wdata{j}_{b}")
                we = Signal(name=f"wen{j}_{b}")
                ra = Signal(range(max(size, 2)), name=f"raddr{j}_{b}", attrs=KEEP)
                hit_w = w_bank == b if n_banks > 1 else Const(1)
                m.d.sync += we.eq(hit_w & wen)
                with m.If(hit_w & wen):
                    m.d.sync += [wa.eq(waddr[:low]), wd.eq(wdata)]
                with m.If(r_bank_now == b if n_banks > 1 else Const(1)):
                    m.d.sync += ra.eq(raddr[:low])
                m.d.comb += [wr.addr.eq(wa), wr.data.eq(wd), wr.en.eq(we), rd.addr.eq(ra)]
                q = Signal.like(rd.data, name=f"rdata{j}_{b}")
                m.d.sync += q.eq(Mux(r_bank == b if n_banks > 1 else Const(1), rd.data, 0))
                outs.append(q)
            merged = outs[0]
            for q in outs[1:]:
                merged = merged | q
            m.d.sync += self.rdata[j].eq(merged)
        return m
