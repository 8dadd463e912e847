"""The trace port: every fire pass's results, per layer, for debugging against golden/.

Why a port and not a probe of internal signals: the fast simulator builds keep internal
signals private (sim/runner.py), and a board can route the same port to a logic
analyser. With ``hardware.trace`` the accelerator drives one per weight layer
(``trace[l]``); sim/localise.py turns what they carry into step-by-step spikes and
membranes and finds the first place they differ from golden/'s (``ForwardRecord``).
"""

from __future__ import annotations

from amaranth.hdl import signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from rtl import check_int, index_shape

__all__ = ["TraceSignature"]


class TraceSignature(wiring.Signature):
    """One layer's fire-pass results (``blocks`` blocks at most, ``lanes`` neurons each,
    ``tsteps`` steps), seen from the accelerator (every member ``Out``).

    Members
    -------
    valid : Out(1)
        A block of the layer's fire pass this cycle (no back-pressure).
    phase : Out(range(tsteps + 1))
        The sequencer's phase: the pass computes step ``phase - 1``.
    block : Out(range(blocks))
        The results are for neurons ``block * lanes + j``.
    spikes : Out(lanes)
        Their spikes (padding lanes 0).
    membranes : Out(ArrayLayout(signed(membrane_bits), lanes))
        Their membranes after reset, before the next step's decay (golden's
        ``ForwardRecord.membranes``).
    """

    def __init__(self, blocks: int, lanes: int, membrane_bits: int, tsteps: int) -> None:
        check_int("blocks", blocks, 1)
        check_int("lanes", lanes, 1)
        check_int("membrane_bits", membrane_bits, 2)
        check_int("tsteps", tsteps, 1)
        super().__init__(
            {
                "valid": Out(1),
                "phase": Out(range(tsteps + 1)),
                "block": Out(index_shape(blocks)),
                "spikes": Out(lanes),
                "membranes": Out(data.ArrayLayout(signed(membrane_bits), lanes)),
            }
        )
