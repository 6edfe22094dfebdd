"""BadNets patch trigger (Gu, Dolan-Gavitt and Garg, 2017).

A small square of value ``value`` stamped at a fixed place; the poisoned samples, drawn
from every class but ``target``, are relabelled ``target`` (all-to-one, dirty label). At
test time any input carrying the patch should go to ``target``.

Example:
    >>> attack = BadNets(rate=0.1, target=0, size=3)
    >>> poisoned = attack.poison(x_train, y_train, seed=0)   # x (N, 1, 28, 28) in [0, 1]
    >>> triggered = attack.apply_trigger(x_test)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from bastion.errors import ConfigError
from bastion.poison.base import Poisoned, check_data, check_rate, check_target, non_target


@dataclass(frozen=True, kw_only=True)
class BadNets:
    """Patch-trigger backdoor.

    Args:
        rate: fraction of the whole training set poisoned, in (0, 1).
        target: the class triggered inputs should be sent to.
        size: side of the square patch, in pixels.
        value: pixel value of the patch, in [0, 1] (1: white).
        margin: pixels between the patch and the bottom-right corner.
    """

    name: ClassVar[str] = "badnets"
    has_trigger: ClassVar[bool] = True
    rate: float = 0.1
    target: int = 0
    size: int = 3
    value: float = 1.0
    margin: int = 1

    def check(self, shape: tuple[int, ...], num_classes: int) -> None:
        """Raise ConfigError unless this attack fits images of ``shape`` (C, H, W)."""
        check_rate(self.rate)
        check_target(self.target, num_classes)
        if self.size < 1 or self.margin < 0 or not 0 <= self.value <= 1:
            raise ConfigError(f"badnets needs size >= 1, margin >= 0 and value in [0, 1], "
                              f"got size={self.size}, margin={self.margin}, value={self.value}")
        if self.size + self.margin > min(shape[-2:]):
            raise ConfigError(f"a {self.size}x{self.size} trigger at margin {self.margin} "
                              f"does not fit {shape[-2]}x{shape[-1]} images; use a smaller "
                              "size")

    def apply_trigger(self, x: Tensor) -> Tensor:
        """``x`` (N, C, H, W) with the patch stamped on (a copy)."""
        out = x.clone()
        h, w = x.shape[-2:]
        bottom, right = h - self.margin, w - self.margin
        out[..., bottom - self.size:bottom, right - self.size:right] = self.value
        return out

    def poison(self, x: Tensor, y: Tensor, *, seed: int = 0) -> Poisoned:
        check_data(x, y)
        self.check(tuple(x.shape[1:]), int(y.max()) + 1 if len(y) else 1)
        idx = non_target(y, self.rate, self.target, seed)
        x_out, y_out = x.clone(), y.clone()
        x_out[idx] = self.apply_trigger(x[idx])
        y_out[idx] = self.target
        return Poisoned(x_out, y_out, idx)
