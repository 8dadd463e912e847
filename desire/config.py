"""The one parameter set shared by model/, golden/, rtl/ and sim/.

A :class:`Config` describes the network (layer sizes, time steps, thresholds,
decay, error margin, dropout, learning rate), the fixed-point number formats of
the accelerator (see docs/fixed-point.md) and the hardware parameters (lanes).
Every other package derives its constants from here, so that a change made in a
TOML or JSON file reaches the trainer, the golden model, the RTL and the
testbenches alike.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from desire.errors import UserError

__all__ = [
    "ARCHITECTURES",
    "AXI_DATA_BYTES",
    "LR_REGISTER_BITS",
    "MAX_LAYER_SIZE",
    "PRESETS",
    "SPIKE_VECTORS",
    "WEIGHT_MEMORIES",
    "Config",
    "ConfigError",
    "Formats",
    "Hardware",
    "Network",
    "exact",
    "load_config",
    "lr_register",
    "to_fixed",
]

Rounding = Literal["stochastic", "nearest", "truncate"]
ROUNDINGS: tuple[str, ...] = ("stochastic", "nearest", "truncate")


class ConfigError(UserError, ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


#: Largest neuron count of one layer. Far above the paper's 1600, far below a size that
#: would exhaust memory before the first sample: a 2e9-neuron layer is a typo, not a network.
MAX_LAYER_SIZE = 65536
#: Width of the accelerator's learning-rate register (docs/fixed-point.md, section 6).
LR_REGISTER_BITS = 32


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _show(value: Any, limit: int = 60) -> str:
    """``repr`` cut to ``limit`` characters: a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def exact(x: float) -> Fraction:
    """The decimal a user wrote (0.3), as an exact rational, not its binary approximation.

    ``str`` of a float is the shortest decimal that reads back as the same double, which
    is what the user typed unless they typed more than 17 significant digits. Every
    integer constant of docs/fixed-point.md is computed from these, so the integer
    comparisons equal the real-valued ones.
    """
    return Fraction(str(x))


def to_fixed(x: Fraction, frac_bits: int) -> int:
    """round(x * 2^frac_bits), exactly; ties go to the even integer (Python's ``round``)."""
    return round(x * (1 << frac_bits))


def lr_register(lr: float, lr_decay: float, epoch: int, scale: int) -> int:
    """Learning-rate register of ``epoch``: round(lr * exp(-lr_decay * epoch) * 2^scale).

    ``lr`` enters as its decimal (:func:`exact`); ``exp`` is the float64 ``math.exp`` of
    the float64 product ``-lr_decay * epoch``, the one factor that cannot be exact (it is
    exactly 1 at epoch 0); the product and the rounding (ties to even) are exact. Only
    the host computes it: golden/ and the RTL take the register value as an input.
    """
    decay = Fraction(math.exp(-lr_decay * epoch))
    return round(exact(lr) * decay * Fraction(2) ** scale)


def _finite(where: str, value: Any) -> float:
    """``value`` as a finite float: inf or nan would surface later as NaN weights or an
    OverflowError deep inside the arithmetic."""
    _check(
        isinstance(value, int | float) and not isinstance(value, bool),
        f"{where} must be a number, got {_show(value)}",
    )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    _check(math.isfinite(number), f"{where} must be a finite number, got {_show(value)}")
    return number


def _converted(where: str, value: Any, like: Any) -> Any:
    """``value`` with the type of the field default ``like`` (a list becomes a tuple, an int
    a float), element by element for tuples; anything else is a :class:`ConfigError` naming
    ``where``, so that no wrong type reaches the arithmetic."""
    if isinstance(like, bool):
        _check(isinstance(value, bool), f"{where} must be true or false, not {_show(value)}")
        return value
    if isinstance(like, tuple):
        _check(isinstance(value, list | tuple), f"{where} must be a list, got {_show(value)}")
        return tuple(_converted(f"{where}[{i}]", v, like[0]) for i, v in enumerate(value))
    if isinstance(like, int):
        _check(
            isinstance(value, int) and not isinstance(value, bool),
            f"{where} must be an int, got {_show(value)}",
        )
        return value
    if isinstance(like, float):
        return _finite(where, value)
    _check(isinstance(value, str), f"{where} must be a string, got {_show(value)}")
    return value


def _check_types(section: str, values: Any) -> None:
    """Every field of a section has its default's type (numbers finite, tuples element-wise)."""
    for f in fields(values):
        _converted(f"{section}.{f.name}", getattr(values, f.name), f.default)


