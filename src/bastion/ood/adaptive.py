"""Adaptive attacks on a detector: PGD on its own score inside a threat model's ball.

An attacker who knows the detector moves an OOD input to *lower* its score (look
in-distribution while keeping its content, since the ball is small) and an ID input to
*raise* it (get a legitimate input rejected). Both are PGD (Madry et al. 2018) with a
random start: ``steps`` signed-gradient (Linf) or normalised-gradient (L2) steps on the
score, each projected back onto ball and bounds; per sample the best iterate by the true
score is kept.

Two checks against gradient masking, in the spirit of ``bastion diagnose``:

- a score that is not smooth (``Detector.smooth`` False, e.g. kNN's k-th distance) is
  also attacked through its smooth surrogate, and the better of the two kept per sample;
- ``random_points`` uniform points of the ball are scored too: when random points beat
  PGD on more than 10% of the samples, the gradient is not guiding the search and the
  result is flagged ``masking_suspected`` (the numbers are then only upper bounds on
  robustness).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from bastion.attacks.steps import ascent_step
from bastion.errors import ConfigError
from bastion.ood.base import Detector
from bastion.threat import ThreatModel

#: fraction of samples on which random points may beat PGD before masking is flagged
MASKING_FRACTION = 0.1


@dataclass(frozen=True)
class ScoreAttack:
    """Result of attacking one batch of inputs.

    Attributes:
        x_adv: (N, C, H, W) the adversarial inputs, inside the ball and bounds.
        scores: (N,) the detector's scores at ``x_adv``.
        clean_scores: (N,) the scores at the original inputs.
        random_wins: samples on which a random point of the ball beat PGD.
    """

    x_adv: torch.Tensor
    scores: torch.Tensor
    clean_scores: torch.Tensor
    random_wins: int

    @property
    def masking_suspected(self) -> bool:
        return self.random_wins > MASKING_FRACTION * len(self.scores)


def _pgd(objective: Callable[[torch.Tensor], torch.Tensor], true_score: Callable[
        [torch.Tensor], torch.Tensor], x: torch.Tensor, threat: ThreatModel, sign: float,
         steps: int, step_size: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """PGD ascent on sign * objective; best (by sign * true score) iterate per sample."""
    x_adv = threat.random_point(x, gen)
    best_x, best = x_adv.clone(), sign * true_score(x_adv)
    for _ in range(steps):
        with torch.enable_grad():
            xg = x_adv.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad((sign * objective(xg)).sum(), xg)
        x_adv = threat.project(ascent_step(x_adv, grad, step_size, threat.norm), x).detach()
        value = sign * true_score(x_adv)
        better = value > best
        best = torch.where(better, value, best)
        best_x[better] = x_adv[better]
    return best_x, sign * best


def attack_scores(detector: Detector, x: torch.Tensor, threat: ThreatModel, *,
                  direction: str, steps: int = 20, step_size: float | None = None,
                  random_points: int = 4, seed: int = 0) -> ScoreAttack:
    """Attack ``detector`` on one batch x (N, C, H, W) in [bounds].

    Args:
        direction: ``"down"`` (make inputs look in-distribution: for OOD inputs) or
            ``"up"`` (make inputs look anomalous: for ID inputs).
        steps: PGD steps (>= 1); step_size: None = 2.5 * eps / steps.
        random_points: uniform points of the ball scored for the masking check (>= 0).
        seed: seeds the random start and the random points.
    """
    if direction not in ("down", "up"):
        raise ConfigError(f"direction must be 'down' or 'up', got {direction!r}")
    if steps < 1 or random_points < 0:
        raise ConfigError(f"need steps >= 1 and random_points >= 0; got {steps}, "
                          f"{random_points}")
    detector.check_inputs(x)
    sign = 1.0 if direction == "up" else -1.0
    size = step_size if step_size is not None else 2.5 * threat.eps / steps
    gen = torch.Generator(device=x.device).manual_seed(seed)

    def true_score(z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return detector.differentiable_score(z)

    clean = true_score(x)
    objectives = [detector.differentiable_score]
    if not detector.smooth:
        objectives.append(detector.surrogate_score)
    best_x, best = x.clone(), sign * clean
    for objective in objectives:
        cand_x, cand = _pgd(objective, true_score, x, threat, sign, steps, size, gen)
        better = sign * cand > best
        best = torch.where(better, sign * cand, best)
        best_x[better] = cand_x[better]
    random_best = torch.full_like(best, -float("inf"))
    for _ in range(random_points):
        random_best = torch.maximum(random_best, sign * true_score(threat.random_point(x, gen)))
    wins = int((random_best > best + 1e-6 * best.abs().clamp_min(1.0)).sum())
    return ScoreAttack(x_adv=best_x, scores=sign * best, clean_scores=clean, random_wins=wins)


def attack_all(detector: Detector, x: torch.Tensor, threat: ThreatModel, *, direction: str,
               steps: int = 20, batch_size: int = 250, seed: int = 0) -> ScoreAttack:
    """:func:`attack_scores` over x in batches (seed + batch index per batch); on the CPU."""
    parts = []
    for i, start in enumerate(range(0, len(x), batch_size)):
        parts.append(attack_scores(detector, x[start:start + batch_size], threat,
                                   direction=direction, steps=steps, seed=seed + i))
    return ScoreAttack(x_adv=torch.cat([p.x_adv.cpu() for p in parts]),
                       scores=torch.cat([p.scores.float().cpu() for p in parts]),
                       clean_scores=torch.cat([p.clean_scores.float().cpu() for p in parts]),
                       random_wins=sum(p.random_wins for p in parts))
