"""A large memory as banks of block RAM, every port registered next to its bank.

Why: a neuron core's weight memory (784 x 8 words of 128 bits at the default
config) takes 52 ECP5 block RAMs spread over the die. As one ``Memory`` its
address and write data were each one net fanning out to all of them, and its
read data a 13-way multiplexer fed from all of them: single routes of 13-18 ns
in nextpnr, half the 100 MHz budget twice over (docs/fpga.md, *Timing*).
Here every bank has its own address, write-data and enable registers, loaded
only when the access is for that bank (so synthesis cannot merge the copies),
its read data is registered and zeroed unless selected, and the banks are
OR-ed together into one more register.

Read latency :data:`BankedMemory.READ_LATENCY` = 4 (address, bank read,
bank register, OR register); a write lands one cycle after it is presented
(the bank registers). Reads and writes of different words may go on in the
same cycle; a read of a word written fewer than two cycles before returns
the old value (the accelerator never does that).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from rtl import check_int, index_shape
from rtl.pipeline import delay

__all__ = ["BankedMemory"]


class BankedMemory(wiring.Component):
    """``depth`` words of ``shape`` (``lanes`` write lanes), ``bank_words`` words per bank.

    Ports
    -----
    raddr : In(range(depth))
        Read address; the word comes out on ``rdata`` :attr:`READ_LATENCY` cycles later.
    rdata : Out(shape)
    waddr : In(range(depth))
    wdata : In(shape)
    wen : In(lanes)
        Per-lane write enables (``shape`` is ``lanes`` equal slices).
    """

    #: Cycles from ``raddr`` to ``rdata``: bank address register, block RAM, bank data
    #: register, OR register.
    READ_LATENCY = 4

    def __init__(
        self,
        shape: object,
        depth: int,
        lanes: int,
        *,
        bank_words: int = 512,
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
        super().__init__(
            {
                "raddr": In(index_shape(depth)),
                "rdata": Out(shape),
                "waddr": In(index_shape(depth)),
                "wdata": In(shape),
                "wen": In(lanes),
            }
        )

    def _granularity(self) -> int:
        """Write granularity of one lane: elements of an ArrayLayout, else bits."""
        if isinstance(self._shape, data.ArrayLayout):
            return self._shape.length // self._lanes
        return Shape.cast(self._shape).width // self._lanes

    @property
    def banks(self) -> int:
        return -(-self._depth // self._bank_words)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        bw, n_banks = self._bank_words, self.banks
        low = ceil_log2(bw)
        width = Shape.cast(self.rdata.shape()).width
        r_bank = delay(m, self.raddr >> low, 2, "r_bank")  # the bank of the read at its data
        w_bank = self.waddr >> low
        outs = []
        for b in range(n_banks):
            size = min(bw, self._depth - b * bw)
            mem = Memory(
                shape=self._shape, depth=max(size, 2), init=self._init[b * bw : b * bw + size]
            )
            m.submodules[f"bank{b}"] = mem
            wr = mem.write_port(granularity=self._granularity())
            rd = mem.read_port()
            wa = Signal(range(max(size, 2)), name=f"waddr{b}")
            wd = Signal(width, name=f"wdata{b}")
            we = Signal(self._lanes, name=f"wen{b}")
            ra = Signal(range(max(size, 2)), name=f"raddr{b}")
            hit_w = w_bank == b if n_banks > 1 else 1
            m.d.sync += we.eq(Mux(hit_w, self.wen, 0))
            with m.If(hit_w):
                m.d.sync += [wa.eq(self.waddr[:low]), wd.eq(self.wdata)]
            with m.If((self.raddr >> low) == b if n_banks > 1 else 1):
                m.d.sync += ra.eq(self.raddr[:low])
            m.d.comb += [wr.addr.eq(wa), wr.data.eq(wd), wr.en.eq(we), rd.addr.eq(ra)]
            q = Signal(width, name=f"rdata{b}")
            m.d.sync += q.eq(Mux(r_bank == b if n_banks > 1 else 1, rd.data, 0))
            outs.append(q)
        merged = outs[0]
        for q in outs[1:]:
            merged = merged | q
        m.d.sync += self.rdata.eq(merged)
        return m
