"""Accelerator weight files: npz, one ``$readmemh`` hex file per weight memory, a JSON manifest.

The hex layout is the RTL weight memory's (docs/architecture.md): layer l has
``n_in * ceil(n_out / P)`` words of ``P * weight_bits`` bits; word
``i * ceil(n_out / P) + b`` holds the weights from input ``i`` to outputs
``b*P .. b*P + P - 1``, lane 0 in the least significant bits, two's complement,
missing outputs padded with zeros. Loading checks the manifest's format, the
config's shapes and ranges and every file's SHA-256, so a truncated or edited
export is refused rather than silently mis-loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from desire.atomic import atomic_dir, remove_temps
from desire.config import Config, ConfigError
from desire.errors import OutputError, UserError
from desire.outdir import check_writable, create_dir
from golden.fixed import Constants, constants

__all__ = [
    "ExportError",
    "check_target",
    "load_export",
    "memory_words",
    "words_to_weights",
    "write_export",
]

FORMAT = "desire-snn-export"
VERSION = 1


class ExportError(UserError, ValueError):
    """An export directory is missing, incomplete, corrupt or does not match its config."""


def memory_words(w: np.ndarray, lanes: int, bits: int) -> list[int]:
    """Pack an (n_out, n_in) integer matrix into the in-major, P-lane memory words."""
    n_out, n_in = w.shape
    blocks = -(-n_out // lanes)
    padded = np.zeros((blocks * lanes, n_in), dtype=np.int64)
    padded[:n_out] = w
    lane_vals = (padded.T.reshape(n_in * blocks, lanes) & ((1 << bits) - 1)).astype(object)
    return [sum(int(v) << (bits * j) for j, v in enumerate(row)) for row in lane_vals]


def words_to_weights(words: list[int], n_out: int, n_in: int, lanes: int, bits: int) -> np.ndarray:
    """Inverse of :func:`memory_words`."""
    blocks = -(-n_out // lanes)
    if len(words) != n_in * blocks:
        raise ExportError(f"expected {n_in * blocks} memory words, got {len(words)}")
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    lanes_arr = np.array(
        [[(word >> (bits * j)) & mask for j in range(lanes)] for word in words], dtype=np.int64
    )
    lanes_arr = np.where(lanes_arr >= sign, lanes_arr - (1 << bits), lanes_arr)
    return lanes_arr.reshape(n_in, blocks * lanes).T[:n_out].astype(np.int32)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hex_text(words: list[int], word_bits: int) -> str:
    digits = -(-word_bits // 4)
    return "".join(f"{w:0{digits}x}\n" for w in words)


def write_export(
    out_dir: str | Path,
    cfg: Config,
    weights: list[np.ndarray],
    extra: dict | None = None,
    force: bool = False,
) -> Path:
    """Write an export atomically: build it in a temporary sibling folder, then swap it in.

    ``out_dir`` must be new, an empty folder, or (with ``force``) an earlier export that
    holds nothing but its own files; anything else is refused (:func:`check_target`), so
    a mistyped ``--out`` never deletes a user's folder.
    """
    c = constants(cfg)
    out = Path(out_dir)
    check_target(out, force)
    create_dir(out.parent)
    remove_temps(out.parent, (out.name,))
    try:
        with atomic_dir(out) as tmp:
            _write_files(tmp, cfg, c.weight_bits, weights, extra or {})
    except OSError as exc:
        raise OutputError(f"cannot write the export {out}: {exc.strerror or exc}") from exc
    return out


def _write_files(tmp: Path, cfg: Config, bits: int, weights: list[np.ndarray], extra: dict) -> None:
    lanes = cfg.hardware.lanes
    np.savez(tmp / "weights.npz", **{f"w{l}": w for l, w in enumerate(weights)})
    layers = []
    for l, w in enumerate(weights):
        words = memory_words(w, lanes, bits)
        (tmp / f"w{l}.hex").write_text(_hex_text(words, lanes * bits))
        layers.append(
            {
                "name": f"w{l}",
                "shape": list(w.shape),
                "hex": f"w{l}.hex",
                "depth": len(words),
                "word_bits": lanes * bits,
                "sha256": _sha256(tmp / f"w{l}.hex"),
            }
        )
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "config": cfg.to_dict(),
        "layers": layers,
        "npz": "weights.npz",
        "npz_sha256": _sha256(tmp / "weights.npz"),
        **extra,
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _own_files(path: Path) -> set[str] | None:
    """The names an export at ``path`` wrote (from its manifest); None if it is no export."""
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            return None
        hexes = {str(e["hex"]) for e in manifest.get("layers", [])}
        return {"manifest.json", str(manifest.get("npz", "weights.npz")), *hexes}
    except (OSError, ValueError, TypeError, KeyError):
        return None


def check_target(out: Path, force: bool) -> None:
    """Refuse an export target that holds anything but an export (which ``force`` replaces).

    Called before anything is written, so that a refused export leaves nothing behind.
    """
    out = Path(out)
    check_writable(out)
    if Path.cwd().resolve().is_relative_to(out.resolve()):
        raise OutputError(f"--out {out} contains the working directory; choose a new folder")
    if not out.exists() or not any(out.iterdir()):
        return
    own = _own_files(out)
    if own is None:
        raise OutputError(
            f"--out {out} is a folder that holds no export (no export manifest.json); "
            f"refusing to replace it: choose a new folder, e.g. {out / 'export'}"
        )
    if not force:
        raise OutputError(f"--out {out} already holds an export; --force replaces it")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in own)
    if foreign:
        raise OutputError(
            f"--out {out} holds files the export did not write ({', '.join(foreign[:3])}); "
            "move them away before replacing it"
        )


#: Fields every manifest holds, with their JSON types: checked before any is used, so a
#: tampered manifest (checksums recomputed) is refused with one line, not a traceback.
_MANIFEST_FIELDS: dict[str, type] = {"config": dict, "layers": list, "npz": str, "npz_sha256": str}
_LAYER_FIELDS: dict[str, type] = {
    "name": str,
    "shape": list,
    "hex": str,
    "depth": int,
    "word_bits": int,
    "sha256": str,
}
_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer"}
#: What a corrupt zip or .npy member raises inside zipfile, zlib and numpy. numpy parses a
#: .npy header as a Python literal, so tokenizer and parser errors belong here too.
_ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    OSError,
    EOFError,
    ValueError,
    TypeError,
    NotImplementedError,
    RuntimeError,
    SyntaxError,
    tokenize.TokenError,
    RecursionError,
)
_NPY_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
#: Bytes allowed for the magic and header of a .npy member (numpy reads headers of at
#: most 10,000 bytes); with the layer's data, the most a member may hold, so that a
#: compressed member cannot expand without bound.
_NPY_HEADER_MAX = 16_384
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _why(exc: BaseException, limit: int = 160) -> str:
    """A library's error text as one short line, for a message that names the file."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_manifest(path: Path) -> dict:
    """manifest.json as a dict whose fields have the types :func:`load_export` relies on."""
    mpath = path / "manifest.json"
    try:
        raw = mpath.read_bytes() if mpath.is_file() else None
    except OSError as exc:
        raise ExportError(f"cannot read {mpath}: {exc.strerror or exc}") from exc
    if raw is None:
        raise ExportError(f"{path} is not an export: manifest.json is missing")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ExportError(f"{mpath} is not UTF-8 text (bad byte at offset {exc.start})") from exc
    except (ValueError, RecursionError) as exc:
        raise ExportError(f"{mpath} is not valid JSON: {_why(exc)}") from exc
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or not _is_int(manifest.get("version"))
        or manifest["version"] != VERSION
    ):
        raise ExportError(f"{mpath}: not a {FORMAT} v{VERSION} manifest")
    _check_fields(manifest, _MANIFEST_FIELDS, mpath, "")
    return manifest


