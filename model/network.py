"""Float trainer core: a spiking network trained with desire backpropagation.

The semantics follow ``docs/reference-semantics.md`` (the authors' reference
implementation) exactly. How far batch size 1 reproduces the reference depends
on the float format, because spikes are threshold decisions:

- float32 (the reference's format, the default): the input encoding is the
  reference's operation for operation, so input spikes are identical; spikes
  and desires stay identical step by step until a membrane lies within float32
  rounding of the threshold, since matrix products here sum in another order
  than the reference's ``addmv`` (and weights then drift apart by rounding).
  In 12,300 online Fashion-MNIST samples measured on a CPU not one spike or
  desire differed (``docs/results.md``, ``tests/test_model_reference.py``); on
  a GPU it has not been measured.
- float64: *not* the reference sample for sample. ``x / 255`` summed in float64
  crosses the threshold at other steps than in float32 for 11 pixel values
  (17, 34, 60, 105, 136, 153, 170, 187, 195, 210, 225), which 99.7 % of the
  Fashion-MNIST training images contain, so input spikes differ from the first
  sample on. It computes the same semantics with less rounding.

Everything is vectorised over a batch dimension ``B``: a batch applies the
*sum* of its per-sample weight updates once, computed from the weights before
the batch.

Because there is no feedback between layers, each layer's whole spike train
can be computed before the next layer starts: the synaptic currents of all
``T`` steps are then one matrix product, and the only Python loop left is the
elementwise LIF recurrence over time steps. The one-step synaptic delay
between linear layers becomes a shift of the spike train by one step.

Recorded tensors (:class:`ForwardRecord`, :class:`Desire`) use time-major
layouts ``(T, B, n)`` so that a fixed-point path can mirror them with integer
tensors and compare step by step.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from desire.config import Config, Network

__all__ = [
    "Desire",
    "DesireNet",
    "EvalResult",
    "ForwardRecord",
    "Layer",
    "LinearLayer",
    "StepResult",
    "class_activity",
    "strict_max_predictions",
]


class Layer(ABC):
    """Synaptic part of one layer: everything that depends on the connectivity.

    Neuron dynamics (LIF, dropout, traces, desire ternarisation) are the same
    for every layer type and live in :class:`DesireNet`; a layer only maps
    spikes to currents, errors back to its inputs, and spikes and traces to a
    weight change. A convolutional layer would implement the same four methods
    on flattened neuron vectors.
    """

    weight: Tensor

    @property
    @abstractmethod
    def in_features(self) -> int:
        """Number of presynaptic neurons (flattened)."""

    @property
    @abstractmethod
    def out_features(self) -> int:
        """Number of postsynaptic neurons (flattened)."""

    @abstractmethod
    def integrate(self, spikes: Tensor) -> Tensor:
        """Synaptic currents ``(N, out)`` for presynaptic values ``(N, in)``."""

    @abstractmethod
    def backpropagate(self, weighted_error: Tensor) -> Tensor:
        """``S_g = sum_h W_hg * x_h`` for ``x`` of shape ``(B, out)``; returns ``(B, in)``."""

    @abstractmethod
    def weight_delta(self, gated_spikes: Tensor, traces: Tensor) -> Tensor:
        """``sum_{b,t} gated[t,b,o] * traces[t,b,i]`` shaped like ``weight``."""

    @abstractmethod
    def hidden_desire_threshold(self, network: Network) -> float:
        """Ternarisation threshold for the desire of this layer's output neurons."""


class LinearLayer(Layer):
    """Fully connected layer without bias; ``weight`` has shape ``(out, in)``."""

    def __init__(self, weight: Tensor) -> None:
        if weight.ndim != 2:
            raise ValueError(f"linear weight must be 2-D, got shape {tuple(weight.shape)}")
        self.weight = weight

    @classmethod
    def kaiming(
        cls,
        n_in: int,
        n_out: int,
        generator: torch.Generator,
        dtype: torch.dtype,
        device: torch.device,
    ) -> LinearLayer:
        """Kaiming-normal init (std sqrt(2 / fan_in)) as in the reference.

        Drawn on the CPU generator so that a seed gives the same weights on
        every device.
        """
        w = torch.randn(n_out, n_in, generator=generator, dtype=torch.float64)
        w *= math.sqrt(2.0 / n_in)
        return cls(w.to(device=device, dtype=dtype))

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def integrate(self, spikes: Tensor) -> Tensor:
        return spikes @ self.weight.T

    def backpropagate(self, weighted_error: Tensor) -> Tensor:
        return weighted_error @ self.weight

    def weight_delta(self, gated_spikes: Tensor, traces: Tensor) -> Tensor:
        post = gated_spikes.reshape(-1, gated_spikes.shape[-1])
        pre = traces.reshape(-1, traces.shape[-1])
        return post.T @ pre

    def hidden_desire_threshold(self, network: Network) -> float:
        return network.desire_thres_hidden


