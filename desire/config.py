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
from pathlib import Path
from typing import Any, Literal

from desire.errors import UserError

__all__ = [
    "PRESETS",
    "Config",
    "ConfigError",
    "Formats",
    "Hardware",
    "Network",
    "load_config",
]

Rounding = Literal["stochastic", "nearest", "truncate"]
ROUNDINGS: tuple[str, ...] = ("stochastic", "nearest", "truncate")


class ConfigError(UserError, ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


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
                isinstance(n, int) and n >= 1, f"layer sizes must be positive ints: {self.layers!r}"
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


@dataclass(frozen=True)
class Hardware:
    """Accelerator build parameters: ``lanes`` neurons updated per cycle; ``training``
    builds the on-chip learning units (false: an inference-only accelerator, about half
    the logic, for deploying trained weights on a small FPGA)."""

    lanes: int = 8
    training: bool = True

    def validate(self) -> None:
        _check(1 <= self.lanes <= 256, f"lanes must be in [1, 256], got {self.lanes}")
        _check(isinstance(self.training, bool), f"training must be a bool, got {self.training!r}")


@dataclass(frozen=True)
class Config:
    """Network, number formats and hardware in one object."""

    network: Network = field(default_factory=Network)
    formats: Formats = field(default_factory=Formats)
    hardware: Hardware = field(default_factory=Hardware)

    def __post_init__(self) -> None:
        self.network.validate()
        self.formats.validate()
        self.hardware.validate()
        self._check_formats_fit()

    def _check_formats_fit(self) -> None:
        n, f = self.network, self.formats
        thr = round(n.mempot_thres * 2**f.weight_frac)
        _check(
            thr < 2 ** (f.membrane_bits - 1),
            f"mempot_thres {n.mempot_thres} does not fit a {f.membrane_bits}-bit membrane "
            f"with {f.weight_frac} fraction bits",
        )
        _check(thr >= 1, "mempot_thres rounds to 0 with this weight_frac")
        _check(
            n.tsteps * 2**f.trace_bits < 2**32,
            "tsteps * 2^trace_bits must stay below 2^32 (trace accumulator width)",
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
        _check(isinstance(data, dict), "config must be a mapping")
        unknown = set(data) - {"network", "formats", "hardware", "preset"}
        _check(not unknown, f"unknown config sections: {sorted(unknown)}")
        preset = data.get("preset", "default")
        _check(preset in PRESETS, f"unknown preset {preset!r}; have {sorted(PRESETS)}")
        base = PRESETS[preset]
        kw = {}
        for section, klass in (("network", Network), ("formats", Formats), ("hardware", Hardware)):
            values = data.get(section, {})
            _check(isinstance(values, dict), f"[{section}] must be a table")
            kw[section] = _build_section(klass, getattr(base, section), values, section)
        return cls(**kw)


def _build_section(klass: type, base: Any, values: dict[str, Any], section: str) -> Any:
    names = {f.name: f for f in fields(klass)}
    unknown = set(values) - set(names)
    _check(not unknown, f"unknown keys in [{section}]: {sorted(unknown)}")
    out = {}
    for key, value in values.items():
        default = getattr(base, key)
        if isinstance(default, bool):
            _check(isinstance(value, bool), f"{section}.{key} must be true or false, not {value!r}")
        elif isinstance(default, tuple):
            _check(isinstance(value, list | tuple), f"{section}.{key} must be a list")
            value = tuple(value)
        elif isinstance(default, int):
            _check(
                isinstance(value, int) and not isinstance(value, bool),
                f"{section}.{key} must be an int, got {value!r}",
            )
        elif isinstance(default, float):
            _check(isinstance(value, int | float), f"{section}.{key} must be a number")
            value = float(value)
        elif isinstance(default, str):
            _check(isinstance(value, str), f"{section}.{key} must be a string")
        out[key] = value
    return dataclasses.replace(base, **out)


def load_config(path: str | Path | None = None, preset: str | None = None) -> Config:
    """Load a config from a TOML or JSON file, or a named preset; default: ``default``."""
    if path is None:
        name = preset or "default"
        _check(name in PRESETS, f"unknown preset {name!r}; have {sorted(PRESETS)}")
        return PRESETS[name]
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    text = p.read_text()
    try:
        data = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot parse {p}: {exc}") from exc
    if preset is not None:
        data.setdefault("preset", preset)
    return Config.from_dict(data)


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
