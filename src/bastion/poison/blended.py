"""Blended trigger (Chen, Liu, Li, Lu and Song, 2017: "Targeted backdoor attacks on deep
learning systems using data poisoning").

The trigger is a whole-image pattern mixed in: ``x' = (1 - alpha) * x + alpha * k``, where
``k`` is a fixed random image drawn from ``pattern_seed``. No pixel stands out, so patch
detectors do not see it; poisoned samples come from every class but ``target`` and are
relabelled ``target``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from bastion.errors import ConfigError
from bastion.poison.base import Poisoned, check_data, check_rate, check_target, non_target


@dataclass(frozen=True, kw_only=True)
class Blended:
    """Blended random-pattern backdoor.

    Args:
        rate: fraction of the whole training set poisoned, in (0, 1).
        target: the class triggered inputs should be sent to.
        alpha: blend weight of the pattern, in (0, 1).
        pattern_seed: seed of the uniform-noise pattern (the attacker's key).
    """

    name: ClassVar[str] = "blended"
    has_trigger: ClassVar[bool] = True
    rate: float = 0.1
    target: int = 0
    alpha: float = 0.2
    pattern_seed: int = 1234

    def check(self, shape: tuple[int, ...], num_classes: int) -> None:
        check_rate(self.rate)
        check_target(self.target, num_classes)
        if not 0 < self.alpha < 1:
            raise ConfigError(f"blended alpha must be in (0, 1), got {self.alpha}")

    def pattern(self, shape: tuple[int, ...]) -> Tensor:
        """The trigger image, ``shape`` (C, H, W), uniform in [0, 1]."""
        gen = torch.Generator().manual_seed(self.pattern_seed)
        return torch.rand(shape, generator=gen)

    def apply_trigger(self, x: Tensor) -> Tensor:
        """``x`` (N, C, H, W) blended with the pattern."""
        return (1 - self.alpha) * x + self.alpha * self.pattern(tuple(x.shape[1:]))

    def poison(self, x: Tensor, y: Tensor, *, seed: int = 0) -> Poisoned:
        check_data(x, y)
        self.check(tuple(x.shape[1:]), int(y.max()) + 1 if len(y) else 1)
        idx = non_target(y, self.rate, self.target, seed)
        x_out, y_out = x.clone(), y.clone()
        x_out[idx] = self.apply_trigger(x[idx])
        y_out[idx] = self.target
        return Poisoned(x_out, y_out, idx)
