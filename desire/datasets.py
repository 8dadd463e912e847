"""MNIST and Fashion-MNIST from their original IDX files.

Both datasets ship as the same four files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``), raw or gzipped. The trainer, the golden model and
the testbenches all read them through :func:`load_dataset`, so that every
stage sees identical samples and a missing or damaged file fails once, early,
with a message that says which file and what to do about it, instead of as a
shape error deep inside training.

Nothing is fetched from the network unless ``download=True`` is passed: most
machines this runs on are offline and should use a local copy (for
Fashion-MNIST the Debian package ``dataset-fashion-mnist``).
"""

from __future__ import annotations

import functools
import gzip
import http.client
import math
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from desire.errors import UserError

__all__ = ["DATASETS", "DatasetError", "find_data_dir", "load_dataset", "read_idx"]

DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist")

# Base file names (without ``.gz``) of the images and the labels of each split.
_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Folders that a distribution package installs the files into.
_SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}

# ``<repo>/../shared/data``: a copy shared by several checkouts of the repository.
_SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"

# Public mirrors of the gzipped files, tried in order.
_MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
}

# Seconds to wait on a mirror; short, so that an offline machine fails quickly.
_TIMEOUT_S = 15.0

_ENV_VAR = "DESIRE_DATA_DIR"
_GZIP_MAGIC = b"\x1f\x8b"
_UBYTE = 0x08
_IMAGE_SHAPE = (28, 28)
_NUM_CLASSES = 10


class DatasetError(UserError):
    """A dataset file is missing, unreadable or not a valid MNIST-style IDX file."""


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def _cache_dir(name: str) -> Path:
    # Looked up at call time so that a changed HOME (tests, containers) is honoured.
    return Path("~/.cache/desire-snn").expanduser() / name


def _search_dirs(name: str, data_dir: str | Path | None) -> list[Path]:
    """Folders that may hold ``name``'s files, most specific first.

    Within a folder the subfolder named after the dataset is tried before the
    folder itself: MNIST and Fashion-MNIST use identical file names, so files
    lying directly in a shared folder cannot tell which dataset they are.
    """
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        return [root / name, root]
    dirs: list[Path] = []
    env = os.environ.get(_ENV_VAR)
    if env:
        root = Path(env).expanduser()
        dirs += [root / name, root]
    dirs += _SYSTEM_DIRS.get(name, ())
    dirs += [_SHARED_DATA / name, _cache_dir(name)]
    return dirs


