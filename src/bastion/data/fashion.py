"""Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package (IDX files, works offline).

Set ``BASTION_FASHION_MNIST_DIR`` to read the same four ``*-ubyte.gz`` files elsewhere.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from bastion.data.base import Dataset, check_split, to_dataset
from bastion.errors import MissingDependencyError

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
SPLITS = ("train", "test")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _folder() -> Path:
    return Path(os.environ.get("BASTION_FASHION_MNIST_DIR", DEFAULT_DIR))


def _read_idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load(split: str = "test") -> Dataset:
    """Fashion-MNIST ``split`` as (N, 1, 28, 28) float32 in [0, 1] and (N,) labels."""
    check_split("fashion-mnist", split, SPLITS)
    prefix = "train" if split == "train" else "t10k"
    folder = _folder()
    images = folder / f"{prefix}-images-idx3-ubyte.gz"
    labels = folder / f"{prefix}-labels-idx1-ubyte.gz"
    if not (images.exists() and labels.exists()):
        raise MissingDependencyError(
            f"Fashion-MNIST files not found in {folder}; install Debian's package with "
            "'apt-get install dataset-fashion-mnist', or point BASTION_FASHION_MNIST_DIR at "
            "a folder holding the four *-ubyte.gz files"
        )
    x = _read_idx(images, 16).reshape(-1, 28, 28)
    y = _read_idx(labels, 8)
    return to_dataset(x, y, name="fashion-mnist", split=split, classes=CLASSES,
                      source=str(images), scale=255.0)
