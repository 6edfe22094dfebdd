"""Checks on the model's gradients and outputs themselves, before any attack numbers.

- ``randomness``: identical forward passes must agree, or one attack run sees one random
  draw of a randomised model and its robust accuracy is no worst case.
- ``gradient-health``: the cross-entropy must have a non-zero, finite input gradient on
  correctly classified points, or gradient attacks get no direction there.
- ``finite-differences``: autograd's directional derivatives must match those measured
  by finite differences; when they disagree, the backward pass does not describe the
  forward one (non-differentiable preprocessing such as rounding, or shattered gradients).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bastion.attacks.base import attack_loss
from bastion.attacks.steps import input_gradient
from bastion.diagnostics.result import check, grade, share
from bastion.evaluation.flags import RANDOM_ATOL, RANDOM_RTOL
from bastion.threat import ThreatModel

#: forward passes compared by the randomness check.
RANDOM_DRAWS = 4
#: share of correct points with a zero or non-finite gradient: warn above, fail above.
GRAD_WARN, GRAD_FAIL = 0.01, 0.10
#: finite-difference steps, as fractions of eps (per coordinate under Linf), largest first:
#: small ones resolve the kinks of honest ReLU nets, large ones cross the levels of a
#: coarse input quantisation.
FD_STEPS = (1e-1, 1e-2, 1e-3, 1e-4)
#: the base point is a random point within FD_JITTER * eps of x (see the function).
FD_JITTER = 0.1
#: random directions per point.
FD_DIRECTIONS = 8
#: median relative error between autograd and finite differences: warn above, fail above.
FD_WARN, FD_FAIL = 0.15, 0.35
#: a point whose directional derivatives are all below this (both ways) at every step is
#: flat: there is nothing to compare. A differentiable model's margin always moves, so
#: more than FD_FLAT_WARN of flat points is itself a warning (a piecewise-constant model).
FD_FLAT, FD_FLAT_WARN = 1e-6, 0.5

RandomReport = dict[str, Any]


def randomness(model: nn.Module, x: torch.Tensor, draws: int = RANDOM_DRAWS) -> dict[str, Any]:
    """Run ``model`` ``draws`` times on ``x`` (N, ...) and compare the logits (N, C).

    Outputs differ when ``|z_i - z_0| > RANDOM_ATOL + RANDOM_RTOL * max|z_0|`` (the
    evaluation's sanity-flag tolerance, which covers GPU kernel noise).
    """
    with torch.no_grad():
        outs = [model(x) for _ in range(draws)]
    first = outs[0]
    diff = max(float((o - first).abs().max()) for o in outs[1:])
    limit = RANDOM_ATOL + RANDOM_RTOL * float(first.abs().max())
    preds = torch.stack([o.argmax(1) for o in outs])
    flips = int((preds != preds[0]).any(0).sum())
    evidence = {"points": int(x.shape[0]), "draws": draws, "max_logit_diff": diff,
                "tolerance": limit, "predictions_changed": flips,
                "share_changed": share(flips, int(x.shape[0]))}
    if diff <= limit:
        return check("randomness", "pass", evidence,
                     f"{draws} forward passes gave the same logits: the model is deterministic.")
    # A fail even when no prediction flips: a single draw's gradient is then still not
    # the gradient of what the defense computes on average (stochastic gradients).
    return check(
        "randomness", "fail", evidence,
        "Identical forward passes disagree: the model is randomised (noise, random "
        "transforms, dropout left on), so a gradient attack follows one random draw and "
        "its robust accuracy is not a worst case. Attack the expectation over the "
        "randomness with EOT, e.g. bastion evaluate ... --attack eot:attack=pgd,draws=20, "
        "and report accuracy over several draws.")


def gradient_health(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """Share of correct points ``x`` (N, ...) whose input gradient is zero or not finite.

    Measured for the cross-entropy (what PGD ascends by default) and for the margin loss
    (best other logit minus the true one), which tells saturation (only the
    cross-entropy's gradient vanishes) from a non-differentiable model (both do).
    """
    counts = {}
    for loss in ("ce", "margin"):
        _, _, grad = input_gradient(model, x, y, None, loss)
        flat = grad.flatten(1)
        counts[loss] = {"zero": int((flat == 0).all(1).sum()),
                        "nonfinite": int((~torch.isfinite(flat)).any(1).sum())}
    n = int(x.shape[0])
    bad = counts["ce"]["zero"] + counts["ce"]["nonfinite"]
    bad_margin = counts["margin"]["zero"] + counts["margin"]["nonfinite"]
    evidence = {"points": n, "ce": counts["ce"], "margin": counts["margin"],
                "share_masked": share(bad, n), "warn_above": GRAD_WARN, "fail_above": GRAD_FAIL}
    verdict = grade(share(bad, n), GRAD_WARN, GRAD_FAIL)
    if verdict == "pass":
        advice = "Input gradients are non-zero and finite on the correct points."
    elif bad_margin < bad / 2:
        advice = ("The cross-entropy is saturated (its gradient vanishes) while the "
                  "margin's does not: the logits are scaled so large that softmax is "
                  "exactly one-hot. Attack with a scale-free loss "
                  "(--attack pgd:loss=margin or apgd with the DLR loss) and keep Square.")
    else:
        advice = ("Gradients vanish for every loss: the model is not differentiable where "
                  "it matters (rounding, thresholds, lookup tables). Gradient attacks get no "
                  "direction, so their robust accuracy says nothing. Use BPDA "
                  "(bastion evaluate ... --attack bpda:attack=pgd) and a black-box attack "
                  "(--attack square).")
    return check("gradient-health", verdict, evidence, advice)


def finite_differences(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       threat: ThreatModel, generator: torch.Generator,
                       directions: int = FD_DIRECTIONS) -> dict[str, Any]:
    """Compare autograd and central finite differences of the margin loss.

    For each point of ``x`` (N, ...) and each of ``directions`` random directions ``v``
    (Linf: random signs, one per input value; L2: a random unit vector), autograd gives
    ``grad . v`` at a base point ``p`` and finite differences give
    ``(L(p + h v) - L(p - h v)) / (2 h)`` for each step ``h`` in ``FD_STEPS * eps``.
    ``p`` is ``x`` moved a random bit toward the middle of the bounds in every input value
    (:func:`_base_point`), so every evaluated point is a valid input and no two values
    tie: images have flat regions (blank background) where max-pooling ties, and at a
    tie autograd's choice is no derivative.
    The margin loss is used because it does not saturate.

    Per point and step the error is ``||fd - ad|| / max(||fd||, ||ad||)`` over the
    directions (0: agreement; 1: one of them is zero). A differentiable model agrees at
    some small enough step (adversarially trained ReLU nets have dense kinks, so larger
    steps straddle some), a model whose backward pass is wrong (rounding: zero gradient,
    yet the output moves) disagrees at every step. So each point keeps its smallest
    error over the steps where it is not flat, and the verdict reads the median over
    points, robust to the odd point where a kink falls inside every step.
    """
    p = _base_point(x, threat, generator)
    v = random_directions(p, threat.norm, directions, generator)
    _, _, grad = input_gradient(model, p, y, None, "margin")
    auto = (grad.unsqueeze(1) * v).flatten(2).sum(2)  # (N, D)
    n = p.shape[0]
    best = torch.full((n,), float("inf"), device=p.device)
    for step in FD_STEPS:
        h = step * threat.eps
        fd = _central_difference(model, p, y, v, h)
        size = torch.maximum(fd.norm(dim=1), auto.norm(dim=1))
        error = (fd - auto).norm(dim=1) / size.clamp_min(FD_FLAT)
        usable = (size > FD_FLAT) & torch.isfinite(error)
        best = torch.where(usable, torch.minimum(best, error), best)
    measured = best[torch.isfinite(best)]
    median = float(measured.median()) if measured.numel() else 0.0
    evidence = {"points": n, "directions": directions, "loss": "margin",
                "steps": [s * threat.eps for s in FD_STEPS],
                "flat_points": n - int(measured.numel()), "median_relative_error": median,
                "flat_warn_above": FD_FLAT_WARN,
                "share_error_above_fail": share(int((measured > FD_FAIL).sum()), n),
                "warn_above": FD_WARN, "fail_above": FD_FAIL}
    flat = n - int(measured.numel())
    verdict = grade(median, FD_WARN, FD_FAIL) if measured.numel() else "pass"
    if verdict == "pass" and flat > FD_FLAT_WARN * n:
        return check("finite-differences", "warn", evidence,
                     f"On {flat} of {n} points the margin did not move at all for steps up "
                     f"to {FD_STEPS[0] * threat.eps:g}: the model is piecewise constant "
                     "there (e.g. coarse input quantisation), so gradients carry no "
                     "information. See gradient-health; attack with BPDA "
                     "(bastion evaluate ... --attack bpda:attack=pgd) and Square.")
    if verdict == "pass":
        advice = ("Autograd's directional derivatives match finite differences: the "
                  "backward pass describes the forward one.")
    else:
        advice = ("Autograd disagrees with finite differences: part of the model is not "
                  "differentiable (rounding, quantisation, thresholds, JPEG) or its "
                  "gradient is shattered, so gradient attacks follow a wrong direction. "
                  "Rerun with BPDA, which differentiates through an approximation of that "
                  "part: bastion evaluate ... --attack bpda:attack=pgd.")
    return check("finite-differences", verdict, evidence, advice)


def _base_point(x: torch.Tensor, threat: ThreatModel, generator: torch.Generator) -> torch.Tensor:
    """``x`` (N, ...) with every value moved toward the middle of the bounds by the
    largest finite-difference step plus a uniform random amount up to ``FD_JITTER * eps``
    (under L2 divided by sqrt(dimension), under L1 by the dimension, to stay near the
    ball). Values stay distinct, and ``p +- h v`` stays inside the bounds for every step
    ``h``. Clamping instead would pile blank pixels onto one value and recreate the
    ties."""
    low, high = threat.bounds
    # The Linf radius of a ball of that size spread over all values.
    dim = x[0].numel()
    scale = {"Linf": threat.eps, "L2": threat.eps / dim ** 0.5, "L1": threat.eps / dim}[
        threat.norm]
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    shift = FD_STEPS[0] * threat.eps + FD_JITTER * scale * u
    inward = torch.where(x < (low + high) / 2, 1.0, -1.0).to(x.dtype)
    return (x + inward * shift).clamp(low, high)


def random_directions(p: torch.Tensor, norm: str, count: int,
                      generator: torch.Generator) -> torch.Tensor:
    """``count`` random directions per point of ``p`` (N, ...): (N, count, ...) of unit
    norm (Linf: random signs, a corner of the ball; L2: Gaussian, normalised; L1: Gaussian
    scaled to unit L1 length)."""
    n, shape = p.shape[0], p.shape[1:]
    if norm == "Linf":
        signs = torch.randint(0, 2, (n, count, *shape), generator=generator, device=p.device)
        return signs.to(p.dtype) * 2 - 1
    v = torch.randn((n, count, *shape), generator=generator, device=p.device, dtype=p.dtype)
    size = v.flatten(2).abs().sum(dim=2) if norm == "L1" else v.flatten(2).norm(dim=2)
    return v / size.view(n, count, *([1] * len(shape)))


def _central_difference(model: nn.Module, p: torch.Tensor, y: torch.Tensor,
                        v: torch.Tensor, h: float) -> torch.Tensor:
    """(N, D): ``(L(p + h v) - L(p - h v)) / (2 h)`` for directions ``v`` (N, D, ...)."""
    n, count = v.shape[:2]
    ys = y.repeat_interleave(count)
    with torch.no_grad():
        up = attack_loss(model((p.unsqueeze(1) + h * v).flatten(0, 1)), ys, None, "margin")
        down = attack_loss(model((p.unsqueeze(1) - h * v).flatten(0, 1)), ys, None, "margin")
    return ((up - down) / (2 * h)).view(n, count)