@dataclass(frozen=True)
class Network:
    """Network topology and the learning rule's hyper-parameters (reference defaults).

    ``layers`` lists neuron counts from the input (784 pixels) to the output
    (one neuron per class). ``dropout`` is (input layer, every hidden layer).
    """

    layers: tuple[int, ...] = (784, 1000, 100, 10)
    tsteps: int = 20
    mempot_thres: float = 1.0
    mempot_decay: int = 2
    desire_thres_conv: float = 0.20
    desire_thres_hidden: float = 0.05
    desire_thres_output: float = 0.30
    error_margin: int = 4
    dropout: tuple[float, float] = (0.05, 0.40)
    lr: float = 1e-5
    lr_decay: float = 0.04

    def validate(self) -> None:
        _check(len(self.layers) >= 2, f"layers needs at least 2 sizes, got {self.layers!r}")
        for n in self.layers:
            _check(
                1 <= n <= MAX_LAYER_SIZE,
                f"layer sizes must be in [1, {MAX_LAYER_SIZE}] neurons, got {n} in {self.layers!r}",
            )
        _check(self.layers[-1] >= 2, "the output layer needs at least 2 classes")
        _check(1 <= self.tsteps <= 1024, f"tsteps must be in [1, 1024], got {self.tsteps}")
        _check(self.mempot_thres > 0, f"mempot_thres must be > 0, got {self.mempot_thres}")
        _check(
            1 <= self.mempot_decay <= 16,
            f"mempot_decay must be in [1, 16], got {self.mempot_decay}",
        )
        _check(
            0 <= self.error_margin < self.tsteps,
            f"error_margin must be in [0, tsteps), got {self.error_margin}",
        )
        for name in ("desire_thres_conv", "desire_thres_hidden", "desire_thres_output"):
            v = getattr(self, name)
            _check(0 <= v < 1, f"{name} must be in [0, 1), got {v}")
        _check(len(self.dropout) == 2, f"dropout is (input, hidden), got {self.dropout!r}")
        for p in self.dropout:
            _check(0 <= p < 1, f"dropout probabilities must be in [0, 1), got {self.dropout!r}")
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(self.lr_decay >= 0, f"lr_decay must be >= 0, got {self.lr_decay}")

    @property
    def target_count(self) -> int:
        """R = T - m: the spike count a desired neuron aims for."""
        return self.tsteps - self.error_margin

    @property
    def beta(self) -> float:
        """Membrane and trace decay factor 1 - 2^-k."""
        return 1.0 - 2.0 ** (-self.mempot_decay)

    def layer_dropout(self, layer: int) -> float:
        """Dropout probability of neuron layer ``layer`` (0 = input); the output has none."""
        if layer == 0:
            return self.dropout[0]
        if layer == len(self.layers) - 1:
            return 0.0
        return self.dropout[1]

    def lr_at(self, epoch: int) -> float:
        """Learning rate of ``epoch`` (counted from 0): lr * exp(-lr_decay * epoch)."""
        return self.lr * math.exp(-self.lr_decay * epoch)


@dataclass(frozen=True)
class Formats:
    """Fixed-point formats of the accelerator; docs/fixed-point.md is their contract.

    Weights, membranes and thresholds share one binary point (``weight_frac``
    fraction bits) so that accumulation needs no alignment. Traces are
    unsigned with ``trace_frac`` fraction bits. The learning rate is an integer
    register ``lr_int`` applied as ``(lr_int * acc + rnd) >> lr_shift``.
    """

    weight_bits: int = 16
    weight_frac: int = 12
    membrane_bits: int = 20
    trace_bits: int = 8
    trace_frac: int = 5
    lr_shift: int = 24
    rounding: Rounding = "stochastic"
    dropout_seed: int = 0x1234_5678
    rounding_seed: int = 0x0BAD_5EED
    prob_bits: int = 16

    def validate(self) -> None:
        _check(
            2 <= self.weight_bits <= 32, f"weight_bits must be in [2, 32], got {self.weight_bits}"
        )
        _check(
            0 <= self.weight_frac < self.weight_bits + 8,
            f"weight_frac must be in [0, weight_bits + 8), got {self.weight_frac}",
        )
        _check(
            self.weight_bits <= self.membrane_bits <= 48,
            f"membrane_bits must be in [weight_bits, 48], got {self.membrane_bits}",
        )
        _check(2 <= self.trace_bits <= 24, f"trace_bits must be in [2, 24], got {self.trace_bits}")
        _check(
            0 <= self.trace_frac < self.trace_bits,
            f"trace_frac must be in [0, trace_bits), got {self.trace_frac}",
        )
        _check(1 <= self.lr_shift <= 32, f"lr_shift must be in [1, 32], got {self.lr_shift}")
        _check(
            self.rounding in ROUNDINGS,
            f"rounding must be one of {ROUNDINGS}, got {self.rounding!r}",
        )
        for name in ("dropout_seed", "rounding_seed"):
            v = getattr(self, name)
            _check(0 < v < 2**32, f"{name} must be a non-zero 32-bit value, got {v}")
        _check(1 <= self.prob_bits <= 16, f"prob_bits must be in [1, 16], got {self.prob_bits}")

    @property
    def lr_scale(self) -> int:
        """Binary exponent of the learning-rate register: lr_int = lr * 2^lr_scale."""
        return self.lr_shift + self.weight_frac - self.trace_frac


