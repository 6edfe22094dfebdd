"""The 20 real test images per data set that the PyPI package ``foolbox`` bundles.

Read as PNG files from the package folder; foolbox itself is never imported.
File names are ``{dataset}_{index:02d}_{label}.png``.
"""

from __future__ import annotations

import re

import numpy as np

from bastion.data import cifar10
from bastion.data.base import DIGIT_CLASSES, Dataset, package_dir, to_dataset
from bastion.errors import InputError

INSTALL = "pip install --no-deps foolbox"
_SETS = {
    "mnist-sample": ("mnist", DIGIT_CLASSES),
    "cifar10-sample": ("cifar10", cifar10.CLASSES),
}


def load(name: str) -> Dataset:
    """The 20 images of ``name`` ("mnist-sample" or "cifar10-sample"), NCHW in [0, 1]."""
    from PIL import Image

    prefix, classes = _SETS[name]
    folder = package_dir("foolbox", "foolbox", INSTALL) / "data"
    pattern = re.compile(rf"^{prefix}_(\d\d)_(\d+)\.png$")
    found = sorted((int(m[1]), int(m[2]), p) for p in folder.glob(f"{prefix}_*.png")
                   if (m := pattern.match(p.name)))
    if not found:
        raise InputError(f"no {prefix}_*.png images in {folder}; reinstall: {INSTALL}")
    images = []
    for _, _, path in found:
        with Image.open(path) as img:
            arr = np.asarray(img, dtype=np.uint8)
        images.append(arr.transpose(2, 0, 1) if arr.ndim == 3 else arr[None])
    labels = np.array([label for _, label, _ in found])
    return to_dataset(np.stack(images), labels, name=name, split="test", classes=classes,
                      source=str(folder), scale=255.0)
