"""The serial host protocol of :class:`rtl.host_link.HostLink`: every constant, defined once.

Plain Python without Amaranth (like :mod:`rtl.register_map`): the link's hardware and
the host runtime (:mod:`desire.host`) both import it, so no command code, length or
byte of the framing is written twice. docs/host.md describes the protocol for people.

**Framing (both directions): SLIP** (RFC 1055). A frame is its bytes followed by
:data:`END`; inside a frame :data:`END` is sent as ``ESC ESC_END`` and :data:`ESC` as
``ESC ESC_ESC``. Why SLIP and not a length prefix: :data:`END` can never occur inside a
frame, so a receiver that lost its place (a host that timed out or was unplugged in the
middle of a command) is back at a frame boundary with one byte, whatever it was
parsing, even inside a run of a thousand weights. An empty frame (two :data:`END` in a
row) is ignored, so the **resync sequence** :data:`RESYNC` (one :data:`END`) may be sent
at any time; the host then sends :attr:`Command.SYNC` with a fresh token and drops every
reply frame until the one that echoes it.

**Commands** (host to board): the first byte of a frame is a :class:`Command`, then its
payload (integers little endian): :data:`PAYLOAD` for the fixed ones; ``WRITE_RUN`` is
its 7-byte header then ``count`` values of ``width`` bytes; ``SAMPLE`` is ``n_in``
pixels, plus the label in ``MODE = TRAINING``.

**Replies** (board to host): one frame per command frame, ``status`` (a :class:`Reply`),
the command byte echoed, then the payload only when ``status`` is :attr:`Reply.OK`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from desire.config import Config
    from rtl.axi_shell import ResultFormat

__all__ = [
    "ADDR_BYTES",
    "COUNT_BYTES",
    "END",
    "ESC",
    "ESC_END",
    "ESC_ESC",
    "MAX_RUN",
    "PAYLOAD",
    "RESYNC",
    "RUN_HEADER",
    "VALUE_BYTES",
    "VERSION",
    "Command",
    "LinkInfo",
    "Reply",
    "Unframer",
    "frame",
    "result_format",
    "value_width",
]

#: Protocol version, sent in the ``SYNC`` reply.
VERSION = 1

#: SLIP: end of frame, escape, and what follows an escape for END / ESC.
END = 0xC0
ESC = 0xDB
ESC_END = 0xDC
ESC_ESC = 0xDD
#: What a host sends to get the board back to a frame boundary (then ``SYNC``).
RESYNC = bytes([END])

#: Bytes of an address, a register value and a run's value count.
ADDR_BYTES = 4
VALUE_BYTES = 4
COUNT_BYTES = 2
#: ``WRITE_RUN`` / ``READ_RUN`` header: address, count, width (bytes per value).
RUN_HEADER = ADDR_BYTES + COUNT_BYTES + 1
#: Most values of one run (``count`` is 16 bits; a host splits longer runs).
MAX_RUN = (1 << (8 * COUNT_BYTES)) - 1


class Command(enum.IntEnum):
    """First byte of a command frame (ASCII letters: readable in a byte dump)."""

    SYNC = 0x53  # 'S' token(1) -> token(1) + LinkInfo; also clears the error output
    READ = 0x52  # 'R' addr(4) -> value(4)
    WRITE = 0x57  # 'W' addr(4) value(4) -> nothing
    WRITE_RUN = 0x42  # 'B' addr(4) count(2) width(1) then count values of width bytes
    READ_RUN = 0x44  # 'D' addr(4) count(2) width(1) -> count values of width bytes
    SAMPLE = 0x58  # 'X' n_in pixels [+ label in training] -> result (ResultFormat)


class Reply(enum.IntEnum):
    """First byte of a reply frame."""

    OK = 0
    UNKNOWN_COMMAND = 1  # the first byte is no Command; the frame was ignored
    BAD_LENGTH = 2  # the frame is too short or too long for its command (or MODE)
    LINE_ERROR = 3  # a UART framing error, overrun or bad escape in the frame
    BAD_ARGUMENT = 4  # a run's width is not 1 .. 4


#: Payload bytes of the fixed-length commands.
PAYLOAD = {
    Command.SYNC: 1,
    Command.READ: ADDR_BYTES,
    Command.WRITE: ADDR_BYTES + VALUE_BYTES,
    Command.READ_RUN: RUN_HEADER,
}


def value_width(bits: int) -> int:
    """Bytes per value of a run for ``bits``-bit two's-complement values (a weight)."""
    if not 1 <= bits <= 8 * VALUE_BYTES:
        raise ValueError(f"bits must be in [1, {8 * VALUE_BYTES}], not {bits}")
    return -(-bits // 8)


def stuff(data: bytes) -> bytes:
    """``data`` with END and ESC escaped (no END appended)."""
    return data.replace(bytes([ESC]), bytes([ESC, ESC_ESC])).replace(
        bytes([END]), bytes([ESC, ESC_END])
    )


def frame(data: bytes) -> bytes:
    """One frame on the line: ``data`` escaped, then END."""
    return stuff(data) + bytes([END])


class Unframer:
    """Splits a byte stream into frames: :meth:`feed` returns the frames completed.

    A frame with a bad escape comes back as ``None`` (the host treats it as garbage);
    empty frames are skipped.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._escaped = False
        self._bad = False

    def feed(self, data: bytes) -> list[bytes | None]:
        frames: list[bytes | None] = []
        for b in data:
            if b == END:
                if self._buf or self._bad:
                    frames.append(None if self._bad or self._escaped else bytes(self._buf))
                self._buf.clear()
                self._escaped = self._bad = False
            elif self._escaped:
                self._escaped = False
                if b in (ESC_END, ESC_ESC):
                    self._buf.append(END if b == ESC_END else ESC)
                else:
                    self._bad = True
            elif b == ESC:
                self._escaped = True
            else:
                self._buf.append(b)
        return frames


@dataclass(frozen=True)
class LinkInfo:
    """What the board says about itself in the ``SYNC`` reply (after the token), so a host
    can refuse to drive a design built for another network."""

    version: int
    n_in: int
    classes: int
    tsteps: int
    lanes: int
    training: bool
    addr_bits: int

    #: Fields of :meth:`to_bytes` in order, with their bytes (little endian).
    FIELDS = (
        ("version", 1),
        ("n_in", 2),
        ("classes", 2),
        ("tsteps", 2),
        ("lanes", 2),
        ("training", 1),
        ("addr_bits", 1),
    )
    SIZE = sum(n for _, n in FIELDS)

    @classmethod
    def for_config(cls, cfg: Config) -> LinkInfo:
        from golden.fixed import constants
        from rtl.register_map import AddressMap

        c, lanes = constants(cfg), cfg.hardware.lanes
        depths = [n * -(-m // lanes) for n, m in zip(c.layers, c.layers[1:], strict=False)]
        return cls(
            VERSION,
            c.layers[0],
            c.layers[-1],
            c.tsteps,
            lanes,
            cfg.hardware.training,
            AddressMap(depths, lanes).addr_bits,
        )

    def to_bytes(self) -> bytes:
        return b"".join(int(getattr(self, f)).to_bytes(n, "little") for f, n in self.FIELDS)

    @classmethod
    def from_bytes(cls, data: bytes) -> LinkInfo:
        if len(data) != cls.SIZE:
            raise ValueError(f"link info has {cls.SIZE} bytes, not {len(data)}")
        values, at = {}, 0
        for f, n in cls.FIELDS:
            values[f] = int.from_bytes(data[at : at + n], "little")
            at += n
        values["training"] = bool(values["training"])
        return cls(**values)


def result_format(cfg: Config) -> ResultFormat:
    """The byte layout of a ``SAMPLE`` reply's payload: the AXI shell's result frame for the
    core's result layout (counts of ``bits(T)`` bits per class, ``cls`` of ``bits(classes)``
    bits); :class:`rtl.host_link.HostLink` checks it equals the core's own layout."""
    from rtl.axi_shell import ResultFormat

    net = cfg.network
    classes = net.layers[-1]
    return ResultFormat(classes, net.tsteps.bit_length(), classes.bit_length())