@dataclass
class ForwardRecord:
    """What one forward pass leaves behind, all time-major.

    ``inputs`` is the rate-coded input spike train ``(T, B, n_in)``, binary
    (before dropout scaling), kept so that the encoding, which depends on the
    float format, can be compared step by step. ``spikes[l]`` is the binary
    spike train ``(T, B, n)`` of neuron layer ``l + 1`` (the output of linear
    layer ``l``); ``spikes[l][t]`` is the spike of step ``t`` (the reference's
    index ``t + 1``). ``traces[l]`` ``(T, B, n_in)`` is linear layer ``l``'s
    input trace *after* step ``t`` (the reference's ``r[t + 1]``), so
    ``spikes[l][t]`` and ``traces[l][t]`` belong to the same step. ``traces``
    is empty in evaluation. ``masks[l]`` is the dropout mask ``(B, n)`` of
    neuron layer ``l`` (0 = input); none in evaluation.
    """

    inputs: Tensor
    spikes: list[Tensor]
    traces: list[Tensor]
    masks: list[Tensor] | None

    @property
    def counts(self) -> list[Tensor]:
        """Spike count ``(B, n)`` per neuron layer above the input (no dropout scaling)."""
        return [s.sum(dim=0) for s in self.spikes]


@dataclass
class Desire:
    """Ternary desire of every neuron layer above the input, as active flag and sign.

    ``active[l]``, ``sign[l]`` and ``error[l]`` are ``(B, n)`` for neuron layer
    ``l + 1``. ``sign`` is +1/-1 everywhere (also where inactive), ``error`` is
    the absolute local error ``|(sign + 1) / 2 - c / R|``.
    """

    active: list[Tensor]
    sign: list[Tensor]
    error: list[Tensor]

    def local_loss(self) -> Tensor:
        """Per-layer sum over the batch of the mean local loss per neuron.

        The paper's Eq. 6/14 loss ``0.5 * e^2`` with ``e`` the error against
        the desire target ``(d + 1) / 2``, counted 0 where the desire is 0
        (Eq. 14); normalised by ``R`` as the reference does. Averaging over
        neurons gives the "average local loss per neuron" of the paper's
        Fig. 6. Returns shape ``(L,)``; divide by the sample count.
        """
        return torch.stack(
            [
                (0.5 * (a * e) ** 2).mean(dim=1).sum()
                for a, e in zip(self.active, self.error, strict=True)
            ]
        )


@dataclass
class StepResult:
    """Outcome of one training batch; tensors stay on the device (no host sync)."""

    record: ForwardRecord
    desire: Desire
    deltas: list[Tensor]
    correct: Tensor
    local_loss: Tensor


@dataclass
class EvalResult:
    """Per-sample evaluation outcome; ``predictions`` is -1 where the maximum is tied."""

    predictions: Tensor
    correct: Tensor | None
    counts: list[Tensor]
    local_loss: Tensor | None


def strict_max_predictions(counts: Tensor) -> Tensor:
    """Index of the output neuron with strictly the most spikes, -1 on ties.

    The reference counts a sample as correct only if the label neuron fires
    strictly more than every other neuron, so a tie can never be right.
    """
    top2 = counts.topk(2, dim=1).values
    pred = counts.argmax(dim=1)
    return torch.where(top2[:, 0] > top2[:, 1], pred, torch.full_like(pred, -1))


def class_activity(counts: Tensor, labels: Tensor, n_classes: int) -> tuple[Tensor, Tensor]:
    """Sum of spike counts per class ``(n_classes, n)`` and samples per class ``(n_classes,)``.

    Sums rather than means so that batches can be accumulated on the device.
    """
    labels = labels.to(device=counts.device, dtype=torch.long)
    sums = torch.zeros(n_classes, counts.shape[1], dtype=counts.dtype, device=counts.device)
    sums.index_add_(0, labels, counts)
    n = torch.bincount(labels, minlength=n_classes)
    return sums, n


def _mask(masks: list[Tensor] | None, layer: int) -> Tensor | None:
    """Dropout mask of neuron layer ``layer``; None in evaluation and for the output layer."""
    if masks is None or layer >= len(masks):
        return None
    return masks[layer]


def _apply_mask(values: Tensor, masks: list[Tensor] | None, layer: int) -> Tensor:
    mask = _mask(masks, layer)
    return values if mask is None else values * mask


