"""AXI4 read channels (AR and R) as an Amaranth signature, seen from the master.

Why a signature of its own: the weight reader (:mod:`rtl.axi_weight_reader`)
is the first block with an external bus, and the signal names are the contract
with whatever sits on the other side: an interconnect in the FPGA build,
cocotbext-axi's ``AxiRamRead`` in the cocotb bench. The names are the AMBA AXI4
ones (``araddr``, ``arlen``, ..., ``rready``), lower case, so that a member
named ``axi`` flattens to the Verilog ports ``axi__araddr``, ``axi__rdata``, ...
(Amaranth joins a member path with ``__``), which cocotbext-axi's
``AxiReadBus.from_prefix(dut, "axi_")`` finds: cocotb-bus joins prefix and
signal name with ``_``, and ``"axi_" + "_" + "araddr"`` is ``axi__araddr``
(``from_prefix(dut, "axi", bus_separator="__")`` is the same).

Only what a read-only master needs is here: no write channels, no ``aruser`` /
``ruser``, no ``arregion`` (one region). ``arprot``, ``arcache``, ``arlock``
and ``arqos`` are included so that an interconnect sees defined values; a
master that has nothing to say drives the constants of :data:`ARCACHE_NORMAL`
and friends.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl import check_int

__all__ = [
    "ARBURST_INCR",
    "ARCACHE_NORMAL",
    "ARPROT_DATA",
    "AXI_4K",
    "AXI_MAX_BEATS",
    "RRESP_OKAY",
    "AxiReadSignature",
]

#: ``arburst`` of an incrementing burst (FIXED = 0, INCR = 1, WRAP = 2).
ARBURST_INCR = 0b01
#: ``arcache``: normal memory, non-cacheable, bufferable (AMBA's "Normal Non-cacheable
#: Bufferable"): what a DMA-like reader of a table nobody writes meanwhile may ask for.
ARCACHE_NORMAL = 0b0011
#: ``arprot``: unprivileged, secure, data access.
ARPROT_DATA = 0b000
#: ``rresp`` OKAY; EXOKAY is 0b01, SLVERR 0b10, DECERR 0b11 (bit 1 set: an error).
RRESP_OKAY = 0b00
#: Most beats of an INCR burst in AXI4 (``arlen`` is 8 bits).
AXI_MAX_BEATS = 256
#: An INCR burst must not cross a 4 KB address boundary.
AXI_4K = 4096


class AxiReadSignature(wiring.Signature):
    """AXI4 read address and read data channels, from the master's side.

    Members (``Out``: driven by the master)
    --------------------------------------
    araddr : Out(addr_width)
        Byte address of the first beat.
    arlen : Out(8)
        Beats of the burst minus one.
    arsize : Out(3)
        log2 of the bytes per beat.
    arburst : Out(2)
        Burst type (:data:`ARBURST_INCR`).
    arid : Out(id_width)
    arprot : Out(3)
    arcache : Out(4)
    arlock : Out(1)
    arqos : Out(4)
    arvalid : Out(1)
    arready : In(1)
    rdata : In(8 * data_bytes)
        Beat data, byte ``i`` at bits ``[8i, 8i + 8)`` (little endian, as AXI).
    rresp : In(2)
    rlast : In(1)
    rid : In(id_width)
    rvalid : In(1)
    rready : Out(1)
    """

    def __init__(self, addr_width: int, data_bytes: int, *, id_width: int = 1) -> None:
        self._addr_width = check_int("addr_width", addr_width, 1, 64)
        self._data_bytes = check_int("data_bytes", data_bytes, 1, 128)
        if data_bytes & (data_bytes - 1):
            raise ValueError(f"data_bytes must be a power of two, not {data_bytes}")
        self._id_width = check_int("id_width", id_width, 1, 32)
        super().__init__(
            {
                "araddr": Out(addr_width),
                "arlen": Out(8),
                "arsize": Out(3),
                "arburst": Out(2),
                "arid": Out(id_width),
                "arprot": Out(3),
                "arcache": Out(4),
                "arlock": Out(1),
                "arqos": Out(4),
                "arvalid": Out(1),
                "arready": In(1),
                "rdata": In(8 * data_bytes),
                "rresp": In(2),
                "rlast": In(1),
                "rid": In(id_width),
                "rvalid": In(1),
                "rready": Out(1),
            }
        )

    @property
    def addr_width(self) -> int:
        return self._addr_width

    @property
    def data_bytes(self) -> int:
        return self._data_bytes

    @property
    def id_width(self) -> int:
        return self._id_width

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, AxiReadSignature)
            and self._addr_width == other._addr_width
            and self._data_bytes == other._data_bytes
            and self._id_width == other._id_width
        )

    def __hash__(self) -> int:
        return hash((AxiReadSignature, self._addr_width, self._data_bytes, self._id_width))

    def __repr__(self) -> str:
        return (
            f"AxiReadSignature({self._addr_width}, {self._data_bytes}, id_width={self._id_width})"
        )
