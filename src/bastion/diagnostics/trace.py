"""PGD that records its loss at every step, for the convergence check and its plot.

The search is :class:`bastion.attacks.PGD`'s (a random start in the ball, ``steps``
ascent steps of ``step_size`` from :mod:`bastion.attacks.steps`, projection after each;
a sample counts as broken as soon as one iterate fools the model), with two differences
that the diagnostics need:

- every sample stays in the batch to the last step (no early stop), so the loss curve
  averages over the same samples at every step and a model whose rows are tied to
  their position in the batch (the binarized models of :mod:`.binarize`) works;
- after each evaluation of the loss it records the mean over samples of the best loss
  seen so far, each sample's value frozen once it is broken (a non-decreasing curve),
  and the share of samples not yet broken.

Cost: ``steps`` forward+backward passes and 1 forward pass per sample and restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from bastion.attacks.base import Passes, attack_loss, is_success
from bastion.attacks.steps import ascent_step, input_gradient
from bastion.threat import ThreatModel

#: per-sample losses are clipped to +-LOSS_CLIP so a saturated model (logits times a
#: huge constant, cross-entropy overflowing) still gives a finite, plottable curve.
LOSS_CLIP = 1e6


@dataclass
class Trace:
    """What :func:`traced_pgd` found on N samples.

    Attributes:
        success: (N,) bool, some iterate of some restart fooled the model.
        x_adv: (N, ...) the first fooling iterate, else the last restart's final point.
        loss: mean over the N samples of the best loss so far (frozen where a sample
            broke), one value per loss evaluation: ``steps + 1`` values per restart,
            restarts one after the other.
        robust: share of the N samples not yet broken, aligned with ``loss``.
        passes: forward and backward passes spent, per sample.
    """

    success: torch.Tensor
    x_adv: torch.Tensor
    loss: list[float] = field(default_factory=list)
    robust: list[float] = field(default_factory=list)
    passes: Passes = field(default_factory=Passes)


def traced_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *,
               steps: int, restarts: int = 1, step_size: float | None = None,
               loss: str = "ce", generator: torch.Generator) -> Trace:
    """Untargeted PGD on ``x`` (N, ...) with labels ``y`` (N,), recording the loss.

    Args:
        step_size: input units; None means ``2.5 * eps / steps`` as in PGD.
        loss: ``"ce"``, ``"margin"`` or ``"dlr"`` (:func:`bastion.attacks.base.attack_loss`).
        generator: the random starts' source (one draw of the ball per restart).
    """
    alpha = step_size if step_size is not None else 2.5 * threat.eps / steps
    n = x.shape[0]
    trace = Trace(success=torch.zeros(n, dtype=torch.bool, device=x.device), x_adv=x.clone())
    best = torch.full((n,), -LOSS_CLIP, device=x.device)
    for _ in range(restarts):
        point = threat.random_point(x, generator)
        for step in range(steps + 1):
            if step < steps:
                value, logits, grad = input_gradient(model, point, y, None, loss)
                trace.passes.backward += n
            else:  # the last iterate needs its loss, not a gradient
                with torch.no_grad():
                    logits = model(point)
                value = attack_loss(logits, y, None, loss)
            trace.passes.forward += n
            fooled = is_success(logits, y, None) & ~trace.success
            trace.x_adv[fooled] = point[fooled]
            # A broken sample's best loss freezes where it broke, as if it left the batch
            # (PGD's early stop): pushing a misclassified point further is no progress.
            live = ~trace.success
            trace.success |= fooled
            clipped = torch.nan_to_num(value.float(), nan=-LOSS_CLIP).clamp(-LOSS_CLIP, LOSS_CLIP)
            best = torch.where(live, torch.maximum(best, clipped), best)
            trace.loss.append(float(best.mean()))
            trace.robust.append(float((~trace.success).float().mean()))
            if step < steps:
                point = threat.project(ascent_step(point, grad, alpha, threat.norm), x)
        keep = ~trace.success
        trace.x_adv[keep] = point[keep]
    return trace

