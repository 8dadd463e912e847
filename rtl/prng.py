"""xorshift32 in hardware (docs/fixed-point.md, section 7; :class:`golden.prng.XorShift32`).

Three shift-XORs are pure wiring plus 32 XOR gates per shift, so one draw per
cycle costs no arithmetic. The state is a register seeded at reset from the
config (``dropout_seed`` / ``rounding_seed``) and never reseeded, so the
streams continue across samples exactly as golden's do.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl import check_int

__all__ = ["XorShift32", "xorshift32"]

MASK32 = 0xFFFF_FFFF


def xorshift32(x: Value) -> Value:
    """The state after ``x`` (32 bits): ``x ^= x << 13; x ^= x >> 17; x ^= x << 5`` mod 2^32."""
    x = (x ^ (x << 13))[:32]
    x = x ^ (x >> 17)
    return (x ^ (x << 5))[:32]


class XorShift32(wiring.Component):
    """One xorshift32 stream.

    Ports
    -----
    draw : In(1)
        Strobe: advance the state once (the new state is the draw, as in golden).
    value : Out(32)
        The draw a strobe in this cycle takes: the state after the current one.
    state : Out(32)
        The current state (readable over the bus for checking and replay).
    """

    def __init__(self, seed: int) -> None:
        self._seed = check_int("seed", seed, 1, MASK32)
        super().__init__({"draw": In(1), "value": Out(32), "state": Out(32, init=seed)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        state = Signal(32, init=self._seed)
        m.d.comb += [self.state.eq(state), self.value.eq(xorshift32(state))]
        with m.If(self.draw):
            m.d.sync += state.eq(self.value)
        return m
