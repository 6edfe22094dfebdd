"""FGSM: the fast gradient sign method (Goodfellow, Shlens & Szegedy, ICLR 2015).

One step of size eps along the gradient of the loss: its sign under Linf, its
unit-L2-normalised direction under L2 (the "fast gradient method"). Cheap and weak: a
model that resists FGSM but not PGD is normal; one that resists PGD but not FGSM is
masking its gradients.

Cost: 1 forward + 1 backward per sample, plus 1 forward to check the result.

Example:
    >>> result = FGSM().run(model, x, y, ThreatModel("Linf", 0.3))
    >>> result.success.float().mean()   # attack success rate on (N,) samples
"""

from __future__ import annotations

import torch
from torch import nn

from bastion.attacks.base import Attack, AttackResult, Passes, is_success
from bastion.attacks.steps import ascent_step, input_gradient
from bastion.common import draws
from bastion.threat import NORMS, ThreatModel


class FGSM(Attack):
    """Single-step attack.

    Args:
        loss: ``"ce"`` (cross-entropy), ``"margin"`` (Carlini-Wagner margin) or
            ``"dlr"`` (difference of logits ratio, Croce & Hein 2020).
        random_start: start from a random point of the ball (R+FGSM style) instead of x;
            the step is then still of size eps, followed by projection.
    """

    name = "fgsm"
    per_sample_draws = True
    norms = NORMS

    def __init__(self, *, loss: str = "ce", random_start: bool = False) -> None:
        self.loss = loss
        self.random_start = random_start

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        threat: ThreatModel,
        target: torch.Tensor | None,
        generator: draws.Source,
    ) -> AttackResult:
        passes = Passes()
        n = x.shape[0]
        start = threat.random_point(x, generator) if self.random_start else x
        _, logits, grad = input_gradient(model, start, y, target, self.loss)
        passes.forward += n
        passes.backward += n
        already = is_success(logits.detach(), y, target)
        x_adv = threat.project(ascent_step(start, grad, threat.eps, threat.norm), x)
        with torch.no_grad():
            after = is_success(model(x_adv), y, target)
        passes.forward += n
        # A start point that already fools the model is a valid answer inside the ball.
        keep_start = already & ~after
        x_adv = torch.where(keep_start.view(-1, *([1] * (x.dim() - 1))), start, x_adv)
        return AttackResult(x_adv=x_adv.detach(), success=after | already, passes=passes)
