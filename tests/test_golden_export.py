"""golden.export.load_export against tampered exports whose checksums were recomputed.

Each case of the user trial gets its own test: the content is malformed but every SHA-256
in the manifest matches, so only the loader's own checks stand between the file and a
traceback or a silently wrong network. Every refusal is one ExportError line naming the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from desire.config import load_config
from desire.errors import UserError
from golden.export import ExportError, load_export, write_export
from golden.network import GoldenNet

CFG = load_config().replace(network={"layers": (784, 8, 10)}, hardware={"lanes": 2})


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A valid export of a small 784-8-10 network with 2 lanes."""
    return write_export(tmp_path / "exp", CFG, GoldenNet.init_random(CFG, 3).weights)


def manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def edit_manifest(out: Path, edit: Callable[[dict], object]) -> None:
    """Change the manifest in place with ``edit`` (its return value is ignored)."""
    manifest = manifest_of(out)
    edit(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))


def replace_file(out: Path, name: str, data: bytes) -> None:
    """Write ``data`` as file ``name`` and recompute its checksum in the manifest."""
    (out / name).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()

    def update(m: dict) -> None:
        if m["npz"] == name:
            m["npz_sha256"] = digest
        for entry in m["layers"]:
            if entry["hex"] == name:
                entry["sha256"] = digest

    edit_manifest(out, update)


def npz_bytes(arrays: dict[str, np.ndarray], allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, a in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(a), allow_pickle=allow_pickle)
            zf.writestr(f"{name}.npy", member.getvalue())
    return buf.getvalue()


def weights(out: Path) -> dict[str, np.ndarray]:
    with np.load(out / "weights.npz") as data:
        return {k: data[k] for k in data.files}


def refused(out: Path, *fragments: str) -> str:
    """Load ``out``, expect one ExportError line holding every fragment; no file written."""
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ExportError) as exc:
        load_export(out)
    message = str(exc.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert sorted(p.name for p in out.iterdir()) == before
    return message


def test_valid_export_loads(export: Path) -> None:
    cfg, ws, _ = load_export(export)
    assert cfg == CFG
    assert [w.shape for w in ws] == [(8, 784), (10, 8)]
    assert all(w.dtype == np.int32 for w in ws)
    assert issubclass(ExportError, UserError)


def test_non_hex_line_in_hex_file(export: Path) -> None:
    lines = (export / "w1.hex").read_text().splitlines()
    lines[3] = "zz" + lines[3][2:]
    replace_file(export, "w1.hex", ("\n".join(lines) + "\n").encode())
    refused(export, "w1.hex", "word 3", "hex number")


def test_hex_word_wider_than_the_memory(export: Path) -> None:
    lines = (export / "w1.hex").read_text().splitlines()
    lines[0] = "1" + lines[0]
    replace_file(export, "w1.hex", ("\n".join(lines) + "\n").encode())
    refused(export, "w1.hex", "word 0", "32-bit")


def test_binary_hex_file(export: Path) -> None:
    replace_file(export, "w0.hex", b"\xff\xfe\x00garbage")
    refused(export, "w0.hex", "not a text file")


@pytest.mark.parametrize("delta", [-1, 1])
def test_hex_file_with_wrong_number_of_words(export: Path, delta: int) -> None:
    lines = (export / "w0.hex").read_text().splitlines()
    lines = lines[:-1] if delta < 0 else [*lines, lines[0]]
    replace_file(export, "w0.hex", ("\n".join(lines) + "\n").encode())
    refused(export, "w0.hex", f"holds {784 * 4 + delta} words", f"needs {784 * 4}")


def test_hex_file_disagreeing_with_npz(export: Path) -> None:
    lines = (export / "w1.hex").read_text().splitlines()
    lines[0] = f"{int(lines[0], 16) ^ 1:08x}"
    replace_file(export, "w1.hex", ("\n".join(lines) + "\n").encode())
    refused(export, "w1.hex", "disagrees with", "weights.npz")


def test_manifest_that_is_a_json_list(export: Path) -> None:
    (export / "manifest.json").write_text(json.dumps([manifest_of(export)]))
    refused(export, "manifest.json", "not a desire-snn-export v1 manifest")


def test_manifest_of_binary_garbage(export: Path) -> None:
    (export / "manifest.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01")
    refused(export, "manifest.json", "not UTF-8")


def test_manifest_version_true_is_not_1(export: Path) -> None:
    edit_manifest(export, lambda m: m.update(version=True))
    refused(export, "manifest.json", "v1 manifest")


@pytest.mark.parametrize("key", ["layers", "npz_sha256", "npz", "config"])
def test_manifest_missing_a_field(export: Path, key: str) -> None:
    edit_manifest(export, lambda m: m.pop(key))
    refused(export, "manifest.json", f"'{key}' is missing")


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda m: m.update(layers={"w0": 1}), "'layers' must be a list"),
        (lambda m: m.update(layers=[1, 2]), "layers[0] must be an object"),
        (lambda m: m.update(npz_sha256=12), "'npz_sha256' must be a string"),
        (lambda m: m.update(npz=["weights.npz"]), "'npz' must be a string"),
        (lambda m: m.update(config="default"), "'config' must be an object"),
        (lambda m: m["layers"][0].update(shape="8x784"), "'layers[0].shape' must be a list"),
        (lambda m: m["layers"][1].update(sha256=None), "'layers[1].sha256' must be a string"),
        (lambda m: m["layers"][1].update(depth=True), "'layers[1].depth' must be an integer"),
        (lambda m: m["layers"][0].pop("hex"), "'layers[0].hex' is missing"),
        (lambda m: m["layers"][0].update(shape=[8.0, 784]), "layers[0].shape is [8.0, 784]"),
        (lambda m: m["layers"][0].update(depth=1), "layers[0].depth is 1"),
        (lambda m: m["layers"][1].update(word_bits=16), "layers[1].word_bits is 16"),
        (lambda m: m["layers"][1].update(name="w0"), "layers[1].name is 'w0'"),
        (lambda m: m["config"]["network"].update(tsteps="20"), "invalid config"),
    ],
)
def test_manifest_with_wrong_types_or_values(
    export: Path, edit: Callable[[dict], None], fragment: str
) -> None:
    edit_manifest(export, edit)
    refused(export, "manifest.json", fragment)


