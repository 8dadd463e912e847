"""desire.config: presets, TOML/JSON loading and the errors a user sees for a bad config."""

from __future__ import annotations

from pathlib import Path

import pytest

from desire.config import PRESETS, Config, ConfigError, load_config


def test_presets_and_defaults() -> None:
    assert load_config().network.layers == (784, 64, 10)
    assert load_config(preset="fmnist-1000").network.layers == (784, 1000, 100, 10)
    assert load_config().hardware.training, "the default accelerator learns on chip"
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config(preset="nope")


def test_toml_and_json_round_trip(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('preset = "default"\n[hardware]\nlanes = 2\ntraining = false\n')
    cfg = load_config(toml)
    assert (cfg.hardware.lanes, cfg.hardware.training) == (2, False)
    js = tmp_path / "c.json"
    js.write_text(cfg.to_json())
    assert load_config(js) == cfg
    # a config written before ``training`` existed still loads, with learning built
    old = cfg.to_dict()
    del old["hardware"]["training"]
    assert Config.from_dict(old).hardware.training


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"hardware": {"training": 1}}, "hardware.training must be true or false"),
        ({"hardware": {"lanes": True}}, "hardware.lanes must be an int"),
        ({"hardware": {"lanes": 0}}, "lanes must be in"),
        ({"hardware": {"pipes": 2}}, "unknown keys in"),
        ({"layers": [1, 2]}, "unknown config sections"),
    ],
)
def test_bad_values_are_named(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_dict(data)


def test_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[hardware\nlanes = 2\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(bad)
    assert set(PRESETS) >= {"default", "fmnist-1000", "mnist-1600"}
