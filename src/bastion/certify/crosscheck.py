"""Certificates beside attacks: the same samples, the same radii, the gap between them.

A certificate is a lower bound on robust accuracy; an attack's robust accuracy is an
upper bound. :func:`cross_check` attacks the certified samples at every radius of the
curve and reports, per radius, both numbers, their gap, and ``certified_but_broken``:
samples the verifier certified that the attack broke. For the bound methods (IBP,
CROWN) that count must be 0, or the verifier is unsound.

Randomized smoothing certifies the *smoothed* classifier g(x) = argmax_c P(f(x+δ)=c),
which a plain attack on the base model f does not attack. Its empirical side is PGD on
the expected logits over Gaussian noise (expectation over transformation, as in Salman
et al. 2019's attacks on smoothed classifiers), and every attacked point is judged by
Cohen et al.'s PREDICT with fresh noise:

- robust: PREDICT returns y at the attacked point (an abstention counts as an error,
  as in Cohen et al.'s accuracy);
- broken: PREDICT returns a class other than y. An abstention is neither, so for
  smoothing the empirical number can fall *below* the certified one (the gap can be
  negative); the count of abstentions is reported beside it.
- A smoothing certificate holds with probability at least 1 - alpha, and PREDICT
  errs with probability at most alpha, so a rare ``certified_but_broken`` > 0 is
  possible without a bug; a bound method's is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bastion import attacks as attack_registry
from bastion.adaptive import ExpectedModel
from bastion.attacks._wrapped import seeded_global_rng
from bastion.attacks.base import Passes
from bastion.certify import smoothing as smoothing_mod
from bastion.threat import ThreatModel


@dataclass
class CrossCheck:
    """The attack's side of one certify run, per radius (ascending ``eps``).

    Attributes:
        attack: the attack's name as shown in the card, e.g. ``"pgd-40"``.
        clean: (N,) bool, classified correctly (smoothing: PREDICT at x returns y).
        robust: eps -> (N,) bool, still correct after the attack at that radius.
        broken: eps -> (N,) bool, the attack found a wrongly classified point (smoothing:
            PREDICT returned a class other than y, not an abstention).
        passes: per-sample forward and backward passes, summed over radii.
    """

    attack: str
    clean: torch.Tensor
    robust: dict[float, torch.Tensor] = field(default_factory=dict)
    broken: dict[float, torch.Tensor] = field(default_factory=dict)
    passes: Passes = field(default_factory=Passes)


class GaussianNoise(nn.Module):
    """``model(x + N(0, sigma^2 I))``: one draw per call, (N, ...) -> logits (N, C)."""

    def __init__(self, model: nn.Module, sigma: float) -> None:
        super().__init__()
        self.model, self.sigma = model, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(smoothing_mod.gaussian_augment(x, self.sigma))


def cross_check(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                radii: list[float], *, steps: int, seed: int,
                smoothing: dict[str, Any] | None = None) -> CrossCheck:
    """Attack x (N, ...) with labels y (N,) at every radius in ``radii`` (input units).

    Args:
        steps: PGD steps per radius.
        smoothing: ``{"sigma", "n", "alpha", "batch", "draws"}`` to attack the smoothed
            classifier (see the module docstring); ``None`` for the bound methods.
    """
    if smoothing is None:
        return _check_base(model, x, y, threat, radii, steps, seed)
    return _check_smoothed(model, x, y, threat, radii, steps, seed, smoothing)


def _check_base(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                radii: list[float], steps: int, seed: int) -> CrossCheck:
    attack = attack_registry.make("pgd", steps=steps)
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    out = CrossCheck(attack=f"pgd-{steps}", clean=clean)
    for eps in radii:
        at = threat.with_eps(eps)
        result = attack.run(model, x, y, at, generator=torch.Generator().manual_seed(seed))
        out.passes.add(result.passes)
        with torch.no_grad():
            # Re-check what the attack claims: inside the ball and misclassified.
            wrong = (model(result.x_adv).argmax(1) != y) & at.contains(result.x_adv, x)
        out.broken[eps] = wrong
        out.robust[eps] = clean & ~wrong
    return out


def _check_smoothed(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                    radii: list[float], steps: int, seed: int,
                    cfg: dict[str, Any]) -> CrossCheck:
    draws = int(cfg["draws"])
    attacked = ExpectedModel(GaussianNoise(model, float(cfg["sigma"])), draws)
    attack = attack_registry.make("pgd", steps=steps)
    gen = torch.Generator(device=x.device).manual_seed(seed)

    def smoothed(points: torch.Tensor) -> torch.Tensor:
        return smoothing_mod.predict(model, points, float(cfg["sigma"]), int(cfg["n"]),
                                     float(cfg["alpha"]), int(cfg["batch"]),
                                     generator=gen).label.to(y.device)

    clean = smoothed(x) == y
    out = CrossCheck(attack=f"eot{draws}-pgd-{steps} (smoothed)", clean=clean)
    out.passes.forward += int(cfg["n"]) * x.shape[0]
    for eps in radii:
        at = threat.with_eps(eps)
        # GaussianNoise draws from torch's global RNG: seed it (and restore it after) so a
        # rerun finds the same points.
        with seeded_global_rng(torch.Generator().manual_seed(seed)):
            result = attack.run(attacked, x, y, at,
                                generator=torch.Generator().manual_seed(seed))
        # ExpectedModel runs `draws` forwards per counted pass; count what the model saw.
        out.passes.add(Passes(result.passes.forward * draws, result.passes.backward * draws))
        label = smoothed(result.x_adv)
        out.passes.forward += int(cfg["n"]) * x.shape[0]
        inside = at.contains(result.x_adv, x)
        out.broken[eps] = inside & (label != y) & (label != smoothing_mod.ABSTAIN)
        out.robust[eps] = clean & ((label == y) | ~inside)
    return out
