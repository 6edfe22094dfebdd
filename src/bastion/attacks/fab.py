"""FAB: the fast adaptive boundary attack (Croce & Hein, ICML 2020), Linf and L2.

A minimum-norm attack. Each step linearizes the decision boundary between the true class
and a class ``j`` at the current iterate, projects both the iterate and the original
input onto that hyperplane (exactly, inside the input box; see
:mod:`bastion.attacks._fab_geometry`), and moves to a convex combination of the two
projections, biased toward the original input (weight ``alpha <= alpha_max``) and
overshooting by ``eta``. Whenever an iterate fools the model it is recorded if it is the
smallest seen, and the search backs off toward the input by ``beta``.

Targeted mode (FAB-T, as in AutoAttack): without an explicit ``target``, each sample is
attacked toward its 2nd, 3rd, ... most likely class (by the clean logits) in turn, each
round only on samples still robust; success still means "misclassified". With an
explicit ``target`` the attack aims at it and success means "classified as target".
Untargeted mode (``targeted=False``) follows the nearest linearized boundary among all
classes, which needs the full Jacobian every step.

A sample counts as broken only if the smallest fooling point found lies within
``threat.eps`` (and the model, asked again at the returned point, agrees). Elsewhere the
attack returns the iterate inside the ball with the highest margin loss (x if none).

Cost per sample and round (restart x target): FAB-T ``steps`` x (2 forwards + 1
backward); untargeted ``steps`` x (C+1 forwards + C backwards) for C classes. Plus 1
forward on x and 1 forward per sample found, to check it.

Example:
    >>> fab = FAB(steps=100, targeted=True, n_target_classes=9)
    >>> result = fab.run(model, x, y, ThreatModel("Linf", 0.3))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bastion.attacks._fab_geometry import (
    boundary_toward,
    closest_boundary,
    project_onto_hyperplane,
    random_start_point,
)
from bastion.attacks._inference import inference_model
from bastion.attacks.base import (
    Attack,
    AttackResult,
    Passes,
    attack_loss,
    is_success,
    require_counts,
)
from bastion.common import draws
from bastion.errors import ConfigError
from bastion.threat import ThreatModel


class FAB(Attack):
    """Minimum-norm boundary attack with restarts; reports successes within eps.

    Args:
        steps: iterations per round (the reference's ``n_iter``).
        restarts: starts per target class; the first starts at x unless
            ``random_start``, later ones at a random point of norm eps/2 around x.
        alpha_max: largest weight of the step toward the original input, in [0, 1).
        eta: overshoot factor (>= 1) of the projection step, to cross the boundary.
        beta: after a fooling iterate, move back to ``x + beta * (iterate - x)``.
        targeted: FAB-T (aim at the most likely other classes in turn) rather than the
            nearest boundary among all classes.
        n_target_classes: how many of the most likely other classes FAB-T tries.
        random_start: start the first restart at a random point too (later restarts
            always do, since restarting from x would repeat the first one).
        early_stop: stop searching a sample once it has a fooling point within eps
            (cheaper, same successes); False keeps shrinking the perturbation for all
            ``steps``, so the returned point is the smallest one found.
    """

    name = "fab"
    per_sample_draws = True

    def __init__(
        self,
        *,
        steps: int = 100,
        restarts: int = 1,
        alpha_max: float = 0.1,
        eta: float = 1.05,
        beta: float = 0.9,
        targeted: bool = True,
        n_target_classes: int = 9,
        random_start: bool = False,
        early_stop: bool = True,
    ) -> None:
        self.steps = steps
        self.restarts = restarts
        self.alpha_max = alpha_max
        self.eta = eta
        self.beta = beta
        self.targeted = targeted
        self.n_target_classes = n_target_classes
        self.random_start = random_start
        self.early_stop = early_stop

    def _check(self) -> None:
        require_counts(self, "steps", "restarts", "n_target_classes")
        if not 0 <= self.alpha_max < 1:
            raise ConfigError(f"alpha_max must be in [0, 1), got {self.alpha_max!r} "
                              "(the reference uses 0.1)")
        if not 1 <= self.eta < 2:
            raise ConfigError(f"eta must be in [1, 2), got {self.eta!r} (an overshoot "
                              "factor; the reference uses 1.05)")
        if not 0 < self.beta <= 1:
            raise ConfigError(f"beta must be in (0, 1], got {self.beta!r} "
                              "(the reference uses 0.9)")

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
        n = x.shape[0]
        passes = Passes(forward=n)
        with torch.no_grad():
            logits = model(x)
        success = is_success(logits, y, target)
        x_adv = x.clone()
        aims: list[torch.Tensor | None]
        if target is not None:
            aims = [target]
        elif self.targeted:
            ranked = logits.argsort(dim=1, descending=True)
            aims = [ranked[:, k] for k in range(1, min(self.n_target_classes + 1,
                                                        logits.shape[1]))]
        else:
            aims = [None]
        # Where the attack fails it returns the in-ball iterate closest to fooling.
        near_loss = torch.full((n,), float("-inf"), device=x.device, dtype=x.dtype)
        # Each step's check of the new iterate needs no gradient: a frozen inference copy
        # answers it faster (the model itself where one cannot be trusted).
        checker = inference_model(model, x[:8])
        for aim in aims:
            for restart in range(self.restarts):
                # Drawn for the whole batch, so the stream does not depend on which
                # samples are still robust.
                start = (random_start_point(x, threat, generator)
                         if restart > 0 or self.random_start else x)
                idx = (~success).nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                goal = target[idx] if target is not None else None
                run = self._search((model, checker), x[idx], y[idx],
                                   aim[idx] if aim is not None else None, goal, start[idx],
                                   logits.shape[1], threat, passes)
                closer = run.near_loss > near_loss[idx]
                x_adv[idx[closer]] = threat.project(run.near[closer], x[idx[closer]])
                near_loss[idx[closer]] = run.near_loss[closer]
                # Ask the model again at the projected point: only what it confirms counts.
                hit = (run.size <= threat.eps).nonzero().squeeze(1)
                if hit.numel() == 0:
                    continue
                candidate = threat.project(run.found[hit], x[idx[hit]])
                with torch.no_grad():
                    ok = is_success(model(candidate), y[idx[hit]],
                                    goal[hit] if goal is not None else None)
                passes.forward += hit.numel()
                x_adv[idx[hit[ok]]] = candidate[ok]
                success[idx[hit[ok]]] = True
        return AttackResult(x_adv=x_adv, success=success, passes=passes)

    def _search(
        self,
        models: tuple[nn.Module, nn.Module],
        x0: torch.Tensor,
        y: torch.Tensor,
        aim: torch.Tensor | None,
        goal: torch.Tensor | None,
        start: torch.Tensor,
        classes: int,
        threat: ThreatModel,
        passes: Passes,
    ) -> _Run:
        """One FAB run from ``start`` on (M, ...) samples.

        ``models``: the model (for gradients) and a gradient-free copy of it (for checks).

        ``aim``: class whose boundary to follow (None: the nearest one); ``goal``: the
        explicit target that success requires (None: any wrong class).
        """
        model, checker = models
        m = x0.shape[0]
        best = x0.clone()
        best_size = torch.full((m,), float("inf"), device=x0.device, dtype=x0.dtype)
        near = x0.clone()
        near_loss = torch.full((m,), float("-inf"), device=x0.device, dtype=x0.dtype)
        live = torch.arange(m, device=x0.device)
        z, origin, label = start.clone(), x0, y
        aim_l, goal_l = aim, goal
        flat = (-1, *([1] * (x0.dim() - 1)))
        for _ in range(self.steps):
            k = live.numel()
            if aim_l is None:
                out, gap, w = closest_boundary(model, z, label, classes, threat.norm)
                passes.forward += k * classes
                passes.backward += k * classes
            else:
                out, gap, w = boundary_toward(model, z, label, aim_l)
                passes.forward += k
                passes.backward += k
            # The logits at z come for free: z may already fool (a random start, or an
            # iterate after backing off), or be the closest to fooling inside the ball.
            size = threat.norm_of(z - origin)
            self._keep_smallest(z, is_success(out, label, goal_l), size, live, best, best_size)
            loss = attack_loss(out, label, goal_l, "margin").to(near_loss.dtype)
            closer = (size <= threat.eps) & (loss > near_loss[live])
            near[live[closer]] = z[closer]
            near_loss[live[closer]] = loss[closer]
            # Hyperplane {v : gap + w.(v - z) = 0}; steps from z and from the origin.
            z_flat, o_flat = z.flatten(1), origin.flatten(1)
            from_z = project_onto_hyperplane(z_flat, w, -gap, threat.bounds, threat.norm)
            from_o = project_onto_hyperplane(
                o_flat, w, -gap - (w * (o_flat - z_flat)).sum(1), threat.bounds, threat.norm)
            a_z = threat.norm_of(from_z).clamp_min(1e-8)
            a_o = threat.norm_of(from_o).clamp_min(1e-8)
            # Lean toward the origin in proportion to how far z is from the plane.
            alpha = (a_z / (a_z + a_o)).clamp(0.0, self.alpha_max)[:, None]
            moved = (1 - alpha) * (z_flat + self.eta * from_z) + alpha * (
                o_flat + self.eta * from_o)
            z = threat.clip(moved.view_as(z))
            with torch.no_grad():
                out = checker(z)
            passes.forward += k
            fooled = is_success(out, label, goal_l)
            size = threat.norm_of(z - origin)
            self._keep_smallest(z, fooled, size, live, best, best_size)
            z = torch.where(fooled.view(flat), origin + self.beta * (z - origin), z)
            if self.early_stop:
                keep = best_size[live] > threat.eps
                if not bool(keep.all()):
                    live, z, origin, label = live[keep], z[keep], origin[keep], label[keep]
                    aim_l = aim_l[keep] if aim_l is not None else None
                    goal_l = goal_l[keep] if goal_l is not None else None
                    if live.numel() == 0:
                        break
        return _Run(found=best, size=best_size, near=near, near_loss=near_loss)

    @staticmethod
    def _keep_smallest(z: torch.Tensor, fooled: torch.Tensor, size: torch.Tensor,
                       live: torch.Tensor, best: torch.Tensor, best_size: torch.Tensor) -> None:
        """Record fooling iterates ``z`` (K, ...) of samples ``live`` that beat the best."""
        better = fooled & (size < best_size[live])
        best[live[better]] = z[better]
        best_size[live[better]] = size[better]


@dataclass
class _Run:
    """What one FAB run found, per sample (M, ...) / (M,).

    ``found``: the smallest fooling point (x where none), ``size``: its norm (inf where
    none); ``near``: the in-ball iterate with the highest margin loss, ``near_loss``: it.
    """

    found: torch.Tensor
    size: torch.Tensor
    near: torch.Tensor
    near_loss: torch.Tensor