#: ``per-layer``: one neuron core of ``lanes`` lanes per layer, the layers running
#: concurrently (a barrier per time step). ``shared``: one pool of ``lanes`` lanes
#: time-shared over the layers within each time step (issue 12: the lanes work where
#: the work is).
ARCHITECTURES = ("per-layer", "shared")
#: Where the weights live: ``on-chip`` block RAM, or ``external`` memory read through an
#: AXI4 master (shared architecture; training writes the updates back through AXI too).
WEIGHT_MEMORIES = ("on-chip", "external")
#: Where the shared pool keeps the layers' input spike vectors: ``registers`` (every
#: word readable at once) or ``memory`` (block RAM, double-buffered by time step: the
#: 784-input vector of layer 0 and its copy would be 1,568 flip-flops, a third of an
#: iCE40 UltraPlus).
SPIKE_VECTORS = ("registers", "memory")
#: AXI data widths of the external weight memory, bytes per beat.
AXI_DATA_BYTES = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Hardware:
    """Accelerator build parameters: ``lanes`` neurons updated per cycle; ``training``
    builds the on-chip learning units (false: an inference-only accelerator, about half
    the logic, for deploying trained weights on a small FPGA); ``architecture``: how the
    lanes serve the layers (:data:`ARCHITECTURES`, docs/accelerator-v2.md); ``weights``:
    where the weights live (:data:`WEIGHT_MEMORIES`); ``axi_bytes``: the external
    memory's AXI data width in bytes (its bandwidth per cycle); ``axi_latency``: the
    read latency in cycles (address to first beat) the weight buffer is sized to hide
    (a longer one still works, with the bus idle part of the time); ``trace``: a debug
    output per layer with every fire pass's spikes and membranes (what the divergence
    localiser of the testbenches compares with golden/, sim/localise.py); ``weight_ports``:
    2, the on-chip weight banks have a read and a write address, or 1, one address per
    bank of 16K words (the iCE40 UltraPlus SPRAM's geometry, inference only);
    ``spike_vectors``: where the shared pool keeps the spike vectors
    (:data:`SPIKE_VECTORS`)."""

    lanes: int = 8
    training: bool = True
    architecture: str = "per-layer"
    weights: str = "on-chip"
    axi_bytes: int = 8
    axi_latency: int = 32
    trace: bool = False
    weight_ports: int = 2
    spike_vectors: str = "registers"

    def validate(self) -> None:
        _check(1 <= self.lanes <= 256, f"lanes must be in [1, 256], got {self.lanes}")
        _check(
            self.architecture in ARCHITECTURES,
            f"architecture must be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}",
        )
        _check(
            self.weights in WEIGHT_MEMORIES,
            f"weights must be one of {', '.join(WEIGHT_MEMORIES)}, got {self.weights!r}",
        )
        _check(
            self.axi_bytes in AXI_DATA_BYTES,
            f"axi_bytes must be one of {AXI_DATA_BYTES}, got {self.axi_bytes}",
        )
        _check(
            1 <= self.axi_latency <= 4096,
            f"axi_latency must be in [1, 4096] cycles, got {self.axi_latency}",
        )
        if self.weights == "external":
            _check(
                self.architecture == "shared",
                "weights = external needs architecture = shared (one reader for all layers)",
            )
        _check(self.weight_ports in (1, 2), f"weight_ports must be 1 or 2, got {self.weight_ports}")
        if self.weight_ports == 1:
            _check(
                not self.training and self.weights == "on-chip",
                "weight_ports = 1 needs training = false and weights = on-chip (the update "
                "unit reads and writes the weights in the same cycle)",
            )
        _check(
            self.spike_vectors in SPIKE_VECTORS,
            f"spike_vectors must be one of {', '.join(SPIKE_VECTORS)}, got {self.spike_vectors!r}",
        )
        if self.spike_vectors == "memory":
            _check(
                self.architecture == "shared" and not self.training and self.weights == "on-chip",
                "spike_vectors = memory needs architecture = shared, weights = on-chip and "
                "training = false (one scanner reads the vectors)",
            )

    def lanes_for(self, n_linear: int) -> int:
        """Lanes in the whole design for ``n_linear`` weight layers: ``lanes`` per layer
        (``per-layer``), or ``lanes`` in one pool (``shared``)."""
        return self.lanes * n_linear if self.architecture == "per-layer" else self.lanes


