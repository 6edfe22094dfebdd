"""PGD: projected gradient descent (Madry et al., ICLR 2018), Linf and L2.

From a random point of the ball (or from x), take ``steps`` ascent steps of size
``step_size`` on the loss, projecting back onto ball ∩ bounds after each. With
``restarts`` > 1 the search starts again from fresh random points for the samples that
are still robust. A sample counts as broken as soon as any iterate fools the model, and
that iterate is kept; broken samples leave the active batch (``early_stop``), so later
steps cost only what is still unbroken.

Cost per restart: at most ``steps`` forward+backward passes and 1 forward per sample.

Example:
    >>> pgd = PGD(steps=40, restarts=1)
    >>> result = pgd.run(model, x, y, ThreatModel("Linf", 0.3))
"""

from __future__ import annotations

import torch
from torch import nn

from bastion.attacks.base import (
    Attack,
    AttackResult,
    Passes,
    attack_loss,
    is_success,
    require_counts,
    require_loss,
)
from bastion.attacks.steps import ascent_step, input_gradient
from bastion.common import draws
from bastion.errors import ConfigError
from bastion.threat import NORMS, ThreatModel


class PGD(Attack):
    """Iterative gradient attack with random restarts.

    Args:
        steps: gradient steps per restart (K in "PGD-K").
        step_size: size of each step in input units; None means ``2.5 * eps / steps``
            (Madry et al.'s rule, enough to cross the ball).
        restarts: independent starts; each runs only on samples still robust.
        random_start: start at a uniform random point of the ball rather than at x.
        loss: ``"ce"`` (cross-entropy), ``"margin"`` (Carlini-Wagner margin) or
            ``"dlr"`` (difference of logits ratio, Croce & Hein 2020).
        early_stop: drop broken samples from the batch (faster; same result per sample).
    """

    name = "pgd"
    per_sample_draws = True
    norms = NORMS  # L1 steps are sparse (bastion.attacks.steps.ascent_direction)

    def __init__(
        self,
        *,
        steps: int = 40,
        step_size: float | None = None,
        restarts: int = 1,
        random_start: bool = True,
        loss: str = "ce",
        early_stop: bool = True,
    ) -> None:
        self.steps = steps
        self.step_size = step_size
        self.restarts = restarts
        self.random_start = random_start
        self.loss = loss
        self.early_stop = early_stop

    def _check(self) -> None:
        require_counts(self, "steps", "restarts")
        if self.step_size is not None and not self.step_size > 0:
            raise ConfigError(f"step_size must be > 0 (or None for 2.5*eps/steps), got "
                              f"{self.step_size!r}")
        require_loss(self.loss)

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        threat: ThreatModel,
        target: torch.Tensor | None,
        generator: draws.Source,
    ) -> AttackResult:
        self._check()
        alpha = self.step_size if self.step_size is not None else 2.5 * threat.eps / self.steps
        passes = Passes()
        best = x.clone()
        success = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        best_loss = torch.full((x.shape[0],), float("-inf"), device=x.device)
        for _ in range(self.restarts):
            # Draw the start for the whole batch so the random stream does not depend on
            # which samples are still active: same seed, same numbers, however we batch.
            start = threat.random_point(x, generator) if self.random_start else x
            idx = (~success).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            self._one_restart(model, x, y, target, threat, alpha, start, idx,
                              best, success, best_loss, passes)
        return AttackResult(x_adv=best, success=success, passes=passes)

    def _one_restart(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        target: torch.Tensor | None,
        threat: ThreatModel,
        alpha: float,
        start: torch.Tensor,
        idx: torch.Tensor,
        best: torch.Tensor,
        success: torch.Tensor,
        best_loss: torch.Tensor,
        passes: Passes,
    ) -> None:
        """Run one restart on samples ``idx``; update ``best``/``success`` in place."""
        x0, y0 = x[idx], y[idx]
        t0 = target[idx] if target is not None else None
        x_adv = start[idx]
        for _ in range(self.steps):
            _, logits, grad = input_gradient(model, x_adv, y0, t0, self.loss)
            passes.forward += idx.numel()
            passes.backward += idx.numel()
            fooled = is_success(logits, y0, t0)
            if fooled.any():
                best[idx[fooled]] = x_adv[fooled]
                success[idx[fooled]] = True
                if self.early_stop:
                    keep = ~fooled
                    idx, x0, y0 = idx[keep], x0[keep], y0[keep]
                    x_adv, grad = x_adv[keep], grad[keep]
                    t0 = t0[keep] if t0 is not None else None
                    if idx.numel() == 0:
                        return
            x_adv = threat.project(ascent_step(x_adv, grad, alpha, threat.norm), x0)
        with torch.no_grad():
            logits = model(x_adv)
        passes.forward += idx.numel()
        loss = attack_loss(logits, y0, t0, self.loss)
        fooled = is_success(logits, y0, t0)
        not_yet = ~success[idx]
        # Broken now: keep this point. Still robust: keep the highest-loss point seen.
        better = not_yet & (fooled | (loss > best_loss[idx]))
        best[idx[better]] = x_adv[better]
        # The model's logits may be float64 (or anything but best_loss's float32).
        best_loss[idx[better]] = loss[better].to(best_loss.dtype)
        success[idx[fooled & not_yet]] = True
