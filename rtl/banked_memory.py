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

Size of the generated code. The register structure above is ``lanes x banks``
copies (768 banks for 784-1000 at 8 lanes), so every net per bank counts: in
Verilog, and more in the C++ that Verilator makes of it (most with
``--public-flat-rw``, which keeps every named net as a variable). Each lane
therefore decodes its bank once, into a one-hot vector per access (a bank's
enable is one bit of it, not a comparator of its own per use); the data and
address registers have no reset (nothing reads them before a read or write
has loaded them, and synthesis needs no reset net to them), only the write
enables do, so that a write in flight at a reset is dropped; and each bank is
a :class:`~amaranth.hdl.MemoryInstance` driven by these registers directly,
without the port objects of :class:`~amaranth.lib.memory.Memory`, whose
signals are one more alias net each. The hardware is the same block RAMs and
registers (the one-hot decoders are what synthesis made of the per-bank
comparators anyway). 784-1000 at 8 lanes (bench/verilog_size.py): 22,100 ->
11,355 declared nets, Verilog without the memory initialisers 2.4 -> 1.3 MB;
Verilator's C++ with ``--public-flat-rw`` 13.8 -> 7.5 MB, compiled in 93 -> 50
CPU seconds with ``--output-split-cfuncs 1000`` (without it, gcc spends minutes
on each of the 8,000-line functions Verilator makes by default, before and
after); with ``--no-public-flat-rw`` 6.4 -> 3.9 MB.

Single-ported banks (``single_port``: ``hardware.weight_ports = 1``). The iCE40
UltraPlus's 1 Mbit of weight storage is four SPRAMs, each one port of 16K x 16 bits
with one address for reads and writes. A bank then has one address register, loaded
from the write address in a cycle with a write to the bank and from the read address
otherwise, and the bank does not read while it writes (the SPRAM's data output holds,
yosys' ``rdwr no_change``); the bank carries ``ram_style = "huge"``, which asks yosys'
``memory_libmap`` for an SPRAM. The cost: a read presented in the cycle of a write to
its lane's bank returns stale data (the neuron core writes weights only while idle,
when nothing reads them but the host).
"""

from __future__ import annotations

from amaranth.hdl import Const, MemoryData, MemoryInstance, Module, Mux, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from rtl import check_int, index_shape
from rtl.pipeline import KEEP, delay

__all__ = ["SPRAM_WORDS", "BankedMemory"]

#: Words of 16 bits in one iCE40 UltraPlus SPRAM (SB_SPRAM256KA): a single-ported bank's
#: depth.
SPRAM_WORDS = 16384


def _register(m: Module, value: Value, name: str, *, keep: bool = False) -> Signal:
    """``value`` one cycle later, in a register without reset (data and addresses only:
    their value matters only once an access has loaded them)."""
    reg = Signal.like(value, name=name, attrs=KEEP if keep else {}, reset_less=True)
    m.d.sync += reg.eq(value)
    return reg


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

    ``single_port``: one address per bank (module docstring); a read in a cycle with a
    write to its lane is stale.
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
        single_port: bool = False,
    ) -> None:
        self._shape = shape
        self._depth = check_int("depth", depth, 1)
        self._lanes = check_int("lanes", lanes, 1)
        check_int("bank_words", bank_words, 2)
        if bank_words & (bank_words - 1):
            raise ValueError(f"bank_words must be a power of two, not {bank_words}")
        self._bank_words = min(bank_words, 1 << ceil_log2(max(depth, 2)))
        self._single_port = single_port
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
        # the bank of the read at its data, one-hot (bit b: bank b; none past the last)
        r_bank = self.raddr[low:]
        for k in range(3):
            r_bank = _register(m, r_bank, f"r_bank_d{k + 1}")
        r_sel = Signal(n_banks, name="r_sel")
        m.d.comb += r_sel.eq(Const(1, 1) << r_bank)
        for j in range(self._lanes):
            # one register per lane between the ports and the lane's banks: two levels of
            # fan-out (lanes, then banks) instead of one net to every bank
            raddr = _register(m, self.raddr, f"raddr{j}_d1", keep=True)
            waddr = _register(m, self.waddr, f"waddr{j}_d1", keep=True)
            wdata = _register(m, self.wdata[j], f"wdata{j}_d1")
            wen = delay(m, self.wen[j], 1, f"wen{j}")
            # the bank each access is for, one-hot (a write's is 0 without its enable)
            w_hit, r_hit = Signal(n_banks, name=f"w_hit{j}"), Signal(n_banks, name=f"r_hit{j}")
            m.d.comb += [w_hit.eq(wen << waddr[low:]), r_hit.eq(Const(1, 1) << raddr[low:])]
            lane_init = [word[j] for word in self._init]
            merged: Value | None = None
            for b in range(n_banks):
                size = min(bw, self._depth - b * bw)
                words = max(size, 2)
                wd = Signal(self._shape, name=f"wdata{j}_{b}", reset_less=True)
                we = Signal(name=f"wen{j}_{b}")
                word = Signal(self._shape, name=f"word{j}_{b}")  # the block RAM's read data
                attrs = {"ram_style": "huge"} if self._single_port else None
                bank = MemoryInstance(
                    data=MemoryData(
                        shape=self._shape, depth=words, init=lane_init[b * bw : b * bw + size]
                    ),
                    attrs=attrs,
                )
                wa = Signal(range(words), name=f"waddr{j}_{b}", attrs=KEEP, reset_less=True)
                ra = wa  # single-ported: one address register for both
                if not self._single_port:
                    ra = Signal(range(words), name=f"raddr{j}_{b}", attrs=KEEP, reset_less=True)
                bank.write_port(domain="sync", addr=wa, data=wd, en=we)
                r_en = ~we if self._single_port else Const(1)
                bank.read_port(domain="sync", addr=ra, data=word, en=r_en, transparent_for=())
                m.submodules[f"lane{j}_bank{b}"] = bank
                m.d.sync += we.eq(w_hit[b])
                with m.If(w_hit[b]):
                    m.d.sync += [wa.eq(waddr[:low]), wd.eq(wdata)]
                if self._single_port:
                    with m.Elif(r_hit[b]):
                        m.d.sync += ra.eq(raddr[:low])
                else:
                    with m.If(r_hit[b]):
                        m.d.sync += ra.eq(raddr[:low])
                q = Signal(self._shape, name=f"rdata{j}_{b}", reset_less=True)
                m.d.sync += q.eq(Mux(r_sel[b], word, 0))
                merged = q if merged is None else merged | q
            m.d.sync += self.rdata[j].eq(merged)
        return m
