"""AXI4 channels as Amaranth signatures, seen from the master: read (AR, R), write (AW, W,
B), and both in one.

Why signatures of their own: the weight reader (:mod:`rtl.axi_weight_reader`)
is the first block with an external bus, and the signal names are the contract
with whatever sits on the other side: an interconnect in the FPGA build,
cocotbext-axi's ``AxiRamRead`` in the cocotb bench. The names are the AMBA AXI4
ones (``araddr``, ``arlen``, ..., ``rready``), lower case, so that a member
named ``axi`` flattens to the Verilog ports ``axi__araddr``, ``axi__rdata``, ...
(Amaranth joins a member path with ``__``), which cocotbext-axi's
``AxiReadBus.from_prefix(dut, "axi_")`` finds: cocotb-bus joins prefix and
signal name with ``_``, and ``"axi_" + "_" + "araddr"`` is ``axi__araddr``
(``from_prefix(dut, "axi", bus_separator="__")`` is the same).

The write channels (:class:`AxiWriteSignature`: ``awaddr`` ..., ``wdata`` ...,
``bresp`` ...) follow the same rule (``AxiWriteBus.from_prefix(dut, "axi_")``), and
:class:`AxiSignature` holds both under one member (``AxiBus.from_prefix(dut, "axi_")``),
for a top with a reader and a writer (:mod:`rtl.axi_weight_writer`). No ``aruser`` /
``ruser`` / ``awuser`` / ``wuser`` / ``buser``, no ``arregion`` / ``awregion`` (one
region). ``arprot``, ``arcache``, ``arlock`` and ``arqos`` (and their ``aw*`` twins) are
included so that an interconnect sees defined values; a
master that has nothing to say drives the constants of :data:`ARCACHE_NORMAL`
and friends.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl import check_int

__all__ = [
    "ARBURST_INCR",
    "ARCACHE_NORMAL",
    "ARPROT_DATA",
    "AWBURST_INCR",
    "AWCACHE_NORMAL",
    "AWPROT_DATA",
    "AXI_4K",
    "AXI_MAX_BEATS",
    "BRESP_OKAY",
    "RRESP_OKAY",
    "AxiReadSignature",
    "AxiSignature",
    "AxiWriteSignature",
    "connect_part",
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
#: The write channels' counterparts: INCR, normal non-cacheable bufferable (the writer
#: waits for every B response anyway), unprivileged secure data access.
AWBURST_INCR = ARBURST_INCR
AWCACHE_NORMAL = ARCACHE_NORMAL
AWPROT_DATA = ARPROT_DATA
#: ``bresp`` OKAY; SLVERR and DECERR have bit 1 set, as ``rresp``.
BRESP_OKAY = 0b00
#: Most beats of an INCR burst in AXI4 (``arlen`` is 8 bits).
AXI_MAX_BEATS = 256
#: An INCR burst must not cross a 4 KB address boundary.
AXI_4K = 4096


def _read_members(addr_width: int, data_bytes: int, id_width: int) -> dict[str, object]:
    return {
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


def _write_members(addr_width: int, data_bytes: int, id_width: int) -> dict[str, object]:
    return {
        "awaddr": Out(addr_width),
        "awlen": Out(8),
        "awsize": Out(3),
        "awburst": Out(2),
        "awid": Out(id_width),
        "awprot": Out(3),
        "awcache": Out(4),
        "awlock": Out(1),
        "awqos": Out(4),
        "awvalid": Out(1),
        "awready": In(1),
        "wdata": Out(8 * data_bytes),
        "wstrb": Out(data_bytes),
        "wlast": Out(1),
        "wvalid": Out(1),
        "wready": In(1),
        "bresp": In(2),
        "bid": In(id_width),
        "bvalid": In(1),
        "bready": Out(1),
    }


def _checked(addr_width: int, data_bytes: int, id_width: int) -> tuple[int, int, int]:
    check_int("addr_width", addr_width, 1, 64)
    check_int("data_bytes", data_bytes, 1, 128)
    if data_bytes & (data_bytes - 1):
        raise ValueError(f"data_bytes must be a power of two, not {data_bytes}")
    check_int("id_width", id_width, 1, 32)
    return addr_width, data_bytes, id_width


class _AxiChannels(wiring.Signature):
    """A set of AXI4 channels of one geometry; subclasses pick the members."""

    def __init__(self, members: dict[str, object], geometry: tuple[int, int, int]) -> None:
        self._addr_width, self._data_bytes, self._id_width = geometry
        super().__init__(members)

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
        return type(other) is type(self) and (
            self._addr_width,
            self._data_bytes,
            self._id_width,
        ) == (other._addr_width, other._data_bytes, other._id_width)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._addr_width, self._data_bytes, self._id_width))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._addr_width}, {self._data_bytes}, "
            f"id_width={self._id_width})"
        )


class AxiReadSignature(_AxiChannels):
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
        geometry = _checked(addr_width, data_bytes, id_width)
        super().__init__(_read_members(*geometry), geometry)


class AxiWriteSignature(_AxiChannels):
    """AXI4 write address, write data and write response channels, from the master's side.

    Members (``Out``: driven by the master)
    --------------------------------------
    awaddr, awlen, awsize, awburst, awid, awprot, awcache, awlock, awqos : Out
        As the read channel's ``ar*`` (:class:`AxiReadSignature`).
    awvalid : Out(1)
    awready : In(1)
    wdata : Out(8 * data_bytes)
        Beat data, byte ``i`` at bits ``[8i, 8i + 8)``.
    wstrb : Out(data_bytes)
        Byte ``i`` of the beat is written when bit ``i`` is set.
    wlast : Out(1)
        The burst's last beat.
    wvalid : Out(1)
    wready : In(1)
    bresp : In(2)
        :data:`BRESP_OKAY`, or an error (bit 1 set).
    bid : In(id_width)
    bvalid : In(1)
    bready : Out(1)
    """

    def __init__(self, addr_width: int, data_bytes: int, *, id_width: int = 1) -> None:
        geometry = _checked(addr_width, data_bytes, id_width)
        super().__init__(_write_members(*geometry), geometry)


class AxiSignature(_AxiChannels):
    """All five AXI4 channels, from the master's side: the members of
    :class:`AxiReadSignature` and :class:`AxiWriteSignature` in one (a port ``axi`` flattens
    to ``axi__araddr`` ... and ``axi__awaddr`` ..., cocotbext-axi's ``AxiBus``)."""

    def __init__(self, addr_width: int, data_bytes: int, *, id_width: int = 1) -> None:
        geometry = _checked(addr_width, data_bytes, id_width)
        members = _read_members(*geometry) | _write_members(*geometry)
        super().__init__(members, geometry)


def connect_part(m: Module, part: object, whole: object) -> None:
    """Wire a master's port ``part`` (e.g. an :class:`AxiReadSignature` interface) to the
    members of the same names of the outward port ``whole`` (e.g. an :class:`AxiSignature`
    member of the enclosing component, as seen from inside it): a reader and a writer
    share one AXI port that way."""
    for path, member, value in part.signature.flatten(part):  # type: ignore[attr-defined]
        (name,) = path
        outer = getattr(whole, name)
        if member.flow == Out:
            m.d.comb += outer.eq(value)
        else:
            m.d.comb += value.eq(outer)
