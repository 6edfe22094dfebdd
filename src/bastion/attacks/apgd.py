"""APGD and APGD-T: auto-PGD (Croce & Hein, "Reliable evaluation of adversarial robustness
with an ensemble of diverse parameter-free attacks", ICML 2020), Linf and L2; and L1
(Croce & Hein, "Mind the box", ICML 2021: sparse steps with an adaptive sparsity, see
:mod:`bastion.attacks._apgd_l1`).

PGD with no step size to tune: the step starts at 2·eps and is halved at fixed checkpoints
(22%, 41%, 57%, ... of the iterations) for every sample whose loss stopped rising, which
then restarts from its best point; a momentum term (0.75 new step, 0.25 previous move)
smooths the path. Losses: cross-entropy (``"ce"``) and the difference of logits ratio
(``"dlr"``), which is invariant to rescaling the logits.

APGD-T runs the targeted DLR loss toward each of the top ``n_target_classes`` other
classes in turn (by the clean logits), each round only on samples still robust; its goal
is still misclassification. AutoAttack uses APGD-CE (100 iterations) and APGD-T (9
targets × 100 iterations).

Cost per restart (and per target): at most ``steps + 1`` forward+backward passes per
sample, times ``eot_iter``; fooled samples stop early.

Example:
    >>> result = APGD(loss="ce", steps=100).run(model, x, y, ThreatModel("Linf", 0.3))
    >>> result = APGDT(n_target_classes=9).run(model, x, y, ThreatModel("L2", 1.5))
"""

from __future__ import annotations

import torch
from torch import nn

from bastion.attacks._apgd_l1 import apgd_l1_once
from bastion.attacks._apgd_run import apgd_once
from bastion.attacks.base import (
    Attack,
    AttackResult,
    Passes,
    is_success,
    require_counts,
    require_loss,
)
from bastion.common import draws
from bastion.errors import ConfigError
from bastion.threat import NORMS, ThreatModel


class APGD(Attack):
    """Auto-PGD with a step-size schedule, momentum and restarts.

    Args:
        loss: ``"ce"``, ``"dlr"`` or ``"margin"``. With an explicit ``target`` in
            :meth:`run` the loss pulls toward the target and success means reaching it.
        steps: iterations per restart (100 in AutoAttack; the paper's ``n_iter``).
        restarts: random restarts; each runs only on samples still robust.
        eot_iter: gradients averaged over this many forward/backward passes per iteration
            (expectation over transformation, for randomized models; 20 in AutoAttack's
            ``rand`` version).
        eps_schedule: L1 only: spend 30% of the iterations at 3 eps and 30% at 2 eps
            before the rest at eps (AutoAttack's L1 setting); successes count only at eps.
    """

    name = "apgd"
    per_sample_draws = True
    norms = NORMS

    def __init__(self, *, loss: str = "ce", steps: int = 100, restarts: int = 1,
                 eot_iter: int = 1, eps_schedule: bool = False) -> None:
        self.loss = loss
        self.steps = steps
        self.restarts = restarts
        self.eot_iter = eot_iter
        self.eps_schedule = eps_schedule

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
             target: torch.Tensor | None, generator: draws.Source) -> AttackResult:
        require_counts(self, "steps", "restarts", "eot_iter")
        require_loss(self.loss)
        _require_schedule(self.eps_schedule, threat)
        with torch.no_grad():
            done = is_success(model(x), y, target)
        res = _restarts(model, x, y, target, target is not None, threat, generator,
                        self.restarts, self.steps, self.loss, self.eot_iter, done,
                        self.eps_schedule)
        res.passes.forward += x.shape[0]
        res.success |= done
        return res


