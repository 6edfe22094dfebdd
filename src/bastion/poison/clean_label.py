"""Clean-label backdoor (Turner, Tsipras and Madry, 2019: "Label-consistent backdoor
attacks").

Only images of the ``target`` class are poisoned, and their labels stay correct, so a
human review of labels finds nothing. Each chosen image is first pushed by PGD (Linf,
radius ``eps``) to maximise the loss of its own label on a surrogate model, which makes
its natural features hard to learn; then the BadNets patch is stamped on. The model
learns to lean on the patch for ``target``, and at test time the patch sends other
classes there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from bastion.errors import ConfigError
from bastion.poison.badnets import BadNets
from bastion.poison.base import Poisoned, check_data, check_rate, check_target, choose
from bastion.threat import ThreatModel


@dataclass(frozen=True, kw_only=True)
class CleanLabel:
    """Label-consistent (clean-label) patch backdoor.

    Args:
        rate: fraction of the whole training set poisoned, in (0, 1); at most the
            target class's share.
        target: the class whose images are poisoned and which the trigger selects.
        eps: Linf radius of the PGD perturbation, in input units (0: trigger only).
        steps: PGD steps.
        surrogate: zoo name of the model PGD attacks (an adversarially trained one makes
            perturbations that change the image's features, as the paper advises).
        size, value, margin: the patch, as in :class:`~bastion.poison.badnets.BadNets`.
        batch_size: images per PGD batch.
    """

    name: ClassVar[str] = "clean-label"
    has_trigger: ClassVar[bool] = True
    rate: float = 0.05
    target: int = 0
    eps: float = 0.3
    steps: int = 10
    surrogate: str = "mnist-lenet5-pgd"
    size: int = 3
    value: float = 1.0
    margin: int = 1
    batch_size: int = 500

    def _patch(self) -> BadNets:
        return BadNets(rate=self.rate, target=self.target, size=self.size, value=self.value,
                       margin=self.margin)

    def check(self, shape: tuple[int, ...], num_classes: int) -> None:
        check_rate(self.rate)
        check_target(self.target, num_classes)
        self._patch().check(shape, num_classes)
        if self.eps < 0 or self.steps < 1 or self.batch_size < 1:
            raise ConfigError(f"clean-label needs eps >= 0, steps >= 1 and batch_size >= 1, "
                              f"got eps={self.eps}, steps={self.steps}")

    def apply_trigger(self, x: Tensor) -> Tensor:
        return self._patch().apply_trigger(x)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, seed: int) -> Tensor:
        """``x`` (N, C, H, W) pushed by PGD away from labels ``y`` on ``model``."""
        from bastion.attacks.pgd import PGD

        if self.eps == 0:
            return x.clone()
        pgd = PGD(steps=self.steps, early_stop=False)
        threat = ThreatModel("Linf", self.eps)
        gen = torch.Generator().manual_seed(seed)
        parts = [pgd.run(model, x[i:i + self.batch_size], y[i:i + self.batch_size], threat,
                         generator=gen).x_adv
                 for i in range(0, len(x), self.batch_size)]
        return torch.cat(parts).detach()

    def poison(self, x: Tensor, y: Tensor, *, seed: int = 0,
               model: nn.Module | None = None) -> Poisoned:
        """Poison; ``model`` overrides the zoo ``surrogate`` (tests pass a small one)."""
        check_data(x, y)
        self.check(tuple(x.shape[1:]), int(y.max()) + 1 if len(y) else 1)
        pool = (y == self.target).nonzero().squeeze(1)
        idx = choose(pool, round(self.rate * len(y)), seed)
        if model is None:
            from bastion.zoo.registry import load

            model = load(self.surrogate)
        x_out = x.clone()
        x_out[idx] = self.apply_trigger(self.perturb(model.eval(), x[idx], y[idx], seed))
        return Poisoned(x_out, y.clone(), idx)
