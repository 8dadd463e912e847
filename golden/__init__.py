"""Bit-accurate integer model of the desire-backpropagation accelerator.

Blocks mirror the hardware: :mod:`golden.encoder`, :mod:`golden.neuron_core`,
:mod:`golden.desire_unit`, :mod:`golden.update_unit`, chained by
:mod:`golden.network`. docs/fixed-point.md is the contract they implement.
"""

from golden.fixed import Constants, constants
from golden.network import GoldenNet, StepRecord, strict_argmax

__all__ = ["Constants", "GoldenNet", "StepRecord", "constants", "strict_argmax"]
