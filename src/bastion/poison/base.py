"""What every poisoning attack shares: the result type, input checks, and sample choice.

A poisoning attack is a data transform, for evaluation only: given a training set
``x`` (N, C, H, W) float32 in [0, 1] and labels ``y`` (N,) int64 it returns a copy with a
``rate`` fraction of the samples poisoned, and the indices of those samples. The choice
of samples is a function of ``seed`` only, so a run can be reproduced and resumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from bastion.errors import ConfigError, InputError


@dataclass(frozen=True)
class Poisoned:
    """A poisoned training set.

    Attributes:
        x: (N, C, H, W) float32 in [0, 1], the poisoned images in place of the originals.
        y: (N,) int64 labels (changed for dirty-label attacks, untouched for clean-label).
        indices: (P,) int64, sorted indices of the poisoned samples.
    """

    x: Tensor
    y: Tensor
    indices: Tensor

    @property
    def mask(self) -> Tensor:
        """(N,) bool, True on poisoned samples."""
        out = torch.zeros(len(self.y), dtype=torch.bool)
        out[self.indices] = True
        return out


@runtime_checkable
class PoisonAttack(Protocol):
    """The protocol every registered attack follows (see :mod:`bastion.poison.registry`).

    ``has_trigger`` is False for attacks without a test-time trigger (label flipping):
    they degrade the model rather than plant a backdoor, and ``apply_trigger`` returns
    its input unchanged.
    """

    name: ClassVar[str]
    has_trigger: ClassVar[bool]
    rate: float
    target: int

    def check(self, shape: tuple[int, ...], num_classes: int) -> None: ...

    def poison(self, x: Tensor, y: Tensor, *, seed: int = 0) -> Poisoned: ...

    def apply_trigger(self, x: Tensor) -> Tensor: ...


def check_rate(rate: float) -> None:
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and 0 < rate < 1):
        raise ConfigError(f"poison rate must be a fraction in (0, 1), got {rate!r}; e.g. "
                          "rate=0.1 poisons 10% of the training set")


def check_target(target: int, num_classes: int) -> None:
    if not 0 <= target < num_classes:
        raise ConfigError(f"target class must be in [0, {num_classes - 1}], got {target}")


def check_data(x: Tensor, y: Tensor) -> None:
    """Raise InputError unless ``x`` is (N, C, H, W) finite in [0, 1] and ``y`` (N,) int."""
    if x.dim() != 4:
        raise InputError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
    if y.shape != (x.shape[0],) or y.dtype.is_floating_point:
        raise InputError(f"labels must be (N,) integers matching {x.shape[0]} images, got "
                         f"{tuple(y.shape)} {y.dtype}")
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        raise InputError(f"{bad} images hold NaN or infinite values; clean or drop them "
                         "before poisoning or training")
    if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
        raise InputError(f"images must lie in [0, 1], found [{float(x.min()):.3g}, "
                         f"{float(x.max()):.3g}]; rescale them first")


def choose(pool: Tensor, count: int, seed: int) -> Tensor:
    """``count`` indices drawn without replacement from ``pool`` (1-D), sorted; seeded."""
    if count < 1:
        raise ConfigError("the poison rate selects no sample of this data set; raise rate")
    if count > len(pool):
        raise ConfigError(f"the poison rate asks for {count} samples but only {len(pool)} "
                          "are eligible; lower rate")
    gen = torch.Generator().manual_seed(seed)
    picked = pool[torch.randperm(len(pool), generator=gen)[:count]]
    return picked.sort().values


def non_target(y: Tensor, rate: float, target: int, seed: int) -> Tensor:
    """Indices of ``round(rate * N)`` samples whose label is not ``target`` (all-to-one)."""
    pool = (y != target).nonzero().squeeze(1)
    return choose(pool, round(rate * len(y)), seed)
