"""scikit-learn's 8x8 handwritten digits (1,797 images; works offline).

A fixed split: the first 1,437 images are ``train``, the last 360 ``test``.
"""

from __future__ import annotations

from bastion.data.base import DIGIT_CLASSES, Dataset, check_split, to_dataset

SPLITS = ("train", "test")
N_TRAIN = 1437


def load(split: str = "test") -> Dataset:
    """Digits ``split`` as (N, 1, 8, 8) float32 in [0, 1] (grey levels 0..16 / 16)."""
    check_split("digits", split, SPLITS)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = bunch.images, bunch.target
    part = slice(0, N_TRAIN) if split == "train" else slice(N_TRAIN, None)
    return to_dataset(images[part], labels[part], name="digits", split=split,
                      classes=DIGIT_CLASSES, source="sklearn.datasets.load_digits", scale=16.0)
