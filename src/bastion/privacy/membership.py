"""Membership audit: how well can an attacker tell the training samples of a model from
other samples of the same distribution, at low false-positive rates?

    from bastion.privacy import membership_audit
    res = membership_audit(pool_x, pool_y, shadows=16, population=(test_x, test_y))
    res.attacks["lira-online"]["tpr_at_fpr"][0]        # TPR at 0.1% FPR, with interval

The standard LiRA setup (Carlini et al. 2022): ``shadows + 1`` models each train on an
independent random half of the pool. Model 0 is the target (its half are the members);
the others are the shadows. With ``targets = t > 1`` each of the first t models plays the
target in turn against all the others, and the scores of the t games are pooled (t
times more members and non-members, so tighter intervals at 0.1% FPR). ``population``
holds samples no model trained on (RMIA's reference points; the target's accuracy on
them is its test accuracy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bastion.errors import ConfigError, InputError
from bastion.privacy._train import Recipe
from bastion.privacy.mia import ATTACKS, Observations, get_attack
from bastion.privacy.roc import auroc, roc_curve, tpr_at_fpr
from bastion.privacy.shadows import train_models

FPRS = (0.001, 0.01)


@dataclass
class MembershipResult:
    """``attacks[name]`` = ``{"auroc", "auroc_ci", "tpr_at_fpr": [...], "roc"}`` (see
    :mod:`bastion.privacy.roc`); accuracies are fractions of the target's members (train)
    and of the population (test), ``target_test_ece`` the expected calibration error on
    the population (15 equal-width confidence bins, a fraction); ``epsilon`` the target's
    accounted DP epsilon."""

    attacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    target_train_accuracy: float = 0.0
    target_test_accuracy: float | None = None
    target_test_ece: float | None = None
    epsilon: float | None = None
    pool_size: int = 0
    shadows: int = 0
    targets: int = 1
    recipe: dict[str, Any] = field(default_factory=dict)
    target_state: dict[str, torch.Tensor] | None = None  # kept only when asked

    def to_dict(self) -> dict[str, Any]:
        return {"pool_size": self.pool_size, "shadows": self.shadows, "targets": self.targets,
                "recipe": self.recipe, "epsilon": self.epsilon,
                "target_train_accuracy": self.target_train_accuracy,
                "target_test_accuracy": self.target_test_accuracy,
                "target_test_ece": self.target_test_ece, "attacks": self.attacks}


def random_halves(n: int, count: int, seed: int) -> torch.Tensor:
    """(count, n) bool masks, each selecting an independent random half of n samples."""
    gen = torch.Generator().manual_seed(seed)
    masks = torch.zeros(count, n, dtype=torch.bool)
    for i in range(count):
        masks[i, torch.randperm(n, generator=gen)[: n // 2]] = True
    return masks


def summarize(scores: torch.Tensor, members: torch.Tensor) -> dict[str, Any]:
    """AUROC with interval, TPR at each of FPRS with interval, and the ROC curve."""
    return {**auroc(scores, members),
            "tpr_at_fpr": [tpr_at_fpr(scores, members, a) for a in FPRS],
            "roc": roc_curve(scores, members)}


def check_counts(shadows: int, targets: int) -> None:
    """ConfigError for fewer than 2 shadows or a target count outside 1..shadows + 1."""
    if shadows < 2:
        raise ConfigError(f"a membership audit needs >= 2 shadow models (LiRA fits a Gaussian "
                          f"to them; 16 or more for a useful 0.1% FPR), got {shadows}")
    if not 1 <= targets <= shadows + 1:
        raise ConfigError(f"targets must be between 1 and shadows + 1, got {targets}")


def _check(x: torch.Tensor, y: torch.Tensor, shadows: int, targets: int,
           population: tuple[torch.Tensor, torch.Tensor] | None) -> None:
    check_counts(shadows, targets)
    if len(x) < 20 or len(x) != len(y):
        raise InputError(f"need a pool of >= 20 labelled images, got {len(x)} images "
                         f"and {len(y)} labels")
    if population is not None and len(population[0]) != len(population[1]):
        raise InputError("population images and labels differ in number")


def membership_audit(x: torch.Tensor, y: torch.Tensor, *, shadows: int = 16,
                     recipe: Recipe | None = None, seed: int = 0,
                     population: tuple[torch.Tensor, torch.Tensor] | None = None,
                     attacks: Sequence[str] | None = None, targets: int = 1,
                     workers: int = 2, state: Path | None = None, keep_target: bool = False,
                     device: torch.device | str = "cpu",
                     log: Callable[[str], None] = lambda _: None) -> MembershipResult:
    """Train ``shadows + 1`` models on random halves of the pool ``x`` (N, C, H, W) in
    [0, 1] with labels ``y`` (N,), and run every attack in ``attacks`` (default: all
    registered; RMIA only with a ``population``). ``state`` is a folder of finished
    models (see :mod:`bastion.privacy.shadows`); ``keep_target`` keeps the target's
    weights in ``target_state``. The models train on ``device``; their logits and the
    attacks' statistics are CPU tensors."""
    _check(x, y, shadows, targets, population)
    recipe = recipe or Recipe()
    names = list(attacks) if attacks is not None else [
        n for n, cls in ATTACKS.items() if population is not None or not cls.needs_population]
    chosen = {n: get_attack(n) for n in names}
    if population is None and any(a.needs_population for a in chosen.values()):
        raise ConfigError("rmia needs a population (samples no model trained on)")
    n, count = len(x), shadows + 1
    pop_x, pop_y = population if population is not None else (x[:0], y[:0])
    masks = torch.cat([random_halves(n, count, seed),
                       torch.zeros(count, len(pop_x), dtype=torch.bool)], 1)
    trained = train_models(torch.cat([x, pop_x]), torch.cat([y, pop_y]), masks, recipe,
                           seed=seed, folder=state, workers=workers, device=device, log=log)
    logits, pop_logits, masks = trained.logits[:, :n], trained.logits[:, n:], masks[:, :n]
    result = MembershipResult(pool_size=n, shadows=shadows, targets=targets,
                              recipe=recipe.to_dict(), epsilon=trained.epsilons[0],
                              target_state=trained.states[0] if keep_target else None)
    for name, attack in chosen.items():
        parts = [_game(attack, t, logits, y, masks, pop_logits, pop_y) for t in range(targets)]
        scores = torch.cat([p[0] for p in parts])
        members = torch.cat([p[1] for p in parts])
        result.attacks[name] = {"paper": attack.paper, **summarize(scores, members)}
        log(f"{name}: AUROC {result.attacks[name]['auroc']:.3f}")
    target_in = masks[0]
    result.target_train_accuracy = float((logits[0, target_in].argmax(1) == y[target_in])
                                         .float().mean())
    if len(pop_x):
        result.target_test_accuracy = float((pop_logits[0].argmax(1) == pop_y).float().mean())
        result.target_test_ece = expected_calibration_error(pop_logits[0], pop_y)
    return result


def expected_calibration_error(logits: torch.Tensor, y: torch.Tensor, bins: int = 15
                               ) -> float:
    """ECE of (N, K) logits on (N,) labels: the bin-size-weighted mean gap between
    confidence and accuracy over ``bins`` equal-width confidence bins (a fraction)."""
    conf, pred = torch.softmax(logits.double(), 1).max(1)
    hit = (pred == y).double()
    which = (conf * bins).long().clamp_max(bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += float(inside.sum()) * abs(float(conf[inside].mean() - hit[inside].mean()))
    return total / max(len(y), 1)


def _game(attack: Any, t: int, logits: torch.Tensor, y: torch.Tensor, masks: torch.Tensor,
          pop_logits: torch.Tensor, pop_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (N,) and membership (N,) with model t as the target, the rest as shadows."""
    rest = [i for i in range(len(logits)) if i != t]
    obs = Observations(target=logits[t], labels=y, shadows=logits[rest], shadow_in=masks[rest],
                       population=pop_logits[t] if len(pop_y) else None,
                       pop_labels=pop_y if len(pop_y) else None,
                       pop_shadows=pop_logits[rest] if len(pop_y) else None)
    return attack.score(obs).double(), masks[t]