def _check_fields(entry: dict, kinds: dict[str, type], mpath: Path, where: str) -> None:
    for key, kind in kinds.items():
        if key not in entry:
            raise ExportError(f"{mpath}: '{where}{key}' is missing")
        value = entry[key]
        if not isinstance(value, kind) or (kind is int and not _is_int(value)):
            raise ExportError(
                f"{mpath}: '{where}{key}' must be {_JSON_NAMES[kind]}, got {value!r:.60}"
            )


def _layer_entries(manifest: dict, mpath: Path, cfg: Config, c: Constants) -> list[dict]:
    """The manifest's layer list, checked against the config: one entry per weight layer
    with the name, shape and hex geometry the config implies (no extra layers)."""
    layers = manifest["layers"]
    if len(layers) != c.n_linear:
        raise ExportError(
            f"{mpath}: lists {len(layers)} weight layers, its config has {c.n_linear}"
        )
    lanes = cfg.hardware.lanes
    for l, entry in enumerate(layers):
        if not isinstance(entry, dict):
            raise ExportError(f"{mpath}: layers[{l}] must be an object, got {entry!r:.60}")
        _check_fields(entry, _LAYER_FIELDS, mpath, f"layers[{l}].")
        n_out, n_in = c.layers[l + 1], c.layers[l]
        expected = {
            "name": f"w{l}",
            "shape": [n_out, n_in],
            "depth": n_in * -(-n_out // lanes),
            "word_bits": lanes * c.weight_bits,
        }
        for key, want in expected.items():
            got = entry[key]
            if got != want or (key == "shape" and not all(_is_int(x) for x in got)):
                raise ExportError(
                    f"{mpath}: layers[{l}].{key} is {got!r:.60}, its config needs {want!r}"
                )
    return layers


def _member(path: Path, name: str, mpath: Path) -> Path:
    """``path / name`` for a plain file name; ``../x``, ``/x`` or ``a/b`` would read outside."""
    if not name or Path(name).name != name or name == ".." or "\0" in name:
        raise ExportError(
            f"{mpath}: file name {name!r:.60} is not a plain file name inside the export folder"
        )
    return path / name


def _checked_bytes(path: Path, name: str, digest: str, mpath: Path) -> tuple[Path, bytes]:
    """The content of file ``name`` of the export, if its SHA-256 is ``digest``. The bytes
    that were checked are the bytes that get parsed: a file swapped in between cannot."""
    f = _member(path, name, mpath)
    try:
        if not f.is_file():
            raise ExportError(f"{f} is missing")
        data = f.read_bytes()
    except OSError as exc:
        raise ExportError(f"cannot read {f}: {exc.strerror or exc}") from exc
    if hashlib.sha256(data).hexdigest() != digest:
        raise ExportError(f"{f} does not match its checksum in manifest.json (corrupt or edited)")
    return f, data


def _read_npz(npz: Path, data: bytes, c: Constants) -> list[np.ndarray]:
    """Arrays w0 .. w{n-1} of the npz, exactly those (no extra or missing layer)."""
    want = [f"w{l}.npy" for l in range(c.n_linear)]
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            if sorted(names) != sorted(want):
                have = ", ".join(n.removesuffix(".npy") for n in names[:6]) or "nothing"
                raise ExportError(
                    f"{npz} holds {have}; its config's {c.n_linear} weight layers need "
                    f"exactly {', '.join(w.removesuffix('.npy') for w in want)}"
                )
            return [_npz_layer(zf, npz, l, c) for l in range(c.n_linear)]
    except ExportError:
        raise
    except _ARCHIVE_ERRORS as exc:
        raise ExportError(f"{npz} is not an npz archive ({_why(exc)})") from exc


def _npz_layer(zf: zipfile.ZipFile, npz: Path, l: int, c: Constants) -> np.ndarray:
    """Layer ``l`` of the npz: its header is checked (shape, integer dtype, no pickled
    objects) before any data is read, so a tampered header cannot make it allocate more
    than the config's layer."""
    shape = (c.layers[l + 1], c.layers[l])
    limit = _NPY_HEADER_MAX + 8 * shape[0] * shape[1]
    try:
        with zf.open(f"w{l}.npy") as member:
            raw = member.read(limit + 1)
        if len(raw) > limit:
            raise ExportError(f"{npz}: w{l} is larger than any integer array of shape {shape}")
        f = io.BytesIO(raw)
        version = np.lib.format.read_magic(f)
        if version not in _NPY_READERS:
            raise ExportError(f"{npz}: w{l} is a .npy of version {version}, expected 1.0 or 2.0")
        got, _, dtype = _NPY_READERS[version](f)
        if got != shape:
            raise ExportError(f"{npz}: w{l} has shape {got}, its config needs {shape}")
        if dtype.kind not in "iu":
            raise ExportError(f"{npz}: w{l} holds {dtype} values, not integers")
        f.seek(0)
        w = np.lib.format.read_array(f, allow_pickle=False)
    except ExportError:
        raise
    except _ARCHIVE_ERRORS as exc:
        raise ExportError(f"{npz}: w{l} is not a valid .npy array ({_why(exc)})") from exc
    lo, hi = c.weight_range
    if int(w.min()) < lo or int(w.max()) > hi:
        raise ExportError(f"{npz}: w{l} holds weights outside the {c.weight_bits}-bit range")
    return w.astype(np.int32)


def _hex_words(hex_file: Path, data: bytes, depth: int, word_bits: int) -> list[int]:
    """The words of a ``$readmemh`` file as written by :func:`write_export`: exactly
    ``depth`` hex numbers of at most ``word_bits`` bits, separated by white space."""
    try:
        tokens = data.decode("ascii").split()
    except UnicodeDecodeError as exc:
        raise ExportError(f"{hex_file} is not a text file of hex words") from exc
    if len(tokens) != depth:
        raise ExportError(f"{hex_file} holds {len(tokens)} words, its config needs {depth}")
    digits = -(-word_bits // 4)
    for i, token in enumerate(tokens):
        if not (len(token) <= digits and set(token) <= _HEX_DIGITS) or int(token, 16) >> word_bits:
            raise ExportError(
                f"{hex_file}: word {i} ({token!r:.40}) is not a {word_bits}-bit hex number"
            )
    return [int(token, 16) for token in tokens]


def load_export(path: str | Path) -> tuple[Config, list[np.ndarray], dict]:
    """Load and validate an export; returns (config, integer weights, manifest).

    Every way an export can be damaged or edited (checksums recomputed included) is an
    :class:`ExportError` of one line naming the file: the manifest's fields and types,
    its config, the layer count and geometry, the npz's arrays, every hex word, and that
    the hex files hold the npz's weights.
    """
    path = Path(path)
    mpath = path / "manifest.json"
    manifest = _read_manifest(path)
    try:
        cfg = Config.from_dict(manifest["config"])
    except ConfigError as exc:
        raise ExportError(f"{mpath}: invalid config: {exc}") from exc
    c = constants(cfg)
    entries = _layer_entries(manifest, mpath, cfg, c)
    npz, data = _checked_bytes(path, manifest["npz"], manifest["npz_sha256"], mpath)
    weights = _read_npz(npz, data, c)
    for l, (w, entry) in enumerate(zip(weights, entries, strict=True)):
        hex_file, text = _checked_bytes(path, entry["hex"], entry["sha256"], mpath)
        words = _hex_words(hex_file, text, entry["depth"], entry["word_bits"])
        if not np.array_equal(
            words_to_weights(words, *w.shape, cfg.hardware.lanes, c.weight_bits), w
        ):
            raise ExportError(f"{hex_file} disagrees with {npz} (layer {l})")
    return cfg, weights, manifest
