"""Property tests of every loader: any corruption of its input gives a valid result or one line.

For the config (TOML and JSON), the IDX datasets and the weight exports, Hypothesis mutates
a valid input (random values of random types in random places, flipped, cut or inserted
bytes, gzip of garbage; for exports with the manifest's checksums recomputed so that the
corruption gets past them) and checks that the loader either returns something valid or
raises the project's own :class:`~desire.errors.UserError` with a one-line message, never
another exception, and that it writes nothing into the folder it reads.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import math
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from desire.config import MAX_LAYER_SIZE, PRESETS, Config, load_config
from desire.datasets import load_dataset, read_idx
from desire.errors import UserError
from golden.export import load_export, write_export
from golden.fixed import constants
from golden.network import GoldenNet

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EXPORT_CFG = PRESETS["default"].replace(network={"layers": (784, 8, 10)}, hardware={"lanes": 2})


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A folder for the examples, each in a fresh subfolder (IDX reads are cached by path)."""
    root = Path(tempfile.mkdtemp(prefix="loaders-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


_EXAMPLES = itertools.count()


@contextmanager
def fresh_dir(root: Path) -> Iterator[Path]:
    """An empty folder for one example, removed after it. Its name is never used twice in a
    session: IDX reads are cached by path, mtime and size."""
    folder = root / str(next(_EXAMPLES))
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def valid_or_user_error(
    folder: Path, load: Callable[[], Any], check: Callable[[Any], None]
) -> None:
    """``load()`` returns something ``check`` accepts or raises a one-line UserError; any
    other exception fails the test. The folder's file list must not change."""
    before = listing(folder)
    try:
        result = load()
    except UserError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
    else:
        check(result)
    assert listing(folder) == before


# --------------------------------------------------------------------- mutation strategies
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)  # encodable as UTF-8
toml_scalars = (
    st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.sampled_from([0, 1, -1, 2, 10, 784, MAX_LAYER_SIZE + 1, 2**32, 1e-9, 2e-4, 0.5, 0.9999999])
    | texts
)


def nested(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(texts, kids, max_size=3),
        max_leaves=6,
    )


toml_values = nested(toml_scalars)  # TOML has no null
json_values = nested(st.none() | toml_scalars)


@st.composite
def edited_json(draw: st.DrawFn, doc: Any, values: st.SearchStrategy[Any] = json_values) -> Any:
    """``doc`` with one node replaced by a random JSON value, or deleted, or a key added."""
    doc = json.loads(json.dumps(doc))
    parent: Any = None
    key: Any = None
    node = doc
    depth = draw(st.sampled_from([0, 1, 2, 2, 3, 3, 3, 4]))  # 0: the whole document
    while isinstance(node, dict | list) and node and depth > 0:
        depth -= 1
        parent = node
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        node = node[key]
    action = draw(st.sampled_from(["replace"] * 4 + ["delete", "add"]))
    if parent is None:
        return draw(values)
    if action == "delete":
        del parent[key]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(texts)] = draw(values)
    else:
        parent[key] = draw(values)
    return doc


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with bytes flipped, cut, inserted, or replaced by random bytes."""
    action = draw(st.sampled_from(["flip", "truncate", "insert", "random"]))
    if action == "random" or not data:
        return draw(st.binary(max_size=300))
    at = draw(st.integers(0, len(data) - 1))
    if action == "flip":
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if action == "truncate":
        return data[:at]
    return data[:at] + draw(st.binary(min_size=1, max_size=20)) + data[at:]


# ------------------------------------------------------------------------------ config
def toml_value(v: Any) -> str:
    """A JSON value (without null) in TOML syntax."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):  # JSON escapes are TOML escapes, but TOML has no surrogate pairs
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{toml_value(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def to_toml(data: dict) -> str:
    lines = [
        f"{toml_value(k)} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)
    ]
    for name, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{toml_value(name)}]")
            lines += [f"{toml_value(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def check_config(cfg: Config) -> None:
    """A loaded config is usable end to end: every constant exists, fits and is non-zero."""
    assert isinstance(cfg, Config)
    c = constants(cfg)
    assert c.thr_eval >= 1 and min(c.thr_train) >= 1
    assert c.thr_eval < 2 ** (c.membrane_bits - 1)
    assert all(1 <= n <= MAX_LAYER_SIZE for n in c.layers)
    for j, p_int in enumerate(c.drop_p):
        assert (p_int == 0) == (cfg.network.layer_dropout(j) == 0)
        assert p_int < 2**c.prob_bits
    assert 0 <= c.lr_int(0) < 2**32
    assert all(math.isfinite(x) for x in (c.lr, c.lr_decay, cfg.network.mempot_thres))
    assert Config.from_dict(json.loads(cfg.to_json())) == cfg


BASE_CONFIG = json.loads(json.dumps({"preset": "default", **PRESETS["default"].to_dict()}))


def load_config_file(root: Path, name: str, data: bytes) -> None:
    with fresh_dir(root) as folder:
        (folder / name).write_bytes(data)
        valid_or_user_error(folder, lambda: load_config(folder / name), check_config)


@SETTINGS
@given(st.data())
def test_config_json_with_random_values(scratch: Path, data: st.DataObject) -> None:
    doc = data.draw(edited_json(BASE_CONFIG))
    load_config_file(scratch, "c.json", json.dumps(doc).encode())


@SETTINGS
@given(st.data())
def test_config_toml_with_random_values(scratch: Path, data: st.DataObject) -> None:
    doc = data.draw(edited_json(BASE_CONFIG, toml_values))
    doc = doc if isinstance(doc, dict) else {"network": doc}  # TOML's top level is a table
    load_config_file(scratch, "c.toml", to_toml(doc).encode())


near_valid_network = st.fixed_dictionaries(
    {},
    optional={
        "layers": st.lists(st.integers(1, 100), min_size=2, max_size=4)
        | st.sampled_from([[784, 0, 10], [784, MAX_LAYER_SIZE, 10], [MAX_LAYER_SIZE + 1, 10]]),
        "tsteps": st.integers(0, 1100),
        "error_margin": st.integers(-1, 30),
        "mempot_thres": st.floats(0, 2) | st.sampled_from([1e-4, 2e-4, 1e300, 2.0**-13]),
        "dropout": st.lists(
            st.floats(0, 1) | st.sampled_from([1e-6, 7e-6, 8e-6, 0.99999, 0.999999]),
            min_size=2,
            max_size=2,
        ),
        "lr": st.floats(0, 4) | st.sampled_from([1e-12, 1e-5, 2.0**-31, 2.0]),
        "lr_decay": st.floats(0, 1e308),
    },
)
near_valid_formats = st.fixed_dictionaries(
    {},
    optional={
        k: st.integers(-1, 50)
        for k in ("weight_bits", "weight_frac", "membrane_bits", "trace_bits", "trace_frac")
    }
    | {"prob_bits": st.integers(0, 17), "lr_shift": st.integers(0, 33)},
)


@SETTINGS
@given(near_valid_network, near_valid_formats)
def test_config_with_numbers_near_the_limits(scratch: Path, network: dict, formats: dict) -> None:
    """Reaches the checks between fields: thresholds, drop_p and lr_int that round to 0 or
    overflow; whatever loads has constants that fit (check_config)."""
    doc = {"network": network, "formats": formats}
    load_config_file(scratch, "c.json", json.dumps(doc).encode())


@SETTINGS
@given(st.data(), st.sampled_from(["c.toml", "c.json"]))
def test_config_with_random_bytes(scratch: Path, data: st.DataObject, name: str) -> None:
    text = to_toml(BASE_CONFIG) if name.endswith(".toml") else json.dumps(BASE_CONFIG)
    load_config_file(scratch, name, data.draw(mutated_bytes(text.encode())))


# ----------------------------------------------------------------------------- datasets
def idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


IMAGES = idx(np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256)
LABELS = idx(np.array([0, 9, 4]))


@st.composite
def corrupted_idx(draw: st.DrawFn, data: bytes) -> bytes:
    """An IDX file with a header field set to a random value, or mutated bytes, or gzip of
    either, or a cut gzip stream."""
    action = draw(st.sampled_from(["header", "bytes", "gzip", "cut-gzip"]))
    if action == "header":
        field = draw(st.integers(0, (len(data) >= 16) + 3))
        value = draw(st.integers(0, 2**32 - 1) | st.sampled_from([0, 1, 3, 28, 784, 2**31]))
        at = 4 * field
        data = data[:at] + value.to_bytes(4, "big") + data[at + 4 :]
    elif action in ("bytes", "gzip"):
        data = draw(mutated_bytes(data))
    if action == "gzip":
        return gzip.compress(data)
    if action == "cut-gzip":
        packed = gzip.compress(data)
        return packed[: draw(st.integers(0, len(packed) - 1))]
    return data


def check_idx(array: np.ndarray) -> None:
    assert array.dtype == np.uint8 and array.ndim in (1, 3)


@SETTINGS
@given(st.data(), st.sampled_from([IMAGES, LABELS]), st.booleans())
def test_read_idx_of_corrupt_files(
    scratch: Path, data: st.DataObject, base: bytes, gz: bool
) -> None:
    with fresh_dir(scratch) as folder:
        path = folder / ("x-idx-ubyte.gz" if gz else "x-idx-ubyte")
        path.write_bytes(data.draw(corrupted_idx(base)))
        valid_or_user_error(folder, lambda: read_idx(path), check_idx)


def check_split(split: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = split
    assert images.dtype == np.uint8 and labels.dtype == np.uint8
    assert images.ndim == 2 and images.shape[1] == 784 and labels.shape == (len(images),)
    assert len(labels) >= 1 and labels.max() < 10


@SETTINGS
@given(st.data(), st.booleans())
def test_load_dataset_of_corrupt_files(scratch: Path, data: st.DataObject, images: bool) -> None:
    files = {"t10k-images-idx3-ubyte": IMAGES, "t10k-labels-idx1-ubyte": LABELS}
    victim = sorted(files)[0 if images else 1]
    files[victim] = data.draw(corrupted_idx(files[victim]))
    with fresh_dir(scratch) as folder:
        for name, content in files.items():
            (folder / name).write_bytes(content)
        valid_or_user_error(folder, lambda: load_dataset("mnist", "test", folder), check_split)


# ------------------------------------------------------------------------------ exports
@pytest.fixture(scope="module")
def base_export(scratch: Path) -> Path:
    return write_export(scratch / "base", EXPORT_CFG, GoldenNet.init_random(EXPORT_CFG, 7).weights)


def rehash(out: Path, name: str) -> None:
    """Recompute the checksum of file ``name`` in the manifest, as an attacker would."""
    manifest = json.loads((out / "manifest.json").read_text())
    digest = hashlib.sha256((out / name).read_bytes()).hexdigest()
    if manifest["npz"] == name:
        manifest["npz_sha256"] = digest
    for entry in manifest["layers"]:
        if entry["hex"] == name:
            entry["sha256"] = digest
    (out / "manifest.json").write_text(json.dumps(manifest))


def check_export(loaded: tuple[Config, list[np.ndarray], dict]) -> None:
    cfg, weights, _ = loaded
    c = constants(cfg)
    lo, hi = c.weight_range
    assert [w.shape for w in weights] == [(o, i) for i, o in itertools.pairwise(c.layers)]
    assert all(w.dtype == np.int32 and w.min() >= lo and w.max() <= hi for w in weights)
    GoldenNet(cfg, weights)  # usable as is


def load_mutated_export(base: Path, root: Path, mutate: Callable[[Path], None]) -> None:
    """Copy the export ``base``, ``mutate`` the copy, load it."""
    with fresh_dir(root) as folder:
        out = shutil.copytree(base, folder / "exp")
        mutate(out)
        valid_or_user_error(out, lambda: load_export(out), check_export)


@SETTINGS
@given(st.data())
def test_export_with_edited_manifest(scratch: Path, base_export: Path, data: st.DataObject) -> None:
    def mutate(out: Path) -> None:
        manifest = json.loads((out / "manifest.json").read_text())
        (out / "manifest.json").write_text(json.dumps(data.draw(edited_json(manifest))))

    load_mutated_export(base_export, scratch, mutate)


@SETTINGS
@given(st.data())
def test_export_with_corrupt_manifest_bytes(
    scratch: Path, base_export: Path, data: st.DataObject
) -> None:
    def mutate(out: Path) -> None:
        path = out / "manifest.json"
        path.write_bytes(data.draw(mutated_bytes(path.read_bytes())))

    load_mutated_export(base_export, scratch, mutate)


@SETTINGS
@given(st.data(), st.sampled_from(["weights.npz", "w0.hex", "w1.hex"]))
def test_export_with_corrupt_file_and_matching_checksum(
    scratch: Path, base_export: Path, data: st.DataObject, name: str
) -> None:
    def mutate(out: Path) -> None:
        path = out / name
        path.write_bytes(data.draw(mutated_bytes(path.read_bytes())))
        rehash(out, name)

    load_mutated_export(base_export, scratch, mutate)


@SETTINGS
@given(st.data())
def test_export_with_corrupt_npy_in_a_valid_zip(
    scratch: Path, base_export: Path, data: st.DataObject
) -> None:
    """The zip (and its CRCs) stays valid, so the damage reaches the .npy parsing."""

    def mutate(out: Path) -> None:
        with zipfile.ZipFile(out / "weights.npz") as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        victim = data.draw(st.sampled_from(sorted(members)))
        members[victim] = data.draw(mutated_bytes(members[victim]))
        if data.draw(st.booleans()):
            members[data.draw(st.sampled_from(["w2.npy", "x", "w0.npy.npy"]))] = members[victim]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for n, content in members.items():
                zf.writestr(n, content)
        (out / "weights.npz").write_bytes(buf.getvalue())
        rehash(out, "weights.npz")

    load_mutated_export(base_export, scratch, mutate)


@SETTINGS
@given(st.data(), st.sampled_from(["w0.hex", "w1.hex"]))
def test_export_with_edited_hex_words(
    scratch: Path, base_export: Path, data: st.DataObject, name: str
) -> None:
    def mutate(out: Path) -> None:
        words = (out / name).read_text().split()
        at = data.draw(st.integers(0, len(words) - 1))
        action = data.draw(st.sampled_from(["replace", "delete", "duplicate"]))
        if action == "replace":
            words[at] = data.draw(st.text("0123456789abcdefABCDEFx_-+ ", max_size=12))
        elif action == "delete":
            del words[at]
        else:
            words.insert(at, words[at])
        (out / name).write_text("\n".join(words) + "\n")
        rehash(out, name)

    load_mutated_export(base_export, scratch, mutate)
