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

At batch 1 (online training, the reference's mode) the cost is the number of small
operations rather than arithmetic, so batch 1 of uint8 pixels on the CPU takes a
single-sample path that computes the same bits with fewer calls: input trains from a
table, the LIF loop in numpy, and only the weight rows that change
(``DesireNet.single_sample_path``; ``tests/test_model_fast.py`` holds the two paths
equal bit for bit).

Recorded tensors (:class:`ForwardRecord`, :class:`Desire`) use time-major
layouts ``(T, B, n)`` so that a fixed-point path can mirror them with integer
tensors and compare step by step.
"""

from __future__ import annotations

import functools
import itertools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
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
    "RowDelta",
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
    on flattened neuron vectors. Two more let batch 1 skip work
    (:meth:`integrate_outputs`, :meth:`row_weight_delta`); their defaults are
    correct, only not faster.
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

    def integrate_outputs(self, spikes: Tensor, outputs: Tensor) -> Tensor:
        """Currents ``(N, k)`` of the output neurons ``outputs``: columns of :meth:`integrate`.

        Batch 1 skips dropped-out neurons, whose currents decide nothing; a layer that
        can compute a subset more cheaply overrides this.
        """
        return self.integrate(spikes).index_select(1, outputs)

    def row_weight_delta(
        self, gated_rows: Tensor, traces: Tensor, out: Tensor | None = None
    ) -> Tensor | None:
        """Rows of ``weight_delta`` for one sample: ``gated_rows`` ``(T, k)`` holds the
        gated spikes of ``k`` output neurons, ``traces`` ``(T, in)`` the input traces.

        None where the weight has no row per output neuron; batch 1 then falls back to
        the dense ``weight_delta``. ``out`` ``(k, in)``, if given, receives the rows.
        """
        return None


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

    def integrate_outputs(self, spikes: Tensor, outputs: Tensor) -> Tensor:
        """The product with the weight rows of ``outputs`` alone.

        Each current is a sum over the inputs, which the BLAS adds in the same order
        whatever the number of output columns (``tests/test_model_fast.py`` holds it to
        that), so these are bit for bit the columns of :meth:`integrate`; gathering 60 %
        of the rows costs less than the product of the other 40 %.
        """
        return spikes @ self.weight.index_select(0, outputs).T

    def backpropagate(self, weighted_error: Tensor) -> Tensor:
        return weighted_error @ self.weight

    def weight_delta(self, gated_spikes: Tensor, traces: Tensor) -> Tensor:
        post = gated_spikes.reshape(-1, gated_spikes.shape[-1])
        pre = traces.reshape(-1, traces.shape[-1])
        return post.T @ pre

    def hidden_desire_threshold(self, network: Network) -> float:
        return network.desire_thres_hidden

    def row_weight_delta(
        self, gated_rows: Tensor, traces: Tensor, out: Tensor | None = None
    ) -> Tensor:
        """``gated_rows.T @ traces``: the product of :meth:`weight_delta`, fewer rows.

        Each row is a sum over the ``T`` steps, which the BLAS adds in the same order
        whatever the number of rows (``tests/test_model_fast.py`` holds it to that), so
        the rows are bit for bit those of the full product.
        """
        return torch.mm(gated_rows.T, traces, out=out)


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
class RowDelta:
    """A weight change that is zero outside the rows ``rows`` of a weight of shape ``shape``.

    At batch 1 only the neurons that have a desire, are kept by dropout and spiked change
    their row (about 15 % of the first layer of 784-1000-100-10 on Fashion-MNIST). The
    single-sample path adds those rows from a reused buffer, so this keeps what they came
    from, ``gated_rows`` ``(T, k)`` and ``traces`` ``(T, in)``, and recomputes them with
    the same operations when asked.
    """

    layer: Layer
    rows: Tensor
    gated_rows: Tensor
    traces: Tensor
    lr: float
    shape: tuple[int, ...]

    def values(self) -> Tensor:
        """The changed rows ``(k, in)``: ``lr`` times the rows of ``weight_delta``."""
        rows = self.layer.row_weight_delta(self.gated_rows, self.traces)
        assert rows is not None  # only built for layers with a row form
        return rows.mul_(self.lr)

    def dense(self) -> Tensor:
        """The full weight change: :meth:`values` in ``rows``, zero elsewhere."""
        zeros = self.traces.new_zeros(self.shape)
        return zeros.index_copy_(0, self.rows, self.values())


@dataclass
class StepResult:
    """Outcome of one training batch; tensors stay on the device (no host sync).

    ``updates`` holds each layer's applied change as a tensor, or as a :class:`RowDelta`
    where only some rows changed; :attr:`deltas` gives them all as full tensors.
    """

    record: ForwardRecord
    desire: Desire
    updates: list[Tensor | RowDelta]
    correct: Tensor
    local_loss: Tensor

    @property
    def deltas(self) -> list[Tensor]:
        """Applied weight change per layer, shaped like the weight."""
        return [u.dense() if isinstance(u, RowDelta) else u for u in self.updates]


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


@functools.cache
def _dropout_scale(p: float, dtype: torch.dtype) -> float:
    """``1 / (1 - p)`` rounded to ``dtype`` by the division the batched path does.

    There a 0/1 spike train is divided by ``1 - p``, which gives this value where a
    spike is; computing it by the same division once per (p, dtype) keeps its bits.
    """
    return float(torch.ones((), dtype=dtype) / (1.0 - p))


def _delay_and_scale(spikes: Tensor, scale: float) -> Tensor:
    """What the next layer sees of a ``(T, 1, n)`` 0/1 spike train at batch 1: the train one
    step later (zero at t = 0) times ``scale``, in two numpy calls instead of four torch ops.

    ``scale`` is exact where a spike is, and 0 times it is 0, so this is bit for bit the
    batched path's division followed by the shift.
    """
    train = spikes.numpy()
    out = np.zeros_like(train)
    np.multiply(train[:-1], train.dtype.type(scale), out=out[1:])
    return torch.from_numpy(out)


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
        #: Batch 1 of uint8 pixels on the CPU takes the single-sample path, which computes
        #: the same bits with fewer operations; False forces the batched formulation
        #: (``tests/test_model_fast.py`` compares the two).
        self.single_sample_path = True
        self._input_tables: tuple[tuple[int, float, float], Tensor, Tensor] | None = None
        self._row_buffers: dict[int, Tensor] = {}

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
        """r[t+1] = beta * r[t] + min(in[t], 1): the clamp keeps dropout scaling out.

        The steps are views from one ``unbind`` rather than two indexing calls per step.
        """
        out = inputs.clamp(max=1.0)
        beta = self.network.beta
        for prev, step in itertools.pairwise(out.unbind(0)):
            step.add_(prev, alpha=beta)
        return out

    def forward(
        self, images: Tensor, masks: list[Tensor] | None = None, record_traces: bool = False
    ) -> ForwardRecord:
        """Run all T steps; ``masks`` given means training mode (dropout and scaling).

        The first linear layer sees the input spikes of the same step, every
        later layer the previous layer's output of the step before (zero at
        t = 0), which is what a layer-pipelined accelerator does.
        """
        if self._takes_single_sample_path(images):
            return self._forward_single(images, masks, record_traces)
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
        # a comparison, not one_hot: one_hot checks its labels' range on the host on
        # some devices, which a recorded CUDA graph (model/cuda_graph.py) cannot do
        classes = torch.arange(c_out.shape[1], device=self.device)
        onehot = labels.to(device=self.device, dtype=torch.long).unsqueeze(1) == classes
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

    # ------------------------------------------------------- batch 1 on the CPU
    #
    # At batch 1 the cost is not arithmetic but the number of operations: each small
    # tensor operation costs microseconds of dispatch, and the batched formulation spends
    # hundreds per sample on the time loops. The methods below compute the same values,
    # operation for operation where rounding can occur, in fewer calls; where they skip
    # work, the skipped work is exact (a gather from a table of the same operations, a
    # product with 0 or 1, rows of an update that are +-0).

    def _takes_single_sample_path(self, images: Tensor) -> bool:
        """Batch 1 of uint8 pixels on the CPU, unless :attr:`single_sample_path` is off."""
        return (
            self.single_sample_path
            and self.device.type == "cpu"
            and images.shape[0] == 1
            and images.dtype == torch.uint8
        )

    def _input_table(self) -> tuple[Tensor, Tensor]:
        """Input spike train and its trace, ``(T, 256)``, of every pixel value.

        Rate coding and traces are elementwise, so a pixel's train depends on its
        value alone; the tables come from :meth:`_input_spikes` and :meth:`_traces`
        themselves, so a gather from them gives those methods' bits, in one
        operation instead of ``5 T``. Rebuilt when T, theta or beta change.
        """
        net = self.network
        key = (net.tsteps, net.mempot_thres, net.beta)
        if self._input_tables is None or self._input_tables[0] != key:
            levels = self._encode(torch.arange(256, dtype=torch.uint8)[None])
            spikes = self._input_spikes(levels, None)
            self._input_tables = (key, spikes[:, 0], self._traces(spikes)[:, 0])
        return self._input_tables[1], self._input_tables[2]

    def _lif_single(self, currents: Tensor) -> np.ndarray:
        """:meth:`_lif` for batch 1, no dropout: spikes ``(T, 1, n)`` as a numpy bool array.

        The recurrence is sequential in time, so at batch 1 its cost is the number of
        calls (four per step); a numpy ufunc call costs about half a torch call. The
        arithmetic is the same IEEE operations in the same order (times beta, plus the
        current, fire where ``v >= theta``, minus theta where fired), so the bits are
        the same.
        """
        net = self.network
        current = currents.numpy()
        v = np.zeros_like(current[0])
        theta, beta = v.dtype.type(net.mempot_thres), v.dtype.type(net.beta)
        fired = np.empty(current.shape, dtype=np.bool_)
        for step, spike in zip(current, fired, strict=True):
            np.multiply(v, beta, out=v)
            np.add(v, step, out=v)
            np.greater_equal(v, theta, out=spike)
            np.subtract(v, theta, out=v, where=spike)
        return fired

    def _layer_single(self, layer: Layer, passed: Tensor, mask: Tensor | None) -> Tensor:
        """Spike train ``(T, 1, out)`` of one layer at batch 1, computed for kept neurons only.

        A dropped-out neuron never fires, and neither its current nor its membrane
        reaches anything else, so only the kept neurons' currents are computed
        (:meth:`Layer.integrate_outputs`) and run through :meth:`_lif_single`; the
        dropped ones get no spikes, as :meth:`_fire` gives them with a 0/1 mask.
        """
        steps = self.network.tsteps
        flat = passed.flatten(0, 1)
        kept = None if mask is None else np.flatnonzero(mask.numpy()[0])
        if kept is None or len(kept) == layer.out_features:
            currents = layer.integrate(flat)
            return torch.from_numpy(self._lif_single(currents.unflatten(0, (steps, 1))))
        currents = layer.integrate_outputs(flat, torch.from_numpy(kept))
        fired = np.zeros((steps, 1, layer.out_features), dtype=np.bool_)
        fired[:, :, kept] = self._lif_single(currents.unflatten(0, (steps, 1)))
        return torch.from_numpy(fired)

    def _forward_single(
        self, images: Tensor, masks: list[Tensor] | None, record_traces: bool
    ) -> ForwardRecord:
        """:meth:`forward` for one uint8 sample on the CPU, with the same results.

        Input spikes and traces are gathered from :meth:`_input_table` and masked by a
        0/1 product; the synaptic currents are the batched path's matrix products,
        restricted to kept neurons (:meth:`_layer_single`; a sparse sum over the input
        spikes would round differently); the traces of all hidden layers run as one
        recurrence over their concatenation (elementwise, so the same bits). Dropout
        masks are 0/1, as :meth:`draw_masks` makes them.
        """
        net = self.network
        training = masks is not None
        spike_table, trace_table = self._input_table()
        pixels = images[0].to(device=self.device, dtype=torch.long)
        mask = _mask(masks, 0)
        inputs = spike_table.index_select(1, pixels)
        traces: list[Tensor] = []
        if record_traces:
            traces.append(trace_table.index_select(1, pixels))
        if mask is not None:
            inputs.mul_(mask)
            for trace in traces:
                trace.mul_(mask)
        inputs = inputs.unsqueeze(1)
        traces = [trace.unsqueeze(1) for trace in traces]
        passed = inputs / (1.0 - net.layer_dropout(0)) if training else inputs
        spikes: list[Tensor] = []
        delayed: list[Tensor] = []
        for idx, layer in enumerate(self.layers):
            if idx > 0:
                scale = self._dropout_scale(idx) if training else 1.0
                passed = _delay_and_scale(spikes[-1], scale)
                delayed.append(passed)
            fired = self._layer_single(layer, passed, _mask(masks, idx + 1))
            spikes.append(fired.to(self.dtype))
        if record_traces and delayed:
            hidden = self._traces(torch.cat(delayed, dim=-1))
            traces.extend(hidden.split([d.shape[-1] for d in delayed], dim=-1))
        return ForwardRecord(inputs=inputs, spikes=spikes, traces=traces, masks=masks)

    def _dropout_scale(self, layer: int) -> float:
        """``1 / (1 - p)`` of neuron layer ``layer`` as the batched path rounds it."""
        return _dropout_scale(self.network.layer_dropout(layer), self.dtype)

    def _desire_single(
        self, counts: list[Tensor], labels: Tensor, masks: list[Tensor] | None
    ) -> Desire:
        """:meth:`desire` for batch 1 on the CPU, in numpy on the same values.

        Every step but the backpropagation product is elementwise IEEE arithmetic (a
        count over R, one minus it, products with +-1 and 0, comparisons), which numpy
        rounds as torch does, at a third of the cost per call; the product stays
        :meth:`Layer.backpropagate`, so its summation order is unchanged.
        """
        net = self.network
        c = [count.numpy()[0] for count in counts]
        dt = c[-1].dtype.type
        one, two, r = dt(1.0), dt(2.0), dt(net.target_count)
        n_out = len(c[-1])
        label = int(labels.reshape(-1)[0])
        if not 0 <= label < n_out:
            raise ValueError(f"label {label} is not a class of {n_out} outputs")
        onehot = np.arange(n_out) == label
        rate = c[-1] / r
        e = np.where(onehot, one - rate, rate)
        active = [(e > dt(net.desire_thres_output)).astype(dt)]
        sign = [np.where(onehot, one, -one)]
        error = [np.abs((sign[0] + one) / two - rate)]
        for h in range(len(self.layers) - 1, 0, -1):  # neuron layer h + 1 drives layer h
            q = sign[0] * active[0]
            mask = _mask(masks, h + 1)
            if mask is not None:
                q = q * mask.numpy()[0]
            weighted = torch.from_numpy(error[0] * q)[None]
            s = self.layers[h].backpropagate(weighted).numpy()[0]
            thres = dt(self.layers[h - 1].hidden_desire_threshold(net))
            g = np.where(s > 0, one, -one)
            active.insert(0, (np.abs(s) >= thres).astype(dt))
            sign.insert(0, g)
            error.insert(0, np.abs((g + one) / two - c[h - 1] / r))
        return Desire(*([torch.from_numpy(x)[None] for x in xs] for xs in (active, sign, error)))

    @staticmethod
    def _correct_single(counts: Tensor, labels: Tensor) -> Tensor:
        """``strict_max_predictions(counts) == labels`` for batch 1, without five small ops."""
        c = counts.numpy()[0]
        best = int(np.argmax(c))
        strict = int(np.count_nonzero(c == c[best])) == 1
        return torch.tensor([strict and best == int(labels.reshape(-1)[0])])

    def _update_single(
        self, record: ForwardRecord, desire: Desire, lr: float
    ) -> list[Tensor | RowDelta]:
        """Apply one sample's update to the rows that change; returns the changes.

        Row ``o`` of a layer's update is nonzero only where neuron ``o`` has an active
        desire, is kept by dropout and spiked. The other rows of :meth:`weight_deltas`
        are +-0 and adding them changes no weight, so only the changing rows are
        computed (:meth:`Layer.row_weight_delta`), scaled by ``lr`` and added, with the
        same operations as the dense path. They go through a buffer kept per layer:
        a fresh tensor of that size costs more in page faults than its arithmetic.
        """
        updates: list[Tensor | RowDelta] = []
        for idx, layer in enumerate(self.layers):
            q = desire.active[idx].numpy()[0] * desire.sign[idx].numpy()[0]
            mask = _mask(record.masks, idx + 1)
            if mask is not None:
                q = q * mask.numpy()[0]
            gated = record.spikes[idx].numpy()[:, 0] * q  # (T, n), products of 0, +-1
            selected = np.flatnonzero(gated.any(axis=0))
            rows = torch.from_numpy(selected)
            gated_rows = torch.from_numpy(gated[:, selected])
            traces = record.traces[idx][:, 0]
            buffer = self._row_buffer(idx)[: len(rows)]
            if layer.row_weight_delta(gated_rows, traces, out=buffer) is None:
                gated_all = torch.from_numpy(gated)[:, None]
                delta = lr * layer.weight_delta(gated_all, traces[:, None])
                layer.weight.add_(delta)
                updates.append(delta)
                continue
            layer.weight.index_add_(0, rows, buffer.mul_(lr))
            shape = tuple(layer.weight.shape)
            updates.append(RowDelta(layer, rows, gated_rows, traces, lr, shape))
        return updates

    def _row_buffer(self, idx: int) -> Tensor:
        """A reused tensor shaped like layer ``idx``'s weight (see :meth:`_update_single`)."""
        weight = self.layers[idx].weight
        buffer = self._row_buffers.get(idx)
        if buffer is None or buffer.shape != weight.shape or buffer.dtype != weight.dtype:
            buffer = self._row_buffers[idx] = torch.empty_like(weight)
        return buffer

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
        if self._takes_single_sample_path(images):
            desire = self._desire_single(counts, labels, masks)
            updates = self._update_single(record, desire, lr)
            correct = self._correct_single(counts[-1], labels)
            return StepResult(record, desire, updates, correct, desire.local_loss())
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