def test_npz_that_is_not_a_zip(export: Path) -> None:
    replace_file(export, "weights.npz", b"this is not a zip archive at all")
    refused(export, "weights.npz is not an npz archive")


def test_npz_holding_a_single_npy(export: Path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.zeros((8, 784), dtype=np.int32))
    replace_file(export, "weights.npz", buf.getvalue())
    refused(export, "weights.npz is not an npz archive")


def test_npz_with_object_arrays(export: Path) -> None:
    ws = weights(export)
    ws["w0"] = ws["w0"].astype(object)
    replace_file(export, "weights.npz", npz_bytes(ws, allow_pickle=True))
    refused(export, "weights.npz", "w0 holds object values, not integers")


def test_npz_with_float_arrays(export: Path) -> None:
    ws = weights(export)
    ws["w1"] = ws["w1"].astype(np.float64)
    replace_file(export, "weights.npz", npz_bytes(ws))
    refused(export, "weights.npz", "w1 holds float64 values")


def test_npz_weights_out_of_range(export: Path) -> None:
    ws = weights(export)
    ws["w1"] = ws["w1"].astype(np.int64)
    ws["w1"][0, 0] = 2**15
    replace_file(export, "weights.npz", npz_bytes(ws))
    refused(export, "weights.npz", "w1 holds weights outside the 16-bit range")


def test_npz_with_too_few_layers(export: Path) -> None:
    replace_file(export, "weights.npz", npz_bytes({"w0": weights(export)["w0"]}))
    refused(export, "weights.npz holds w0;", "need exactly w0, w1")


def test_npz_with_an_extra_layer(export: Path) -> None:
    ws = weights(export)
    replace_file(export, "weights.npz", npz_bytes({**ws, "w2": ws["w1"]}))
    refused(export, "weights.npz holds w0, w1, w2;", "2 weight layers need exactly w0, w1")


def test_manifest_with_too_few_layers(export: Path) -> None:
    edit_manifest(export, lambda m: m["layers"].pop())
    refused(export, "manifest.json", "lists 1 weight layers, its config has 2")


def test_manifest_with_an_extra_layer(export: Path) -> None:
    edit_manifest(export, lambda m: m["layers"].append(dict(m["layers"][1], name="w2")))
    refused(export, "manifest.json", "lists 3 weight layers, its config has 2")


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "sub/w0.hex", "..", ".", ""])
def test_file_names_outside_the_folder(export: Path, name: str) -> None:
    edit_manifest(export, lambda m: m["layers"][0].update(hex=name))
    refused(export, "manifest.json", "not a plain file name inside the export folder")
    edit_manifest(export, lambda m: m["layers"][0].update(hex="w0.hex") or m.update(npz=name))
    refused(export, "manifest.json", "not a plain file name inside the export folder")


def test_shape_disagreement_names_the_manifest(export: Path) -> None:
    edit_manifest(export, lambda m: m["layers"][0].update(shape=[8, 700]))
    message = refused(export, "manifest.json", "layers[0].shape is [8, 700]", "needs [8, 784]")
    assert "weights.npz" not in message


def test_shape_disagreement_names_the_npz(export: Path) -> None:
    ws = weights(export)
    ws["w0"] = ws["w0"][:, :700]
    replace_file(export, "weights.npz", npz_bytes(ws))
    refused(export, "weights.npz", "w0 has shape (8, 700), its config needs (8, 784)")


def test_missing_and_tampered_files(export: Path) -> None:
    (export / "w1.hex").unlink()
    refused(export, "w1.hex is missing")
    (export / "weights.npz").write_bytes(b"edited")
    refused(export, "weights.npz does not match its checksum")
