"""Tests for desire.datasets: IDX parsing, validation, search order and download."""

from __future__ import annotations

import gzip
import io
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from desire import datasets
from desire.datasets import DatasetError, find_data_dir, load_dataset, read_idx

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: np.ndarray, dtype_byte: int = 0x08) -> bytes:
    """Encode a uint8 array as an IDX file."""
    header = bytes([0, 0, dtype_byte, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(path: Path, data: bytes, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def make_split(
    folder: Path, split: str = "train", n: int = 12, gz: bool = False, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Write a synthetic split into ``folder``; return the expected (images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    img_name, lbl_name = FILES[split]
    write(folder / img_name, idx_bytes(images), gz)
    write(folder / lbl_name, idx_bytes(labels), gz)
    return images.reshape(n, 784), labels


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every default search place into tmp_path so real data can't interfere."""
    monkeypatch.delenv("DESIRE_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(datasets, "_SHARED_DATA", tmp_path / "shared")
    monkeypatch.setattr(datasets, "_SYSTEM_DIRS", {})
    return tmp_path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("split", ["train", "test"])
def test_parse(tmp_path: Path, gz: bool, split: str) -> None:
    images, labels = make_split(tmp_path, split, gz=gz)
    got_images, got_labels = load_dataset("mnist", split, data_dir=tmp_path)
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.uint8
    assert got_images.shape == (12, 784) and got_labels.shape == (12,)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_read_idx_raw_and_gz_agree(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = write(tmp_path / "a-idx3-ubyte", idx_bytes(array), gz=False)
    packed = write(tmp_path / "b-idx3-ubyte", idx_bytes(array), gz=True)
    np.testing.assert_array_equal(read_idx(raw), array)
    np.testing.assert_array_equal(read_idx(packed), array)


def test_cache_cannot_be_corrupted(tmp_path: Path) -> None:
    images, _ = make_split(tmp_path)
    first, _ = load_dataset("mnist", data_dir=tmp_path)
    first[:] = 0
    again, _ = load_dataset("mnist", data_dir=tmp_path)
    np.testing.assert_array_equal(again, images)

    cached = read_idx(tmp_path / FILES["train"][0])
    assert not cached.flags.writeable
    with pytest.raises(ValueError):
        cached.flags.writeable = True


def test_rewritten_file_is_reread(tmp_path: Path) -> None:
    make_split(tmp_path, n=12)
    assert len(load_dataset("mnist", data_dir=tmp_path)[1]) == 12
    make_split(tmp_path, n=20)
    assert len(load_dataset("mnist", data_dir=tmp_path)[1]) == 20


def test_limit(tmp_path: Path) -> None:
    images, labels = make_split(tmp_path, n=12)
    got_images, got_labels = load_dataset("mnist", data_dir=tmp_path, limit=5)
    np.testing.assert_array_equal(got_images, images[:5])
    np.testing.assert_array_equal(got_labels, labels[:5])
    assert len(load_dataset("mnist", data_dir=tmp_path, limit=100)[1]) == 12
    with pytest.raises(DatasetError, match="limit"):
        load_dataset("mnist", data_dir=tmp_path, limit=0)


LABELS = np.arange(10, dtype=np.uint8)
LABEL_IDX = idx_bytes(LABELS)


@pytest.mark.parametrize(
    ("data", "gz", "message"),
    [
        (b"\x12\x34" + LABEL_IDX[2:], False, "bad magic number 0x12340801"),
        (LABEL_IDX[:3] + b"\x02" + LABEL_IDX[4:], False, "bad magic number 0x00000802"),
        (idx_bytes(LABELS, dtype_byte=0x0D), False, "element type byte 0x0d"),
        (LABEL_IDX[:6], False, "truncated header"),
        (b"\x00\x00", False, "too short"),
        (LABEL_IDX[:-3], False, "truncated, header promises 10 data bytes"),
        (LABEL_IDX + b"junk", False, "4 unexpected trailing bytes"),
        (LABEL_IDX[:-3], True, "truncated"),
        (LABEL_IDX + b"junk", True, "trailing bytes"),
    ],
)
def test_corrupt_idx(tmp_path: Path, data: bytes, gz: bool, message: str) -> None:
    path = write(tmp_path / "labels-idx1-ubyte", data, gz)
    with pytest.raises(DatasetError, match=message) as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_bad_gzip(tmp_path: Path) -> None:
    packed = gzip.compress(LABEL_IDX)
    for name, data in [("garbage", b"not gzip at all"), ("cut", packed[: len(packed) // 2])]:
        path = tmp_path / f"{name}-idx1-ubyte.gz"
        path.write_bytes(data)
        with pytest.raises(DatasetError, match="corrupt gzip") as err:
            read_idx(path)
        assert str(path) in str(err.value)


def test_corrupt_file_via_load_dataset(tmp_path: Path) -> None:
    make_split(tmp_path, gz=True)
    label_path = tmp_path / "train-labels-idx1-ubyte.gz"
    label_path.write_bytes(gzip.compress(LABEL_IDX[:-1]))
    with pytest.raises(DatasetError, match="truncated") as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(label_path) in str(err.value)


def test_count_mismatch(tmp_path: Path) -> None:
    make_split(tmp_path, n=12)
    write(tmp_path / FILES["train"][1], idx_bytes(np.zeros(11, np.uint8)), gz=False)
    with pytest.raises(DatasetError, match=r"12 images but .* holds 11 labels"):
        load_dataset("mnist", data_dir=tmp_path)


def test_label_out_of_range(tmp_path: Path) -> None:
    make_split(tmp_path, n=12)
    labels = np.zeros(12, np.uint8)
    labels[7] = 10
    write(tmp_path / FILES["train"][1], idx_bytes(labels), gz=False)
    with pytest.raises(DatasetError, match="label 10 at index 7"):
        load_dataset("mnist", data_dir=tmp_path)


def test_wrong_image_size(tmp_path: Path) -> None:
    make_split(tmp_path, n=4)
    write(tmp_path / FILES["train"][0], idx_bytes(np.zeros((4, 32, 32), np.uint8)), gz=False)
    with pytest.raises(DatasetError, match=r"\(N, 28, 28\), found \(4, 32, 32\)"):
        load_dataset("mnist", data_dir=tmp_path)


def test_files_swapped(tmp_path: Path) -> None:
    make_split(tmp_path, n=4)
    img, lbl = FILES["train"]
    (tmp_path / img).write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    (tmp_path / lbl).write_bytes(idx_bytes(np.zeros((4, 28, 28), np.uint8)))
    with pytest.raises(DatasetError, match="expected images of shape"):
        load_dataset("mnist", data_dir=tmp_path)


def test_missing_with_data_dir(tmp_path: Path) -> None:
    (tmp_path / "mnist").mkdir()
    write(tmp_path / FILES["test"][0], b"", gz=False)
    with pytest.raises(DatasetError) as err:
        load_dataset("mnist", "test", data_dir=tmp_path)
    message = str(err.value)
    assert f"{tmp_path / 'mnist'} (no t10k-images-idx3-ubyte[.gz]" in message
    assert f"{tmp_path} (no t10k-labels-idx1-ubyte[.gz])" in message
    assert "--data-dir" in message


def test_missing_lists_default_search_places(isolated: Path, monkeypatch) -> None:
    env = isolated / "env"
    monkeypatch.setenv("DESIRE_DATA_DIR", str(env))
    monkeypatch.setattr(datasets, "_SYSTEM_DIRS", {"fashion-mnist": (isolated / "system",)})
    with pytest.raises(DatasetError) as err:
        load_dataset("fashion-mnist")
    message = str(err.value)
    expected = [
        env / "fashion-mnist",
        env,
        isolated / "system",
        isolated / "shared" / "fashion-mnist",
        isolated / "home" / ".cache" / "desire-snn" / "fashion-mnist",
    ]
    positions = [message.index(f"  {d} (does not exist)") for d in expected]
    assert positions == sorted(positions)
    assert "apt-get install dataset-fashion-mnist" in message
    with pytest.raises(DatasetError, match="files not found"):
        find_data_dir("fashion-mnist")


def test_env_var(isolated: Path, monkeypatch) -> None:
    env = isolated / "env"
    images, _ = make_split(env, "test", gz=True)
    monkeypatch.setenv("DESIRE_DATA_DIR", str(env))
    np.testing.assert_array_equal(load_dataset("mnist", "test")[0], images)

    # A subfolder named after the dataset wins over files lying directly in the folder.
    sub_images, _ = make_split(env / "mnist", "test", seed=1)
    np.testing.assert_array_equal(load_dataset("mnist", "test")[0], sub_images)


def test_search_order(isolated: Path, monkeypatch) -> None:
    shared = isolated / "shared" / "mnist"
    cache = isolated / "home" / ".cache" / "desire-snn" / "mnist"
    make_split(cache, "train")
    make_split(cache, "test")
    assert find_data_dir("mnist") == cache
    make_split(shared, "train")
    make_split(shared, "test")
    assert find_data_dir("mnist") == shared
    monkeypatch.setenv("DESIRE_DATA_DIR", str(isolated / "env"))
    make_split(isolated / "env", "train")
    assert find_data_dir("mnist") == shared  # env folder lacks the test split
    make_split(isolated / "env", "test")
    assert find_data_dir("mnist") == isolated / "env"


def test_unknown_name_and_split(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'cifar'"):
        load_dataset("cifar", data_dir=tmp_path)
    with pytest.raises(DatasetError, match="unknown split 'val'"):
        load_dataset("mnist", "val", data_dir=tmp_path)


def test_download_offline_fails_cleanly(isolated: Path, monkeypatch) -> None:
    urls: list[str] = []

    def offline(url: str, timeout: float) -> None:
        urls.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DatasetError) as err:
        load_dataset("fashion-mnist", "test", download=True)
    message = str(err.value)
    assert "could not download fashion-mnist" in message
    assert "no network" in message
    assert str(isolated / "shared" / "fashion-mnist") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir" in message
    assert urls and all(u.endswith("t10k-images-idx3-ubyte.gz") for u in urls)
    cache = isolated / "home" / ".cache" / "desire-snn" / "fashion-mnist"
    assert list(cache.iterdir()) == []  # nothing half-written left behind


def test_download_not_attempted_without_flag(isolated: Path, monkeypatch) -> None:
    def fail(url: str, timeout: float) -> None:
        raise AssertionError("network used without download=True")

    monkeypatch.setattr(urllib.request, "urlopen", fail)
    with pytest.raises(DatasetError, match="files not found"):
        load_dataset("mnist", "test")


def test_download_success_and_bad_mirror(tmp_path: Path, monkeypatch) -> None:
    images = np.full((3, 28, 28), 7, np.uint8)
    labels = np.array([1, 2, 3], np.uint8)
    served = {
        "t10k-images-idx3-ubyte.gz": gzip.compress(idx_bytes(images)),
        "t10k-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(labels)),
    }
    first_mirror = datasets._MIRRORS["mnist"][0]

    def fake(url: str, timeout: float) -> io.BytesIO:
        if url.startswith(first_mirror):
            return io.BytesIO(b"<html>moved</html>")  # a bad mirror: rejected, not stored
        return io.BytesIO(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(urllib.request, "urlopen", fake)
    got_images, got_labels = load_dataset("mnist", "test", data_dir=tmp_path, download=True)
    np.testing.assert_array_equal(got_images, images.reshape(3, 784))
    np.testing.assert_array_equal(got_labels, labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(served)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist() -> None:
    images, labels = load_dataset("fashion-mnist", "test", data_dir=FASHION_DIR)
    assert images.shape == (10000, 784) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), np.full(10, 1000))
    assert images.max() > 0
    train_images, train_labels = load_dataset("fashion-mnist", "train", data_dir=FASHION_DIR)
    assert train_images.shape == (60000, 784) and train_labels.shape == (60000,)
    assert find_data_dir("fashion-mnist", FASHION_DIR) == FASHION_DIR
