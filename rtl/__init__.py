"""Amaranth RTL of the desire-backpropagation accelerator.

Blocks mirror golden/: :mod:`rtl.encoder`, :mod:`rtl.neuron_core`, :mod:`rtl.desire_unit`,
:mod:`rtl.update_unit` and :mod:`rtl.prng`, chained by :mod:`rtl.accelerator`;
:mod:`rtl.verilog` writes Verilog for a config.
docs/fixed-point.md is the contract, docs/architecture.md the design.
"""

from collections.abc import Sequence

__all__ = ["check_int", "check_layer_sizes", "index_shape"]


def check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    """``value`` if it is an int in [lo, hi]; TypeError / ValueError naming ``name`` otherwise."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        upper = "" if hi is None else f" and <= {hi}"
        raise ValueError(f"{name} must be >= {lo}{upper}, not {value}")
    return value


def check_layer_sizes(layers: object) -> tuple[int, ...]:
    """``layers`` (neuron counts, input first) as a tuple of at least two positive ints;
    TypeError / ValueError otherwise."""
    if isinstance(layers, str | bytes) or not isinstance(layers, Sequence) or len(layers) < 2:
        raise TypeError(f"layers must be a sequence of at least 2 layer sizes, not {layers!r}")
    return tuple(check_int(f"layers[{j}]", n, 1) for j, n in enumerate(layers))


def index_shape(n: int) -> range:
    """Shape of an index into ``n`` items, at least one bit wide.

    A one-item index would be zero bits wide, which yosys prints as ``[-1:0]``:
    a two-bit, never-driven vector in Verilog (X in simulation). Blocks with a
    single word or lane (``n_out <= lanes``, ``lanes == 1``) need this.
    """
    return range(max(n, 2))
