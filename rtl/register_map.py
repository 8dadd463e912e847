"""Bus addresses of the accelerator: registers, ``STATUS`` bits, ``MODE`` values, weights.

The single definition of every address: the register file (:mod:`rtl.host_bus`)
decodes with it and hosts (tests, cocotb benches) encode with it. Plain Python
without Amaranth, so that host-side code can import it alone.

An address with the MSB clear is a register (:class:`RegisterMap`); with the MSB set
it is a weight, as the fields ``layer | word | lane`` with the lane in the low bits
(:class:`AddressMap`), each as wide as its largest value needs, so that decoding a
weight address is slicing.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from rtl import check_int

__all__ = ["DATA_BITS", "AddressMap", "Mode", "Register", "RegisterMap", "Status"]

#: Width of the memory-mapped data bus and of every register.
DATA_BITS = 32


class Status(enum.IntFlag):
    """Bits of the ``STATUS`` register; the error bits are sticky, write 1 to clear."""

    BUSY = 1  # a sample is running
    RESULT = 2  # a result waits on the result stream
    ERR_BUSY = 4  # a weight or threshold write arrived while busy and was ignored
    ERR_WRITE = 8  # a write to a bad address or of a bad value was ignored
    ERR_MEMORY = 16  # external weight memory answered a read with an error (reset clears)
    ERR_FRAME = 32  # AXI shell only: a stream frame had the wrong length and was dropped


class Mode(enum.IntEnum):
    """Values of the ``MODE`` register."""

    INFERENCE = 0
    TRAINING = 1


@dataclass(frozen=True)
class Register:
    """One register (or a bank of ``count``, one per layer): the single definition that the
    decoder (:class:`rtl.host_bus.HostBus`), the hosts, ``registers.md`` and
    ``registers.h`` are all made from."""

    name: str
    address: int
    access: str
    meaning: str
    count: int = 1


class RegisterMap:
    """Word addresses of the registers (bus address MSB = 0), for a network of
    ``n_layers`` weight layers; every register is an attribute (``regs.STATUS``) and an
    entry of :attr:`registers`, from which :meth:`markdown` and :meth:`c_header` are made.
    """

    STATUS = 0
    CYCLES = 1
    STALLS = 2
    IRQ_ENABLE = 3  # AXI shell only (rtl/axi_shell.py): the bare core reads 0, refuses writes
    THRESHOLD = 4

    def __init__(self, n_layers: int) -> None:
        self.n_layers = check_int("n_layers", n_layers, 1)
        self.EVENTS = self.THRESHOLD + n_layers
        self.MODE = self.EVENTS + n_layers
        self.LR_INT = self.MODE + 1
        self.CYCLES_BACKWARD = self.MODE + 2
        self.CYCLES_UPDATE = self.MODE + 3
        self.DROPOUT_STATE = self.MODE + 4
        self.ROUNDING_STATE = self.MODE + 5
        self.WEIGHT_BASE = self.MODE + 6
        self.size = self.MODE + 7
        status_bits = ", ".join(f"bit {b.value.bit_length() - 1} {b.name}" for b in Status)
        self.registers = (
            Register("STATUS", self.STATUS, "R / W1C", f"{status_bits}; errors sticky"),
            Register(
                "CYCLES", self.CYCLES, "R", "cycles of the last sample (last pixel to result)"
            ),
            Register(
                "STALLS", self.STALLS, "R / W clears", "cycles a pixel was offered, not taken"
            ),
            Register(
                "IRQ_ENABLE",
                self.IRQ_ENABLE,
                "RW",
                "AXI shell: bit b puts STATUS bit b (not BUSY) on irq; the bare core reads 0",
            ),
            Register(
                "THRESHOLD",
                self.THRESHOLD,
                "RW",
                "threshold of layer l: in (0, 2^(membrane_bits-1)), else ERR_WRITE",
                n_layers,
            ),
            Register(
                "EVENTS", self.EVENTS, "R", "input spikes layer l took in the last sample", n_layers
            ),
            Register("MODE", self.MODE, "RW", "0 inference, 1 training (training builds)"),
            Register("LR_INT", self.LR_INT, "RW", "learning-rate register (training)"),
            Register(
                "CYCLES_BACKWARD", self.CYCLES_BACKWARD, "R", "CYCLES spent in the desire pass"
            ),
            Register("CYCLES_UPDATE", self.CYCLES_UPDATE, "R", "CYCLES spent in the update pass"),
            Register(
                "DROPOUT_STATE", self.DROPOUT_STATE, "R", "xorshift32 state of the dropout stream"
            ),
            Register(
                "ROUNDING_STATE",
                self.ROUNDING_STATE,
                "R",
                "xorshift32 state of the rounding stream",
            ),
            Register(
                "WEIGHT_BASE",
                self.WEIGHT_BASE,
                "RW",
                "byte address of the weight table in external memory (weights = external)",
            ),
        )

    def markdown(self) -> str:
        """The register table in Markdown (``registers.md`` beside the Verilog)."""
        rows = ["| address | name | access | meaning |", "|---|---|---|---|"]
        for r in self.registers:
            where = str(r.address) if r.count == 1 else f"{r.address} + l (l < {r.count})"
            name = r.name if r.count == 1 else f"{r.name}[l]"
            rows.append(f"| {where} | {name} | {r.access} | {r.meaning} |")
        return "\n".join(rows) + "\n"

    def c_header(self, prefix: str = "DESIRE") -> str:
        """``#define``s of every register address and ``STATUS`` bit (``registers.h``)."""
        guard = f"{prefix}_REGISTERS_H"
        lines = [f"#ifndef {guard}", f"#define {guard}", ""]
        for r in self.registers:
            lines.append(f"#define {prefix}_{r.name} {r.address}u  /* {r.access}: {r.meaning} */")
            if r.count > 1:
                lines.append(f"#define {prefix}_{r.name}_COUNT {r.count}u")
        lines += [f"#define {prefix}_STATUS_{b.name} {b.value}u" for b in Status]
        lines += [f"#define {prefix}_MODE_{m.name} {m.value}u" for m in Mode]
        lines += [f"#define {prefix}_REGISTER_COUNT {self.size}u", "", f"#endif /* {guard} */"]
        return "\n".join(lines) + "\n"


