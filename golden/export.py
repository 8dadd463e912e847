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
import json
from pathlib import Path

import numpy as np

from desire.atomic import atomic_dir, remove_temps
from desire.config import Config, ConfigError
from desire.errors import OutputError, UserError
from desire.outdir import check_writable, create_dir
from golden.fixed import constants

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


def _read_manifest(path: Path) -> dict:
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise ExportError(f"{path} is not an export: manifest.json is missing")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{mpath} is not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ExportError(f"{mpath}: not a {FORMAT} v{VERSION} manifest")
    return manifest


def _checked_file(path: Path, name: str, digest: str) -> Path:
    f = path / name
    if not f.is_file():
        raise ExportError(f"{f} is missing")
    if _sha256(f) != digest:
        raise ExportError(f"{f} does not match its checksum in manifest.json (corrupt or edited)")
    return f


def load_export(path: str | Path) -> tuple[Config, list[np.ndarray], dict]:
    """Load and validate an export; returns (config, integer weights, manifest)."""
    path = Path(path)
    manifest = _read_manifest(path)
    try:
        cfg = Config.from_dict({k: v for k, v in manifest["config"].items()})
    except (ConfigError, KeyError, TypeError) as exc:
        raise ExportError(f"{path}: invalid config in manifest: {exc}") from exc
    c = constants(cfg)
    npz = _checked_file(path, manifest["npz"], manifest["npz_sha256"])
    with np.load(npz) as data:
        weights = [data[f"w{l}"] for l in range(c.n_linear) if f"w{l}" in data]
    if len(weights) != c.n_linear:
        raise ExportError(f"{npz} has {len(weights)} weight layers, config needs {c.n_linear}")
    lo, hi = c.weight_range
    for l, (w, entry) in enumerate(zip(weights, manifest["layers"], strict=True)):
        expected = (c.layers[l + 1], c.layers[l])
        if w.shape != expected or list(expected) != entry["shape"]:
            raise ExportError(f"layer {l}: shape {w.shape}, config needs {expected}")
        if not np.issubdtype(w.dtype, np.integer) or w.min() < lo or w.max() > hi:
            raise ExportError(f"layer {l}: weights are not {c.weight_bits}-bit integers")
        hex_file = _checked_file(path, entry["hex"], entry["sha256"])
        words = [int(line, 16) for line in hex_file.read_text().split()]
        if not np.array_equal(
            words_to_weights(words, *expected, cfg.hardware.lanes, c.weight_bits), w
        ):
            raise ExportError(f"{hex_file} disagrees with {npz}")
    return cfg, [w.astype(np.int32) for w in weights], manifest