class APGDT(Attack):
    """APGD with the targeted DLR loss toward each of the most likely other classes.

    Args:
        n_target_classes: how many of the top other classes (by clean logits) to try, in
            order; each round runs on the samples still robust (9 in AutoAttack).
        steps, restarts, eot_iter, eps_schedule: as in :class:`APGD`, per target class.

    With an explicit ``target`` in :meth:`run`, only that class is tried and success
    means reaching it. Models with fewer than 4 classes get the targeted margin loss
    instead of targeted DLR (which needs a 4th logit).
    """

    name = "apgd-t"
    per_sample_draws = True
    norms = NORMS

    def __init__(self, *, n_target_classes: int = 9, steps: int = 100, restarts: int = 1,
                 eot_iter: int = 1, eps_schedule: bool = False) -> None:
        self.n_target_classes = n_target_classes
        self.steps = steps
        self.restarts = restarts
        self.eot_iter = eot_iter
        self.eps_schedule = eps_schedule

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
             target: torch.Tensor | None, generator: draws.Source) -> AttackResult:
        require_counts(self, "steps", "restarts", "eot_iter", "n_target_classes")
        _require_schedule(self.eps_schedule, threat)
        k = self.n_target_classes
        with torch.no_grad():
            logits = model(x)
        passes = Passes(forward=x.shape[0])
        n_classes = logits.shape[1]
        # Targeted DLR needs a 4th logit; with fewer classes the targeted margin
        # (z_t - max_{i != t} z_i) plays its part.
        loss = "dlr" if n_classes >= 4 else "margin"
        if target is not None:
            res = _restarts(model, x, y, target, True, threat, generator, self.restarts,
                            self.steps, loss, self.eot_iter, is_success(logits, y, target),
                            self.eps_schedule)
            res.passes.add(passes)
            res.success |= is_success(logits, y, target)
            return res
        ranked = logits.argsort(dim=1, descending=True)
        best = x.clone()
        success = is_success(logits, y, None)  # already wrong: nothing to attack
        for rank in range(1, min(k, n_classes - 1) + 1):
            # Draw every round's random starts even when nothing is left to attack, so the
            # random stream does not depend on which samples earlier rounds broke.
            goal = ranked[:, rank]
            res = _restarts(model, x, y, goal, False, threat, generator, self.restarts,
                            self.steps, loss, self.eot_iter, success, self.eps_schedule)
            passes.add(res.passes)
            # Broken samples keep their first fooling point; the others the best point of
            # the most likely target's round.
            keep = res.success | ((rank == 1) & ~success)
            best[keep] = res.x_adv[keep]
            success |= res.success
        return AttackResult(x_adv=best, success=success, passes=passes)


def _restarts(model: nn.Module, x: torch.Tensor, y: torch.Tensor, goal: torch.Tensor | None,
              targeted_success: bool, threat: ThreatModel, generator: draws.Source,
              restarts: int, n_iter: int, loss: str, eot: int, done: torch.Tensor,
              eps_schedule: bool) -> AttackResult:
    """APGD with ``restarts`` random starts on the samples not ``done`` (N,) bool.

    The result's ``success`` is True only where this call fooled the model; ``x_adv`` is x
    for samples it did not attack.
    """
    passes = Passes()
    best = x.clone()
    success = torch.zeros_like(done)
    best_loss = torch.full((x.shape[0],), float("-inf"), device=x.device)
    for _ in range(restarts):
        if threat.norm == "L1":
            # The reference's L1 start: a unit Gaussian step, projected onto ball ∩ box
            # by the run (a sparse point: the projection keeps the largest draws).
            start = x + draws.randn(generator, x.shape, device=x.device, dtype=x.dtype)
        else:
            start = threat.random_point(x, generator)
        idx = (~done & ~success).nonzero().squeeze(1)
        if idx.numel() > 0 and threat.norm == "L1":
            apgd_l1_once(model, x, y, goal, targeted_success, threat, start, idx, n_iter,
                         loss, eot, best, success, best_loss, passes, eps_schedule)
        elif idx.numel() > 0:
            apgd_once(model, x, y, goal, targeted_success, threat, start, idx, n_iter, loss,
                      eot, best, success, best_loss, passes)
    return AttackResult(x_adv=best, success=success, passes=passes)


def _require_schedule(eps_schedule: bool, threat: ThreatModel) -> None:
    if eps_schedule and threat.norm != "L1":
        raise ConfigError(f"eps_schedule is an L1 setting; the threat model is "
                          f"{threat.norm}: drop eps_schedule or use norm='L1'")