def _find_file(folder: Path, base: str) -> Path | None:
    for candidate in (folder / base, folder / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _describe(folder: Path, bases: list[str]) -> str:
    """Why ``folder`` was passed over, for the not-found message."""
    if not folder.is_dir():
        return f"{folder} (does not exist)"
    missing = [f"{b}[.gz]" for b in bases if _find_file(folder, b) is None]
    return f"{folder} (no {', '.join(missing)})"


def _install_hint(name: str) -> str:
    hints = []
    if name == "fashion-mnist":
        hints.append("apt-get install dataset-fashion-mnist")
    hints += [
        f"put the files into a folder and pass --data-dir DIR (or set {_ENV_VAR}=DIR)",
        "load with download=True on a machine with network access",
    ]
    return "To get them: " + "; or ".join(hints) + "."


def _locate(name: str, bases: list[str], data_dir: str | Path | None) -> Path:
    """The first searched folder holding every file in ``bases``."""
    dirs = _search_dirs(name, data_dir)
    for folder in dirs:
        if all(_find_file(folder, b) is not None for b in bases):
            return folder
    wanted = ", ".join(f"{b}[.gz]" for b in bases)
    searched = "\n".join(f"  {_describe(d, bases)}" for d in dirs)
    raise DatasetError(
        f"{name} files not found: need {wanted} in one folder. Searched:\n{searched}\n"
        + _install_hint(name)
    )


def find_data_dir(name: str, data_dir: str | Path | None = None) -> Path:
    """Return the first folder that holds all four files of dataset ``name``.

    With ``data_dir`` only ``data_dir/<name>`` and ``data_dir`` are searched;
    otherwise ``$DESIRE_DATA_DIR`` (and its ``<name>`` subfolder), the Debian
    package folder for Fashion-MNIST, ``<repo>/../shared/data/<name>`` and
    ``~/.cache/desire-snn/<name>``, in that order. Raises :class:`DatasetError`
    listing every folder searched when none is complete.
    """
    _check_name(name)
    return _locate(name, [b for split in _FILES.values() for b in split], data_dir)


def _decode_idx(data: bytes, source: str, gzipped: bool) -> np.ndarray:
    """Parse the bytes of an IDX file of unsigned bytes into a read-only array."""
    if gzipped or data.startswith(_GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{source}: corrupt gzip data ({exc})") from exc
    if len(data) < 4:
        raise DatasetError(f"{source}: only {len(data)} bytes, too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    ndim = data[3]
    if data[0] != 0 or data[1] != 0 or ndim not in (1, 3):
        raise DatasetError(
            f"{source}: bad magic number 0x{magic:08x} (expected 0x00000801 for labels or "
            "0x00000803 for images); not an MNIST-style IDX file"
        )
    if data[2] != _UBYTE:
        raise DatasetError(
            f"{source}: element type byte 0x{data[2]:02x}, expected 0x08 (unsigned byte)"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{source}: truncated header ({len(data)} of {header} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims)
    actual = len(data) - header
    if actual < expected:
        raise DatasetError(
            f"{source}: truncated, header promises {expected} data bytes for shape {dims} "
            f"but the file holds {actual}"
        )
    if actual > expected:
        raise DatasetError(
            f"{source}: {actual - expected} unexpected trailing bytes after the data "
            f"of shape {dims}"
        )
    # frombuffer over immutable bytes is read-only and cannot be made writeable.
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, mtime_ns: int, size: int) -> np.ndarray:
    # mtime_ns and size are only part of the cache key: a replaced file is re-read.
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return _decode_idx(data, path, path.endswith(".gz"))


def read_idx(path: Path) -> np.ndarray:
    """Read a raw or gzipped IDX file of unsigned bytes, validating it completely.

    Checks the magic number, the element type, the dimensions and that the data
    is exactly as long as the header says, so that truncated downloads and
    wrong files are caught here. Results are cached per (path, mtime, size),
    because tests and experiments load the same files many times; the returned
    array is a read-only view so that no caller can alter the cached copy.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return _read_idx_cached(str(path.resolve()), st.st_mtime_ns, st.st_size).view()


def _fetch(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest``, validated and written atomically.

    The file is parsed before it is moved into place, so that an interrupted
    or wrong download never ends up in the cache looking like a good file.
    """
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
        data = response.read()
    _decode_idx(data, url, gzipped=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _download(name: str, bases: list[str], target: Path, searched: str) -> None:
    """Fetch each file of ``bases`` missing from ``target`` from the first mirror that works."""
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"could not download {name}: cannot create {target} ({exc})") from exc
    for base in bases:
        if _find_file(target, base) is not None:
            continue
        failures = []
        for mirror in _MIRRORS[name]:
            url = f"{mirror}{base}.gz"
            try:
                _fetch(url, target / f"{base}.gz")
                break
            except (OSError, http.client.HTTPException, DatasetError) as exc:
                failures.append(f"  {url}: {exc}")
        else:
            raise DatasetError(
                f"could not download {name} ({base}.gz) into {target}:\n"
                + "\n".join(failures)
                + f"\nLooked for local files in:\n{searched}\n"
                + _install_hint(name)
            )


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    download: bool = False,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of MNIST or Fashion-MNIST.

    Returns ``(images, labels)``: images as uint8 of shape (N, 784), each
    28x28 image flattened row-major, and labels as uint8 of shape (N,).
    ``limit`` keeps the first ``limit`` samples (all of them if there are
    fewer), for quick runs. See :func:`find_data_dir` for where files are
    looked for; only with ``download=True`` are missing files fetched, into
    ``data_dir`` or ``~/.cache/desire-snn/<name>``.

    The arrays are fresh writeable copies: callers may normalise in place or
    hand them to ``torch.from_numpy`` without touching the cached originals.
    """
    _check_name(name)
    if split not in _FILES:
        raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(_FILES)}")
    if limit is not None and limit < 1:
        raise DatasetError(f"limit must be a positive number of samples, got {limit}")
    bases = list(_FILES[split])
    try:
        folder = _locate(name, bases, data_dir)
    except DatasetError:
        if not download:
            raise
        folder = Path(data_dir).expanduser() if data_dir is not None else _cache_dir(name)
        searched = "\n".join(f"  {d}" for d in _search_dirs(name, data_dir))
        _download(name, bases, folder, searched)

    image_path, label_path = (_find_file(folder, b) for b in bases)
    assert image_path is not None and label_path is not None  # _locate/_download made sure
    images, labels = read_idx(image_path), read_idx(label_path)

    if images.ndim != 3 or images.shape[1:] != _IMAGE_SHAPE:
        raise DatasetError(
            f"{image_path}: expected images of shape (N, 28, 28), found {images.shape}"
        )
    if labels.ndim != 1:
        raise DatasetError(f"{label_path}: expected a label file (N,), found {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(
            f"{image_path} holds {len(images)} images but {label_path} holds "
            f"{len(labels)} labels; the files do not belong together"
        )
    if len(labels) == 0:
        raise DatasetError(f"{label_path}: holds no samples")
    bad = np.flatnonzero(labels >= _NUM_CLASSES)
    if bad.size:
        raise DatasetError(
            f"{label_path}: label {labels[bad[0]]} at index {bad[0]} is not a class 0..9 "
            f"({bad.size} such labels)"
        )

    n = len(labels) if limit is None else min(limit, len(labels))
    return images[:n].reshape(n, -1).copy(), labels[:n].copy()
