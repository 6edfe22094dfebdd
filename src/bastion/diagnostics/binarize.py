"""The binarization test (Zimmermann, Brendel, Tramèr & Carlini, NeurIPS 2022,
"Increasing confidence in adversarial robustness evaluations"), written for bastion.

An attack that reports "robust" may be right, or too weak to find what exists. This
test builds, for each sample ``x``, a problem where an adversarial example exists by
construction, and asks whether the attack finds it:

1. Features: the model's logits ``z(.)`` (C values), so it applies to any model.
2. Inner points: ``BIN_INNER`` uniform random points of the threat ball around ``x``,
   plus ``x`` itself; they get class 0. Boundary point ``x_b``: a random point on the
   ball's surface (Linf: a random corner, L2: a random direction at radius eps, both
   clipped to the bounds); it gets class 1.
3. Readout: a new linear classifier ``s(x') = w . z(x') + b`` separating them. ``w`` is
   Fisher's discriminant, the whitened direction from the inner points' mean to ``x_b``
   (``w = (S + ridge)^-1 (z(x_b) - mean)``, S their covariance); ``b`` puts the decision
   threshold halfway between the highest inner score and ``x_b``'s score, and
   ``w, b`` are scaled so that ``s(x_b) = 1``. The readout is *valid* when ``x_b``
   scores above every inner point; samples where it is not are left out.
4. The binarized model maps ``x'`` to the two logits ``(0, s(x'))``: class 1 exists
   inside the ball (at ``x_b``), so an attack that searches the ball well finds it.
   Because the inner points were drawn where a random start lands, a random start
   alone almost never succeeds: success needs a useful gradient.

The test passes when the attack (PGD, as the diagnosis runs it) succeeds on nearly all
valid samples. It needs a deterministic model: with a random one, the readout's class
is itself random, so the diagnosis skips it (the randomness check says why).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bastion.attacks.base import is_success
from bastion.diagnostics.gradients import random_directions
from bastion.diagnostics.result import check, share
from bastion.diagnostics.trace import traced_pgd
from bastion.threat import ThreatModel

#: random inner points per sample (class 0), besides the sample itself.
BIN_INNER = 32
#: ridge added to the inner covariance, relative to its mean variance (keeps the solve
#: well conditioned when the logits barely move inside the ball).
BIN_RIDGE = 1e-3
#: attack success rate on valid samples: pass at or above BIN_PASS, warn above BIN_WARN.
BIN_PASS, BIN_WARN = 0.95, 0.80
#: fewer valid samples than this: inconclusive (a warning asking for more samples).
BIN_MIN_VALID = 10


class Binarized(nn.Module):
    """Row ``i`` of a batch (S, ...) through ``model``, then readout ``i``: logits (S, 2)
    ``(0, w_i . z + b_i)``. Rows are tied to their position: feed all S rows at once."""

    def __init__(self, model: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = (self.model(x) * self.weight).sum(1) + self.bias
        return torch.stack([torch.zeros_like(score), score], dim=1)


def fit_readouts(model: nn.Module, x: torch.Tensor, threat: ThreatModel,
                 generator: torch.Generator, inner: int = BIN_INNER
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Readouts for samples ``x`` (S, ...): ``weight`` (S, C), ``bias`` (S,), ``valid``
    (S,) bool and the boundary points ``x_b`` (S, ...)."""
    s = x.shape[0]
    many = x.repeat_interleave(inner, dim=0)
    points = threat.random_point(many, generator).view(s, inner, *x.shape[1:])
    surface = random_directions(x, threat.norm, 1, generator).squeeze(1)
    boundary = threat.project(x + threat.eps * surface, x)
    with torch.no_grad():
        z_inner = model(points.flatten(0, 1)).view(s, inner, -1).double()
        z_x = model(x).double().unsqueeze(1)
        z_b = model(boundary).double()
    z_in = torch.cat([z_x, z_inner], dim=1)  # (S, inner + 1, C)
    mean = z_in.mean(1)
    centred = z_in - mean.unsqueeze(1)
    cov = centred.transpose(1, 2) @ centred / (inner)
    c = cov.shape[-1]
    ridge = BIN_RIDGE * cov.diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-12)
    cov = cov + ridge.view(s, 1, 1) * torch.eye(c, dtype=cov.dtype, device=cov.device)
    w = torch.linalg.solve(cov, (z_b - mean).unsqueeze(-1)).squeeze(-1)  # (S, C)
    inner_top = (z_in * w.unsqueeze(1)).sum(2).amax(1)
    top_b = (z_b * w).sum(1)
    valid = top_b > inner_top
    threshold = (inner_top + top_b) / 2
    scale = (top_b - threshold).clamp_min(1e-12)
    weight, bias = w / scale.unsqueeze(1), -threshold / scale
    return weight.to(x.dtype), bias.to(x.dtype), valid & torch.isfinite(bias), boundary


def binarization_test(model: nn.Module, x: torch.Tensor, threat: ThreatModel, *,
                      steps: int, step_size: float | None, generator: torch.Generator
                      ) -> dict[str, Any]:
    """Run the test on correctly classified samples ``x`` (S, ...) with PGD of ``steps``."""
    weight, bias, valid, boundary = fit_readouts(model, x, threat, generator)
    binarized = Binarized(model, weight, bias)
    zeros = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    with torch.no_grad():
        # Check the construction: x is class 0 and x_b class 1 for every valid readout.
        at_x = is_success(binarized(x), zeros, None)
        at_b = is_success(binarized(boundary), zeros, None)
    valid &= ~at_x & at_b
    trace = traced_pgd(binarized, x, zeros, threat, steps=steps, step_size=step_size,
                       generator=generator)
    found = trace.success & valid
    n_valid = int(valid.sum())
    rate = share(int(found.sum()), n_valid)
    evidence = {"samples": int(x.shape[0]), "valid_readouts": n_valid,
                "attack_found": int(found.sum()), "success_rate": rate,
                "inner_points": BIN_INNER, "attack": f"pgd-{steps}",
                "pass_at_or_above": BIN_PASS, "warn_at_or_above": BIN_WARN}
    if n_valid < BIN_MIN_VALID:
        return check("binarization-test", "warn", evidence,
                     f"Only {n_valid} readouts were valid (need {BIN_MIN_VALID}): the test "
                     "is inconclusive. Diagnose more samples (--n).")
    if rate >= BIN_PASS:
        return check("binarization-test", "pass", evidence,
                     "The attack found the adversarial example that was planted in every "
                     "ball: it can search this model's threat model.")
    return check(
        "binarization-test", "warn" if rate >= BIN_WARN else "fail", evidence,
        "An adversarial example exists inside every valid ball (it was planted there), "
        "yet the attack missed it on many samples: the attack is too weak for this model, "
        "so its 'robust' points prove nothing. Strengthen it (more steps and restarts, "
        "--attack apgd), check gradient-health and finite-differences for masking, and "
        "use BPDA or EOT where they point.")
