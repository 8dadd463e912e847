"""Building blocks of the harnesses: named assertions, reset, history, the stream rules.

Conventions of every harness: it is a :class:`~amaranth.lib.wiring.Component` whose
``In`` ports are the free inputs the solver picks each cycle; it instantiates the
unmodified block and checks its ports with ``Assert`` in the comb domain (a property
of the current cycle, looking back through registers made here). The registers of the
block and of the harness start from their initial values, which Amaranth also uses as
reset values, so the first cycle is the state right after a reset; :func:`no_reset`
keeps the reset low afterwards (a reset in the middle of a sample is out of scope, as in
the simulations: docs/verification.md, known gaps). ``Initial()`` (from
``amaranth.asserts`` in Amaranth 0.5) marks that first cycle, where a history register
holds no history yet.
"""

from __future__ import annotations

from collections.abc import Callable

from amaranth.asserts import Initial
from amaranth.hdl import Assert, Assume, Module, ResetSignal, Signal, Value
from amaranth.lib import stream

__all__ = ["Checks", "delayed", "no_reset", "past", "popcount", "stream_rules"]


class Checks:
    """The assertions of one harness, each under a name that is also its message (so
    that a failure names it: :func:`tests.formal.runner.run`).

    ``only``: emit that one assertion and none of the others (the assumptions stay), so
    that a mutant shows which property it breaks. Call :meth:`close` at the end of
    ``elaborate``: it refuses an ``only`` that names no assertion.
    """

    def __init__(self, m: Module, only: str | None) -> None:
        self._m, self._only = m, only
        self.names: list[str] = []

    def check(self, name: str, test: Value) -> None:
        self.names.append(name)
        if self._only in (None, name):
            self._m.d.comb += Assert(test, name)

    def close(self) -> None:
        if self._only is not None and self._only not in self.names:
            raise ValueError(f"no property {self._only!r}; this harness has {self.names}")


def no_reset(m: Module) -> None:
    """The sync domain's reset stays low (the initial state is the reset state)."""
    m.d.comb += Assume(~ResetSignal())


def past(m: Module, value: Value, name: str) -> Signal:
    """``value`` of the cycle before (in the first cycle: its initial value, 0)."""
    reg = Signal(Value.cast(value).shape(), name=f"past_{name}")
    m.d.sync += reg.eq(value)
    return reg


def delayed(m: Module, value: Value, cycles: int, name: str) -> Value:
    """``value`` of ``cycles`` cycles before (0 before the first cycle)."""
    for k in range(cycles):
        value = past(m, value, f"{name}_{k + 1}")
    return value


def popcount(value: Value) -> Value:
    """Number of set bits of ``value``."""
    total: Value = value[0]
    for k in range(1, len(value)):
        total = total + value[k]
    return total


def stream_rules(
    m: Module,
    port: stream.Interface,
    check: Callable[[str, Value], None] | None,
    *,
    exempt: Value | None = None,
) -> None:
    """Amaranth's stream rules on ``port``: once ``valid`` is high without ``ready``, it
    stays high with the same payload until the transfer.

    ``check``: a :meth:`Checks.check` for a stream the block produces (assertions
    ``stream valid held`` and ``stream payload held``); None for one the block consumes:
    the rules are then assumed, and the harness plays a producer that keeps them.
    ``exempt``: a cycle after which the rule is off (a documented abort, such as the
    scanner's ``start``).
    """
    payload_now = Value.cast(port.payload)
    offered = past(m, port.valid & ~port.ready, f"{port.valid.name}_offered")
    payload = past(m, payload_now, f"{port.valid.name}_payload")
    held = offered & ~Initial()
    if exempt is not None:
        held &= ~past(m, exempt, f"{port.valid.name}_exempt")
    rules = {
        "stream valid held": ~held | port.valid,
        "stream payload held": ~held | (payload_now == payload),
    }
    for name, test in rules.items():
        if check is None:
            m.d.comb += Assume(test)
        else:
            check(name, test)
