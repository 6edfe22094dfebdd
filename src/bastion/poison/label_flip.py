"""Label flipping: the simplest poison, which degrades the model rather than plant a
backdoor. A ``rate`` fraction of the samples gets a wrong label: ``target`` when given,
otherwise a label drawn uniformly from the other classes. Images are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from bastion.poison.base import Poisoned, check_data, check_rate, check_target, choose


@dataclass(frozen=True, kw_only=True)
class LabelFlip:
    """Random or targeted label flipping.

    Args:
        rate: fraction of the training set relabelled, in (0, 1).
        target: the wrong label to give (samples of ``target`` are not chosen); -1 draws
            a random wrong label per sample.
    """

    name: ClassVar[str] = "label-flip"
    has_trigger: ClassVar[bool] = False
    rate: float = 0.1
    target: int = -1

    def check(self, shape: tuple[int, ...], num_classes: int) -> None:
        check_rate(self.rate)
        if self.target != -1:
            check_target(self.target, num_classes)

    def apply_trigger(self, x: Tensor) -> Tensor:
        """No trigger: returns ``x`` unchanged."""
        return x

    def poison(self, x: Tensor, y: Tensor, *, seed: int = 0) -> Poisoned:
        check_data(x, y)
        classes = int(y.max()) + 1 if len(y) else 1
        self.check(tuple(x.shape[1:]), classes)
        pool = torch.arange(len(y)) if self.target == -1 else (y != self.target).nonzero()[:, 0]
        idx = choose(pool, round(self.rate * len(y)), seed)
        y_out = y.clone()
        if self.target == -1:
            # a shift in [1, classes) never maps a label to itself
            gen = torch.Generator().manual_seed(seed + 1)
            shift = torch.randint(1, max(2, classes), (len(idx),), generator=gen)
            y_out[idx] = (y[idx] + shift) % max(2, classes)
        else:
            y_out[idx] = self.target
        return Poisoned(x.clone(), y_out, idx)
