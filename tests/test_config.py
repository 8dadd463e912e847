"""desire.config: presets, TOML/JSON loading and the errors a user sees for a bad config."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from desire.config import MAX_LAYER_SIZE, PRESETS, Config, ConfigError, Network, load_config


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
        ({"hardware": {"weight_ports": 3}}, "weight_ports must be 1 or 2"),
        ({"hardware": {"weight_ports": 1}}, "weight_ports = 1 needs training = false"),
        ({"hardware": {"spike_vectors": "fifo"}}, "spike_vectors must be one of"),
        (
            {"hardware": {"spike_vectors": "memory", "training": False}},
            "spike_vectors = memory needs architecture = shared",
        ),
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


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(path: Path, *fragments: str) -> str:
    """load_config refuses ``path`` with one ConfigError line naming it and every fragment."""
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_non_numeric_element_of_a_tuple_field(tmp_path: Path) -> None:
    refused(write(tmp_path, '[network]\ndropout = ["a", 0.1]\n'), "network.dropout[0]", "number")
    refused(write(tmp_path, "[network]\nlayers = [784, 6.5, 10]\n"), "network.layers[1]", "int")
    refused(write(tmp_path, "[network]\nlayers = [784, [64], 10]\n"), "network.layers[1]", "int")


FLOAT_FIELDS = [f.name for f in fields(Network) if isinstance(f.default, float)]


@pytest.mark.parametrize("key", FLOAT_FIELDS)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_every_float_field_must_be_finite(tmp_path: Path, key: str, value: str) -> None:
    refused(write(tmp_path, f"[network]\n{key} = {value}\n"), f"network.{key}", "finite")


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_dropout_must_be_finite(tmp_path: Path, value: str) -> None:
    refused(write(tmp_path, f"[network]\ndropout = [0.1, {value}]\n"), "dropout[1]", "finite")


def test_lr_inf_is_refused_not_turned_into_nan_weights(tmp_path: Path) -> None:
    refused(write(tmp_path, "[network]\nlr = inf\n"), "network.lr must be a finite number")
    # a finite lr whose learning-rate register does not fit 32 bits
    refused(write(tmp_path, "[network]\nlr = 2.0\n"), "learning-rate register", "32 bits")


def test_huge_layer_is_refused_with_the_bound(tmp_path: Path) -> None:
    refused(
        write(tmp_path, "[network]\nlayers = [784, 2000000000, 10]\n"),
        "2000000000",
        f"[1, {MAX_LAYER_SIZE}]",
    )
    assert load_config(write(tmp_path, f"[network]\nlayers = [784, {MAX_LAYER_SIZE}, 10]\n"))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[network]\nlr = true\n", "network.lr must be a number, got True"),
        ("[network]\nmempot_thres = false\n", "network.mempot_thres must be a number"),
        ("[network]\ntsteps = true\n", "network.tsteps must be an int, got True"),
        ("[network]\nlayers = [784, true, 10]\n", "network.layers[1] must be an int"),
        ("[network]\ndropout = [true, 0.1]\n", "network.dropout[0] must be a number"),
        ("[formats]\nweight_bits = true\n", "formats.weight_bits must be an int"),
    ],
)
def test_booleans_are_not_numbers(tmp_path: Path, text: str, fragment: str) -> None:
    refused(write(tmp_path, text), fragment)


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b"[network]\nlr = 1e-5 # \xff\xfe\n")
    refused(path, "is not UTF-8 text")
    path.write_bytes(b"\xef\xbb\xbf[hardware]\nlanes = 2\n")  # a BOM is fine
    assert load_config(path).hardware.lanes == 2


def test_folder_and_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "c.toml"
    folder.mkdir()
    refused(folder, "is a folder, not a file")
    path = write(tmp_path, "[hardware]\nlanes = 2\n", "d.toml")

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)  # root can read a chmod 000 file
    refused(path, "cannot read config file", "Permission denied")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[1, 2]", "a config must be a JSON object, got [1, 2]"),
        ('{"preset": [1]}', "unknown preset [1]"),
        ('{"network": {"tsteps": 1e400}}', "network.tsteps must be an int, got inf"),
        ('{"network": {"lr": NaN}}', "network.lr must be a finite number"),
        ('{"network": {"tsteps": ' + "9" * 5000 + "}}", "cannot parse"),
        ("[" * 100_000, "cannot parse"),
    ],
)
def test_json_mistakes(tmp_path: Path, text: str, fragment: str) -> None:
    refused(write(tmp_path, text, "c.json"), fragment)


def test_training_threshold_that_rounds_to_zero(tmp_path: Path) -> None:
    """thr_train = round(0.0002 * 0.6 * 4096) = 0: the RTL's threshold register refuses it."""
    text = "[network]\nmempot_thres = 0.0002\ndropout = [0.0, 0.4]\n"
    refused(write(tmp_path, text), "weight layer 1 a training threshold", "= 0")
    assert load_config(write(tmp_path, "[network]\nmempot_thres = 0.0002\ndropout = [0.0, 0.0]\n"))


@pytest.mark.parametrize(
    ("dropout", "prob_bits", "fragment"),
    [
        (
            "[1e-6, 0.4]",
            16,
            "dropout 1e-06 of neuron layer 0 rounds to drop_p = round(p * 2^16) = 0",
        ),
        ("[0.0, 0.1]", 2, "dropout 0.1 of neuron layer 1 rounds to drop_p = round(p * 2^2) = 0"),
        ("[7.62939453125e-06, 0.4]", 16, "= 0 and would drop nothing"),  # 0.5: ties to even
        ("[0.0, 0.9]", 1, "rounds to drop_p = 2^1 and would drop every neuron"),
        ("[0.999999, 0.4]", 16, "rounds to drop_p = 2^16 and would drop every neuron"),
    ],
)
def test_dropout_that_rounds_to_nothing_or_everything(
    tmp_path: Path, dropout: str, prob_bits: int, fragment: str
) -> None:
    text = f"[network]\ndropout = {dropout}\n[formats]\nprob_bits = {prob_bits}\n"
    refused(write(tmp_path, text), fragment)


def test_config_is_checked_when_built_in_code() -> None:
    """Config() and Config.replace() (the CLI flags) run the same checks as a file."""
    cfg = load_config()
    with pytest.raises(ConfigError, match="mempot_thres must be a finite number"):
        cfg.replace(network={"mempot_thres": float("inf")})
    with pytest.raises(ConfigError, match=r"network.dropout\[0\] must be a number"):
        cfg.replace(network={"dropout": ("a", 0.1)})
    with pytest.raises(ConfigError, match="training threshold"):
        cfg.replace(network={"mempot_thres": 0.0002})
    with pytest.raises(ConfigError, match="tsteps must be an int"):
        cfg.replace(network={"tsteps": 2.5})