@dataclass(frozen=True)
class Config:
    """Network, number formats and hardware in one object."""

    network: Network = field(default_factory=Network)
    formats: Formats = field(default_factory=Formats)
    hardware: Hardware = field(default_factory=Hardware)

    def __post_init__(self) -> None:
        for name in ("network", "formats", "hardware"):
            _check_types(name, getattr(self, name))
        self.network.validate()
        self.formats.validate()
        self.hardware.validate()
        self._check_dropout_fits()
        self._check_thresholds_fit()
        self._check_lr_fits()
        _check(
            self.network.tsteps * 2**self.formats.trace_bits < 2**32,
            "tsteps * 2^trace_bits must stay below 2^32 (trace accumulator width)",
        )

    def fixed_thresholds(self) -> tuple[int, tuple[int, ...]]:
        """(thr_eval, thr_train per linear layer): round(theta * (1 - p_l) * 2^weight_frac).

        Exact from the decimals, ties to even (docs/fixed-point.md, section 3); the one
        definition that golden/fixed.py and the checks below share.
        """
        n, wf = self.network, self.formats.weight_frac
        theta = exact(n.mempot_thres)
        train = tuple(
            to_fixed(theta * (1 - exact(n.layer_dropout(l))), wf) for l in range(len(n.layers) - 1)
        )
        return to_fixed(theta, wf), train

    def fixed_drop_p(self) -> tuple[int, ...]:
        """drop_p per neuron layer: round(p * 2^prob_bits), exact, ties to even (section 7)."""
        n, bits = self.network, self.formats.prob_bits
        return tuple(to_fixed(exact(n.layer_dropout(j)), bits) for j in range(len(n.layers)))

    def _check_thresholds_fit(self) -> None:
        """thr_eval and every thr_train must be > 0 and fit the membrane: the RTL's threshold
        register refuses 0, and a 0 threshold would fire every neuron on every step."""
        n, f = self.network, self.formats
        thr_eval, thr_train = self.fixed_thresholds()
        _check(
            thr_eval < 2 ** (f.membrane_bits - 1),
            f"mempot_thres {n.mempot_thres} does not fit a {f.membrane_bits}-bit membrane "
            f"with {f.weight_frac} fraction bits",
        )
        _check(thr_eval >= 1, f"mempot_thres {n.mempot_thres} rounds to 0 with this weight_frac")
        for l, thr in enumerate(thr_train):
            _check(
                thr >= 1,
                f"mempot_thres {n.mempot_thres} with dropout {n.layer_dropout(l)} gives weight "
                f"layer {l} a training threshold round(theta * (1 - p) * 2^{f.weight_frac}) = 0; "
                "raise mempot_thres or weight_frac",
            )

    def _check_dropout_fits(self) -> None:
        """A p > 0 must not round to drop_p = 0 (dropout that silently drops nothing) nor to
        2^prob_bits (every neuron dropped)."""
        n, bits = self.network, self.formats.prob_bits
        for j, p_int in enumerate(self.fixed_drop_p()):
            p = n.layer_dropout(j)
            _check(
                p == 0 or p_int >= 1,
                f"dropout {p} of neuron layer {j} rounds to drop_p = round(p * 2^{bits}) = 0 "
                "and would drop nothing; set it to 0 or raise formats.prob_bits",
            )
            _check(
                p_int < 1 << bits,
                f"dropout {p} of neuron layer {j} rounds to drop_p = 2^{bits} and would drop "
                "every neuron; lower it or raise formats.prob_bits",
            )

    def _check_lr_fits(self) -> None:
        """The epoch-0 learning-rate register (the largest: lr_decay >= 0) must fit 32 bits."""
        n, f = self.network, self.formats
        lr0 = lr_register(n.lr, n.lr_decay, 0, f.lr_scale)
        _check(
            lr0 < 1 << LR_REGISTER_BITS,
            f"lr {n.lr} gives a learning-rate register round(lr * 2^{f.lr_scale}) that does "
            f"not fit its {LR_REGISTER_BITS} bits; lower lr or formats.lr_shift",
        )

    def replace(self, **sections: Any) -> Config:
        """Copy with fields changed: ``cfg.replace(network={"tsteps": 10})``."""
        kw: dict[str, Any] = {}
        for name, changes in sections.items():
            _check(name in ("network", "formats", "hardware"), f"unknown config section {name!r}")
            kw[name] = dataclasses.replace(getattr(self, name), **changes)
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build from nested dicts; unknown keys and wrong types are errors."""
        _check(isinstance(data, dict), f"a config must be a mapping, got {_show(data)}")
        unknown = set(data) - {"network", "formats", "hardware", "preset"}
        _check(not unknown, f"unknown config sections: {sorted(unknown, key=repr)}")
        preset = data.get("preset", "default")
        _check(
            isinstance(preset, str) and preset in PRESETS,
            f"unknown preset {_show(preset)}; have {sorted(PRESETS)}",
        )
        base = PRESETS[preset]
        kw = {}
        for section, klass in (("network", Network), ("formats", Formats), ("hardware", Hardware)):
            values = data.get(section, {})
            _check(isinstance(values, dict), f"[{section}] must be a table")
            kw[section] = _build_section(klass, getattr(base, section), values, section)
        return cls(**kw)


def _build_section(klass: type, base: Any, values: dict[str, Any], section: str) -> Any:
    defaults = {f.name: f.default for f in fields(klass)}
    unknown = set(values) - set(defaults)
    _check(not unknown, f"unknown keys in [{section}]: {sorted(unknown, key=repr)}")
    out = {
        key: _converted(f"{section}.{key}", value, defaults[key]) for key, value in values.items()
    }
    return dataclasses.replace(base, **out)


def _read_text(p: Path) -> str:
    """The file's text; a folder, a missing, unreadable or non-UTF-8 file is a ConfigError."""
    try:
        if p.is_dir():
            raise ConfigError(f"config file {p} is a folder, not a file")
        if not p.exists():
            raise ConfigError(f"config file not found: {p}")
        if not p.is_file():
            raise ConfigError(f"config file {p} is not a regular file")
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p} is not UTF-8 text (bad byte at offset {exc.start})") from exc