class DesireNet:
    """A stack of layers with LIF neurons, trained with desire backpropagation.

    ``layers[l]`` connects neuron layer ``l`` (0 = rate-coded input) to neuron
    layer ``l + 1``. ``mask_generator`` (on ``device``) draws dropout masks;
    pass ``masks`` to :meth:`train_step` to use externally drawn ones. Initial
    weights come from a CPU generator seeded with ``seed``, masks from ``seed + 1``.
    """

    def __init__(
        self,
        config: Config,
        layers: list[Layer],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
    ) -> None:
        net = config.network
        sizes = [layers[0].in_features] + [layer.out_features for layer in layers]
        if tuple(sizes) != net.layers:
            raise ValueError(f"layer shapes {sizes} do not match config layers {list(net.layers)}")
        self.config = config
        self.layers = layers
        self.device = torch.device(device)
        self.dtype = dtype
        for layer in layers:  # updates are applied in place: own a copy on the device
            layer.weight = layer.weight.to(device=self.device, dtype=dtype, copy=True)
        self.mask_generator = torch.Generator(device=self.device)
        self.mask_generator.manual_seed(seed + 1)
        # a tensor divisor, made once on the device (see _encode)
        self._pixel_max = torch.full((), 255.0, dtype=dtype, device=self.device)

    @classmethod
    def from_config(
        cls,
        config: Config,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
    ) -> DesireNet:
        """Fresh Kaiming-initialised linear network with the config's layer sizes."""
        gen = torch.Generator().manual_seed(seed)
        sizes = config.network.layers
        dev = torch.device(device)
        layers: list[Layer] = [
            LinearLayer.kaiming(n_in, n_out, gen, dtype, dev)
            for n_in, n_out in itertools.pairwise(sizes)
        ]
        return cls(config, layers, dev, dtype, seed)

    @property
    def network(self) -> Network:
        return self.config.network

    @property
    def weights(self) -> list[Tensor]:
        return [layer.weight for layer in self.layers]

    def load_weights(self, weights: list[Tensor]) -> None:
        """Replace all weights; shapes must match exactly (clear error otherwise)."""
        if len(weights) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} weight tensors, got {len(weights)}")
        for i, (layer, w) in enumerate(zip(self.layers, weights, strict=True)):
            if tuple(w.shape) != tuple(layer.weight.shape):
                raise ValueError(
                    f"weight {i} has shape {tuple(w.shape)}, expected {tuple(layer.weight.shape)}"
                )
            layer.weight = w.to(device=self.device, dtype=self.dtype).clone()

    # ------------------------------------------------------------------ forward

    def draw_masks(self, batch: int) -> list[Tensor]:
        """Bernoulli(1 - p) masks ``(B, n)`` for neuron layers 0 .. L-1, held for all T steps."""
        net = self.network
        masks = []
        for idx, n in enumerate(net.layers[:-1]):
            p = net.layer_dropout(idx)
            u = torch.rand(batch, n, generator=self.mask_generator, device=self.device)
            masks.append((u >= p).to(self.dtype))
        return masks

    def _encode(self, images: Tensor) -> Tensor:
        """uint8 pixels ``(B, 784)`` to intensities in [0, 1] on the device.

        Rounded as the reference's ``ToTensor`` (a true division on the CPU) rounds them:
        the divisor is a tensor because CUDA turns division by a Python number into a
        multiplication by its reciprocal, which rounds 126 of the 256 float32 values
        differently and moves input spikes of pixel values 60, 120 and 240.
        """
        return images.to(device=self.device).to(self.dtype) / self._pixel_max

    def _fire(self, v: Tensor, mask: Tensor | None, out: Tensor) -> None:
        """Spike where ``v >= theta`` and unmasked, written to ``out``; reset by subtraction.

        In place, so that a time step costs few kernel launches at batch size 1.
        A masked neuron keeps its membrane (no reset).
        """
        theta = self.network.mempot_thres
        out.copy_(v >= theta)
        if mask is not None:
            out.mul_(mask)
        v.sub_(out, alpha=theta)

    def _input_spikes(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """Deterministic rate coding: v += x, spike at >= theta, subtract theta, no decay."""
        out = torch.empty((self.network.tsteps, *x.shape), dtype=self.dtype, device=self.device)
        v = torch.zeros_like(x)
        for t in range(self.network.tsteps):
            v.add_(x)
            self._fire(v, mask, out[t])
        return out

    def _lif(self, currents: Tensor, mask: Tensor | None) -> Tensor:
        """LIF recurrence over time: decay, integrate, fire where unmasked, subtract theta."""
        beta = self.network.beta
        out = torch.empty_like(currents)
        v = torch.zeros_like(currents[0])
        for t in range(self.network.tsteps):
            v.mul_(beta).add_(currents[t])
            self._fire(v, mask, out[t])
        return out

    def _traces(self, inputs: Tensor) -> Tensor:
        """r[t+1] = beta * r[t] + min(in[t], 1): the clamp keeps dropout scaling out."""
        out = inputs.clamp(max=1.0)
        for t in range(1, self.network.tsteps):
            out[t].add_(out[t - 1], alpha=self.network.beta)
        return out

    def forward(
        self, images: Tensor, masks: list[Tensor] | None = None, record_traces: bool = False
    ) -> ForwardRecord:
        """Run all T steps; ``masks`` given means training mode (dropout and scaling).

        The first linear layer sees the input spikes of the same step, every
        later layer the previous layer's output of the step before (zero at
        t = 0), which is what a layer-pipelined accelerator does.
        """
        x = self._encode(images)
        training = masks is not None
        inputs = self._input_spikes(x, _mask(masks, 0))
        passed = inputs
        spikes: list[Tensor] = []
        traces: list[Tensor] = []
        for idx, layer in enumerate(self.layers):
            if training:
                passed = passed / (1.0 - self.network.layer_dropout(idx))
            if idx > 0:
                passed = torch.cat([torch.zeros_like(passed[:1]), passed[:-1]])
            if record_traces:
                traces.append(self._traces(passed))
            steps, batch = passed.shape[:2]
            currents = layer.integrate(passed.flatten(0, 1)).unflatten(0, (steps, batch))
            passed = self._lif(currents, _mask(masks, idx + 1))
            spikes.append(passed)
        return ForwardRecord(inputs=inputs, spikes=spikes, traces=traces, masks=masks)

    # ----------------------------------------------------------------- backward

    def desire(self, counts: list[Tensor], labels: Tensor, masks: list[Tensor] | None) -> Desire:
        """Output desire from the label, then hidden desires layer by layer downwards.

        Uses the weights as they were during the forward pass (call before
        updating). ``masks`` None means no dropout (evaluation).
        """
        net = self.network
        r_target = float(net.target_count)
        n_layers = len(self.layers)
        c_out = counts[-1]
        onehot = torch.nn.functional.one_hot(
            labels.to(device=self.device, dtype=torch.long), c_out.shape[1]
        ).to(torch.bool)
        e = torch.where(onehot, 1.0 - c_out / r_target, c_out / r_target)
        active = [(e > net.desire_thres_output).to(self.dtype)]
        sign = [torch.where(onehot, 1.0, -1.0).to(self.dtype)]
        error = [(((sign[0] + 1.0) / 2.0) - c_out / r_target).abs()]
        for h in range(n_layers - 1, 0, -1):  # neuron layer h + 1 drives layer h
            a_h, g_h, err_h = active[0], sign[0], error[0]
            q_h = _apply_mask(g_h * a_h, masks, h + 1)
            s_g = self.layers[h].backpropagate(err_h * q_h)
            thres = self.layers[h - 1].hidden_desire_threshold(net)
            g_g = torch.where(s_g > 0, 1.0, -1.0).to(self.dtype)
            active.insert(0, (s_g.abs() >= thres).to(self.dtype))
            sign.insert(0, g_g)
            error.insert(0, (((g_g + 1.0) / 2.0) - counts[h - 1] / r_target).abs())
        return Desire(active=active, sign=sign, error=error)

    def weight_deltas(self, record: ForwardRecord, desire: Desire, lr: float) -> list[Tensor]:
        """dW_oi = lr * sum_{b,t} [s_o[t] AND a_o AND mask_o] * g_o * r_i[t] per layer."""
        deltas = []
        for idx, layer in enumerate(self.layers):
            q = _apply_mask(desire.active[idx] * desire.sign[idx], record.masks, idx + 1)
            gated = record.spikes[idx] * q
            deltas.append(lr * layer.weight_delta(gated, record.traces[idx]))
        return deltas

    # --------------------------------------------------------------- public API

    def train_step(
        self,
        images: Tensor,
        labels: Tensor,
        lr: float,
        masks: list[Tensor] | None = None,
    ) -> StepResult:
        """One batch: forward with dropout, desire, then the summed update applied once."""
        masks = self.draw_masks(images.shape[0]) if masks is None else masks
        record = self.forward(images, masks, record_traces=True)
        counts = record.counts
        desire = self.desire(counts, labels, masks)
        deltas = self.weight_deltas(record, desire, lr)
        for layer, delta in zip(self.layers, deltas, strict=True):
            layer.weight.add_(delta)
        correct = strict_max_predictions(counts[-1]) == labels.to(self.device, torch.long)
        return StepResult(record, desire, deltas, correct, desire.local_loss())

    @torch.no_grad()
    def evaluate(self, images: Tensor, labels: Tensor | None = None) -> EvalResult:
        """No dropout, no scaling; strict-max predictions and (with labels) local losses."""
        record = self.forward(images)
        counts = record.counts
        pred = strict_max_predictions(counts[-1])
        if labels is None:
            return EvalResult(pred, None, counts, None)
        desire = self.desire(counts, labels, None)
        correct = pred == labels.to(self.device, torch.long)
        return EvalResult(pred, correct, counts, desire.local_loss())
