"""The attack runs behind the checks: each returns per-sample results and passes spent.

Every run attacks only correctly classified samples ``x`` (N, ...) with labels ``y``
(N,); results are (N,) bool tensors "broken" (an adversarial example inside the threat
model was found and re-checked on the model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from bastion.attacks.base import AttackResult, Passes, is_success
from bastion.attacks.fgsm import FGSM
from bastion.attacks.pgd import PGD
from bastion.attacks.square import Square
from bastion.diagnostics.curves import eps_grid
from bastion.diagnostics.trace import Trace, traced_pgd
from bastion.errors import BastionError
from bastion.threat import ThreatModel


@dataclass
class Curve:
    """The security curve: per eps (ascending) the robust accuracy over ``n`` samples.

    Attributes:
        points: ``[{"eps", "robust_accuracy"}, ...]``; the last eps is the unbounded budget.
        main: the traced base run at ``threat.eps`` (its loss curve feeds convergence).
        passes: passes spent over every eps, per sample.
    """

    points: list[dict[str, float]]
    main: Trace
    passes: Passes = field(default_factory=Passes)


def security_curve(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n: int,
                   threat: ThreatModel, *, steps: int, restarts: int,
                   generator: Callable[[int], torch.Generator],
                   log: Callable[[str], None]) -> Curve:
    """PGD-``steps`` at every eps of :func:`eps_grid`; at ``threat.eps`` the traced run.

    ``generator(i)``: the random source for the i-th eps of the grid.
    """
    grid = eps_grid(threat, x[0].numel())
    points, passes, main = [], Passes(), None
    for i, eps in enumerate(grid):
        t, gen = threat.with_eps(eps), generator(i)
        log(f"security curve: pgd-{steps} at eps {eps:g}")
        if eps == threat.eps:
            main = traced_pgd(model, x, y, t, steps=steps, restarts=restarts, generator=gen)
            broken, used = verified(model, main.x_adv, x, y, t) & main.success, main.passes
        else:
            res = PGD(steps=steps, restarts=restarts).run(model, x, y, t, generator=gen)
            broken, used = checked(model, res, x, y, t), res.passes
        passes.add(used)
        points.append({"eps": eps, "robust_accuracy": (x.shape[0] - int(broken.sum())) / n})
    assert main is not None  # the grid always holds threat.eps
    return Curve(points=points, main=main, passes=passes)


def checked(model: nn.Module, result: AttackResult, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel) -> torch.Tensor:
    """(N,) the samples an attack claims, re-checked on the model."""
    return result.success & verified(model, result.x_adv, x, y, threat)


def verified(model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
             threat: ThreatModel) -> torch.Tensor:
    """(N,) bool: ``x_adv`` lies in the threat model around ``x`` and fools the model."""
    inside = threat.contains(x_adv, x)
    if not bool(inside.all()):
        raise BastionError("an attack returned points outside the threat model; this is a "
                           "bug in the attack, please report it")
    with torch.no_grad():
        return is_success(model(x_adv), y, None)


def strong_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *,
               steps: int, restarts: int, generator: torch.Generator
               ) -> tuple[torch.Tensor, Passes]:
    """The convergence check's stronger run: broken (N,) and passes."""
    res = PGD(steps=steps, restarts=restarts).run(model, x, y, threat, generator=generator)
    return checked(model, res, x, y, threat), res.passes


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
         threat: ThreatModel) -> tuple[torch.Tensor, Passes]:
    """One FGSM step (cross-entropy, no random start): broken (N,) and passes."""
    res = FGSM().run(model, x, y, threat)
    return checked(model, res, x, y, threat), res.passes


def square(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *,
           queries: int, generator: torch.Generator) -> tuple[torch.Tensor, Passes]:
    """Square (margin loss) with ``queries`` per sample: broken (N,) and passes."""
    res = Square(n_queries=queries).run(model, x, y, threat, generator=generator)
    return checked(model, res, x, y, threat), res.passes


def transfer(model: nn.Module, surrogate: nn.Module, x: torch.Tensor, y: torch.Tensor,
             threat: ThreatModel, *, steps: int, generator: torch.Generator
             ) -> tuple[torch.Tensor, Passes]:
    """PGD-``steps`` on ``surrogate`` (on the model's device), then the adversarial
    examples on ``model``: broken (N,) and passes (the surrogate's, plus one forward
    of ``model`` per sample)."""
    res = PGD(steps=steps).run(surrogate, x, y, threat, generator=generator)
    passes = Passes(forward=res.passes.forward + x.shape[0], backward=res.passes.backward)
    return verified(model, res.x_adv, x, y, threat), passes
