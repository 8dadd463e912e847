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

from rtl import check_int

__all__ = ["DATA_BITS", "AddressMap", "Mode", "RegisterMap", "Status"]

#: Width of the memory-mapped data bus and of every register.
DATA_BITS = 32


class Status(enum.IntFlag):
    """Bits of the ``STATUS`` register; the error bits are sticky, write 1 to clear."""

    BUSY = 1  # a sample is running
    RESULT = 2  # a result waits on the result stream
    ERR_BUSY = 4  # a weight or threshold write arrived while busy and was ignored
    ERR_WRITE = 8  # a write to a bad address or of a bad value was ignored


class Mode(enum.IntEnum):
    """Values of the ``MODE`` register."""

    INFERENCE = 0
    TRAINING = 1


class RegisterMap:
    """Word addresses of the registers (bus address MSB = 0).

    ``STATUS`` (RW1C errors), ``CYCLES`` (R: cycles of the last sample, from the
    last pixel to the result), ``STALLS`` (R, any write clears: cycles the host
    offered a pixel that was not accepted), ``THRESHOLD + l`` (RW: threshold of
    layer l, > 0 and inside the membrane range, reset value ``thr_eval``),
    ``EVENTS + l`` (R: input spikes layer l processed in the last sample).
    Training (docs/architecture.md, "Training"): ``MODE`` (RW: bit 0 = train),
    ``LR_INT`` (RW: learning-rate register), ``CYCLES_BACKWARD`` and
    ``CYCLES_UPDATE`` (R: the parts of ``CYCLES`` spent in the desire and update
    passes of the last sample), ``DROPOUT_STATE`` and ``ROUNDING_STATE`` (R: the
    two xorshift32 states, for checking and replay).
    """

    STATUS = 0
    CYCLES = 1
    STALLS = 2
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
        self.size = self.MODE + 6


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
