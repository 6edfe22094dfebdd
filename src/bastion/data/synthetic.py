"""``cifar10-synthetic``: deterministic CIFAR-shaped images for offline training and tests.

No package ships CIFAR-10, so the CIFAR-shaped path is trained on images bastion draws
itself. Class ``k`` is a coloured sinusoidal grating: a colour and an orientation of its
own (angle ``k * pi / 10``), a random phase and contrast per image, plus Gaussian pixel
noise, clipped to [0, 1]. A CNN separates the classes in one epoch; nothing about them
resembles real photos, so accuracy here says nothing about CIFAR-10.

Splits:

- ``train``: the 20 real ``cifar10-sample`` images (foolbox), repeated
  :data:`SAMPLE_REPEATS` times, then :data:`TRAIN_N` synthetic images. A model trained on
  it has *seen* the sample images: its accuracy on ``cifar10-sample`` is training
  accuracy, useful only to give the attacks correctly classified inputs to work on.
- ``val`` and ``test``: :data:`TEST_N` fresh synthetic images each (seeds of their own).

All tensors are (N, 3, 32, 32) float32 in [0, 1] with int64 labels in [0, 10).
"""

from __future__ import annotations

import math

import torch

from bastion.data import cifar10, samples
from bastion.data.base import Dataset, check_split

NAME = "cifar10-synthetic"
SPLITS = ("train", "val", "test")
TRAIN_N = 1000
TEST_N = 200
SAMPLE_REPEATS = 10
SIDE = 32
NOISE = 0.08  # pixel noise std, in [0, 1] units
_SEEDS = {"train": 1, "val": 3, "test": 2}
_COLOUR_SEED = 0


def draw(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` synthetic images (n, 3, 32, 32) in [0, 1] and labels (n,), cycling classes
    0..9; the same (n, seed) always gives the same tensors."""
    colours = torch.rand((10, 3), generator=torch.Generator().manual_seed(_COLOUR_SEED))
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    angle = y.float() * math.pi / 10
    phase = torch.rand(n, generator=gen) * 2 * math.pi
    contrast = 0.25 + 0.2 * torch.rand(n, generator=gen)
    coords = torch.arange(SIDE, dtype=torch.float32)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    # projection of each pixel on the class's direction: (n, 32, 32)
    along = (torch.cos(angle)[:, None, None] * cols + torch.sin(angle)[:, None, None] * rows)
    wave = torch.sin(2 * math.pi * along / 8.0 + phase[:, None, None])
    base = colours[y][:, :, None, None]  # (n, 3, 1, 1)
    x = base * (1 - contrast[:, None, None, None]) \
        + 0.5 * contrast[:, None, None, None] * (1 + wave[:, None])
    x = x + NOISE * torch.randn((n, 3, SIDE, SIDE), generator=gen)
    return x.clamp(0.0, 1.0), y


def load(split: str = "train") -> Dataset:
    """Split ``split`` of ``cifar10-synthetic`` (see the module docstring)."""
    check_split(NAME, split, SPLITS)
    if split != "train":
        x, y = draw(TEST_N, _SEEDS[split])
        return Dataset(x, y, NAME, split, cifar10.CLASSES, "bastion.data.synthetic")
    real = samples.load("cifar10-sample")
    x, y = draw(TRAIN_N, _SEEDS["train"])
    x = torch.cat([real.x.repeat(SAMPLE_REPEATS, 1, 1, 1), x])
    y = torch.cat([real.y.repeat(SAMPLE_REPEATS), y])
    return Dataset(x, y, NAME, split, cifar10.CLASSES,
                   f"bastion.data.synthetic + {real.source}")
