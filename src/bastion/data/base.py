"""The :class:`Dataset` every loader returns, and helpers to find packaged files."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bastion.errors import ConfigError, MissingDependencyError


@dataclass(frozen=True)
class Dataset:
    """Images and labels held in memory.

    Attributes:
        x: (N, C, H, W) float32 in [0, 1].
        y: (N,) int64 class indices.
        name: registry name, e.g. ``"mnist"``.
        split: ``"train"``, ``"val"`` or ``"test"``.
        classes: class names, ``len(classes)`` = number of classes.
        source: where the data came from (a file path or URL), for the record.
        notes: conversions made while loading (e.g. NHWC to NCHW), for the user.
    """

    x: torch.Tensor
    y: torch.Tensor
    name: str
    split: str
    classes: tuple[str, ...]
    source: str
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def head(self, n: int | None) -> Dataset:
        """The first ``n`` samples (all of them when n is None)."""
        if n is None:
            return self
        if n < 1:
            raise ConfigError(f"n must be >= 1, got {n}")
        if n > len(self):
            raise ConfigError(
                f"asked for n={n} samples but {self.name}/{self.split} has {len(self)}; "
                f"use n <= {len(self)}"
            )
        return Dataset(self.x[:n], self.y[:n], self.name, self.split, self.classes, self.source,
                       self.notes)


def to_dataset(
    images: np.ndarray, labels: np.ndarray, *, name: str, split: str,
    classes: tuple[str, ...], source: str, scale: float,
) -> Dataset:
    """Build a Dataset from (N, C, H, W) or (N, H, W) arrays; pixels divided by ``scale``."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)) / scale
    if x.dim() == 3:
        x = x.unsqueeze(1)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    return Dataset(x.clamp(0.0, 1.0), y, name, split, classes, source)


def package_dir(module: str, pip_name: str, install: str) -> Path:
    """Folder of an installed package, found without importing it (some crash on import)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"the data lives in the PyPI package {pip_name!r}, which is not installed; "
            f"install it with: {install}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def check_split(name: str, split: str, splits: tuple[str, ...]) -> None:
    if split not in splits:
        raise ConfigError(f"{name} has splits {splits}, not {split!r}")


DIGIT_CLASSES = tuple(str(i) for i in range(10))
