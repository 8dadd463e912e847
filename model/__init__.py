"""Float PyTorch trainer for spiking networks with desire backpropagation.

``model.network`` holds the learning rule (:class:`DesireNet`), ``model.train``
the epoch loop, logging and checkpoints, ``model.plots`` the figures and
``python -m model`` the command line.
"""

from model.network import (
    Desire,
    DesireNet,
    EvalResult,
    ForwardRecord,
    Layer,
    LinearLayer,
    RowDelta,
    StepResult,
    class_activity,
    strict_max_predictions,
)

__all__ = [
    "Desire",
    "DesireNet",
    "EvalResult",
    "ForwardRecord",
    "Layer",
    "LinearLayer",
    "RowDelta",
    "StepResult",
    "class_activity",
    "strict_max_predictions",
]
