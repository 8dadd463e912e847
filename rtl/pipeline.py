"""Small pipelining helpers shared by the datapaths (registers, adder trees, saturation).

Every block aims at one carry chain per cycle (docs/fpga.md, "Timing"): these
helpers make the registers explicit, so that each block can state its latency
as a number that the cycle models and the tests use.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value

__all__ = ["adder_tree", "clamp", "delay", "tree_stages"]


#: Attributes of a register that copies another one to split its fan-out: yosys
#: merges registers with equal inputs (``opt_merge``) unless the cell is marked
#: ``keep``, and ``rtl.synth`` marks the register of every ``keep`` wire.
KEEP = {"keep": 1}


def delay(m: Module, value: Value, cycles: int, name: str, *, keep: bool = False) -> Value:
    """``value`` delayed by ``cycles`` registers (``value`` itself for 0); ``keep``:
    the registers are fan-out copies that synthesis must not merge (:data:`KEEP`)."""
    for k in range(cycles):
        reg = Signal.like(value, name=f"{name}_d{k + 1}", attrs=KEEP if keep else {})
        m.d.sync += reg.eq(value)
        value = reg
    return value


def tree_stages(n_terms: int, levels_per_stage: int) -> int:
    """Cycles :func:`adder_tree` takes for ``n_terms`` terms."""
    levels = max(n_terms - 1, 0).bit_length()
    return max(1, -(-levels // levels_per_stage))


def adder_tree(m: Module, terms: list[Value], levels_per_stage: int, name: str) -> Value:
    """Sum of ``terms`` as a balanced tree, registered after every ``levels_per_stage``
    levels and after the last: :func:`tree_stages` cycles.

    Widths grow by one bit per level (Amaranth's ``+``), so the sum is exact.
    """
    if not terms or levels_per_stage < 1:
        raise ValueError("adder_tree needs terms and at least one level per stage")
    level = 0
    while True:
        if len(terms) > 1:
            pairs = [terms[k] + terms[k + 1] for k in range(0, len(terms) - 1, 2)]
            terms = pairs + terms[len(terms) & ~1 :]
            level += 1
        if len(terms) == 1 or level % levels_per_stage == 0:
            regs = [Signal.like(t, name=f"{name}_l{level}_{k}") for k, t in enumerate(terms)]
            m.d.sync += [r.eq(t) for r, t in zip(regs, terms, strict=True)]
            terms = regs
            if len(terms) == 1:
                return terms[0]


def clamp(value: Value, bits: int) -> Value:
    """``value`` (signed) saturated to ``bits``-bit two's complement.

    Overflow is read off the bits above the sign instead of two comparisons
    with constants: a few LUTs, no carry chains.
    """
    width = len(value)
    if width <= bits:
        return value
    top = value[bits - 1 :]  # must be all zeros or all ones to fit
    hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
    over, under = ~value[-1] & top.any(), value[-1] & ~top.all()
    return Mux(over, hi, Mux(under, lo, value[:bits].as_signed()))
