"""Whether a network's layer sizes fit a dataset: checked before a run writes anything.

Without this check a 100-input network meets 784-pixel images only inside the first
matrix product, after the run folder was made; here it is one line and exit status 2.
"""

from __future__ import annotations

from collections.abc import Sequence

from desire.config import ConfigError

__all__ = ["check_fits_data"]


def check_fits_data(layers: Sequence[int], n_inputs: int, n_classes: int, dataset: str) -> None:
    """Refuse a first layer that is not one neuron per pixel, or too few output neurons."""
    if layers[0] != n_inputs:
        raise ConfigError(
            f"layers {list(layers)}: the first layer must have {n_inputs} neurons, "
            f"one per pixel of {dataset}"
        )
    if layers[-1] < n_classes:
        raise ConfigError(
            f"layers {list(layers)}: the output layer needs at least {n_classes} neurons, "
            f"one per class of {dataset}"
        )