def _parse(p: Path, text: str) -> dict[str, Any]:
    """TOML, or JSON for a ``.json`` file; the top level must be a table/object."""
    try:
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (ValueError, RecursionError) as exc:  # the decode errors are ValueErrors
        raise ConfigError(f"cannot parse {p}: {exc}") from exc
    _check(isinstance(data, dict), f"{p}: a config must be a JSON object, got {_show(data)}")
    return data


def load_config(path: str | Path | None = None, preset: str | None = None) -> Config:
    """Load a config from a TOML or JSON file, or a named preset; default: ``default``."""
    if path is None:
        name = preset or "default"
        _check(name in PRESETS, f"unknown preset {name!r}; have {sorted(PRESETS)}")
        return PRESETS[name]
    p = Path(path)
    data = _parse(p, _read_text(p))
    if preset is not None:
        data.setdefault("preset", preset)
    try:
        return Config.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc


_FMNIST = Network()
PRESETS: dict[str, Config] = {
    # Small network for the demo, CI and the FPGA: the accelerator with its training units
    # fits an ECP5-85F (73 of 208 block RAMs on the 85F at 8 lanes; not the 25F's
    # 56), docs/fpga.md.
    "default": Config(network=dataclasses.replace(_FMNIST, layers=(784, 64, 10))),
    "fmnist-1000": Config(network=_FMNIST),
    "mnist-1600": Config(
        network=dataclasses.replace(_FMNIST, layers=(784, 1600, 800, 10), dropout=(0.0, 0.3))
    ),
}