def _bits(n: int) -> int:
    """Bits of an index into ``n >= 1`` items (0 for one item)."""
    return (n - 1).bit_length()


class AddressMap:
    """The whole bus address space: :attr:`regs` and the weights of ``depths[l]`` words
    of ``lanes`` lanes per layer ``l``.

    Attributes
    ----------
    regs : RegisterMap
    lane_bits, word_bits, layer_bits : int
        Widths of the weight address fields, lane lowest.
    addr_bits : int
        Width of a bus address: the MSB, then the wider of the register and the
        weight fields.
    """

    def __init__(self, depths: Sequence[int], lanes: int) -> None:
        if isinstance(depths, str | bytes) or not isinstance(depths, Sequence) or not depths:
            raise TypeError(f"depths must be a non-empty sequence of integers, not {depths!r}")
        self._depths = tuple(check_int(f"depths[{l}]", d, 1) for l, d in enumerate(depths))
        self._lanes = check_int("lanes", lanes, 1)
        self.regs = RegisterMap(len(depths))
        self.lane_bits = _bits(lanes)
        self.word_bits = max(_bits(d) for d in self._depths)
        self.layer_bits = _bits(len(depths))
        fields = self.layer_bits + self.word_bits + self.lane_bits
        self.addr_bits = 1 + max(_bits(self.regs.size), fields)

    @property
    def depths(self) -> tuple[int, ...]:
        """Weight words per layer."""
        return self._depths

    @property
    def lanes(self) -> int:
        return self._lanes

    def weight(self, layer: int, word: int, lane: int) -> int:
        """Bus address of lane ``lane`` of weight word ``word`` of layer ``layer``."""
        check_int("layer", layer, 0, len(self._depths) - 1)
        check_int("word", word, 0, self._depths[layer] - 1)
        check_int("lane", lane, 0, self._lanes - 1)
        field = (((layer << self.word_bits) | word) << self.lane_bits) | lane
        return (1 << (self.addr_bits - 1)) | field
