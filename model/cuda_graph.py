"""One training step of a fixed batch size, recorded once and replayed: CUDA graphs.

At small batches on a GPU the trainer's time goes to launching kernels, not to running
them: one step of 784-1000-100-10 at T = 20 is several hundred small kernels (the LIF
loops over time steps), each a few microseconds of CPU work to launch and far less to
run. A CUDA graph records the whole step once and replays it with one launch.

What may change between replays and what may not:

- images, labels and dropout masks are copied into the graph's own input buffers
  before each replay; the masks are drawn outside the graph, from the network's mask
  generator, so that a graphed run draws the same masks as an eager one;
- the weights are updated in place (``Tensor.add_``), so the graph keeps writing the
  network's own weight tensors; :meth:`DesireNet.load_weights` replaces them, after
  which the graph must be recorded again;
- the learning rate is a constant inside the recorded kernels: a new rate (the next
  epoch's) records the step again (:meth:`GraphedStep.for_lr`).

``record=False`` runs the same plumbing eagerly (buffers in, step, results out) so
that CPU tests can check it; only the recording itself needs CUDA.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from model.network import DesireNet

__all__ = ["GraphedStep"]

#: eager steps before recording: the first calls allocate cuBLAS workspaces and caches,
#: which must not happen inside the recording
WARMUP_STEPS = 3


class GraphedStep:
    """A train step of batch ``batch`` at learning rate ``lr``, replayed per batch."""

    def __init__(self, net: DesireNet, batch: int, lr: float, record: bool = True) -> None:
        self.net = net
        self.batch = batch
        self.lr = lr
        dev = net.device
        n_in = net.network.layers[0]
        self.images = torch.zeros(batch, n_in, dtype=torch.uint8, device=dev)
        self.labels = torch.zeros(batch, dtype=torch.long, device=dev)
        self.masks = [
            torch.ones(batch, n, dtype=net.dtype, device=dev) for n in net.network.layers[:-1]
        ]
        self.correct = torch.zeros(batch, dtype=torch.bool, device=dev)
        self.local_loss = torch.zeros(len(net.layers), dtype=net.dtype, device=dev)
        #: whether the step is a recorded graph (False: the same step run eagerly)
        self.recorded = record
        self._replay: Callable[[], None] = self._record() if record else self._step

    def _step(self) -> None:
        step = self.net.train_step(self.images, self.labels, self.lr, self.masks)
        self.correct.copy_(step.correct)
        self.local_loss.copy_(step.local_loss)

    def _record(self) -> Callable[[], None]:
        """Warm up on a side stream with the weights put back afterwards, then record."""
        saved = [w.clone() for w in self.net.weights]
        side = torch.cuda.Stream(self.net.device)
        side.wait_stream(torch.cuda.current_stream(self.net.device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self._step()
        torch.cuda.current_stream(self.net.device).wait_stream(side)
        for w, s in zip(self.net.weights, saved, strict=True):
            w.copy_(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step()
        return graph.replay

    def for_lr(self, lr: float) -> GraphedStep:
        """This step, or a newly recorded one when the learning rate changed."""
        if lr == self.lr:
            return self
        return GraphedStep(self.net, self.batch, lr, record=self.recorded)

    def __call__(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Train on one full batch; returns (correct per sample, local loss per layer)."""
        self.images.copy_(images)
        self.labels.copy_(labels)
        for buf, mask in zip(self.masks, self.net.draw_masks(self.batch), strict=True):
            buf.copy_(mask)
        self._replay()
        return self.correct, self.local_loss
