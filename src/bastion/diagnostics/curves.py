"""The security curve and the convergence check: does the attack behave like a search?

- ``security-curve``: robust accuracy against eps, from a fraction of eps up to an
  unbounded budget (Linf: eps = the whole input range; L2: the diameter of the input
  box), where every input can be replaced by an image of another class. A true robust
  accuracy never rises with eps and reaches 0 at the unbounded budget; an attack that
  does not get there is failing, not the model being robust.
- ``convergence``: a stronger run of the same attack (twice the steps, more restarts)
  must not lower robust accuracy by more than noise, and the loss must have flattened
  out by the last steps of the base run.

Accuracies are fractions of all n samples (misclassified ones count as not robust).
The verdict rules are pure functions of those numbers, so they are tested directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bastion.diagnostics.result import check, grade, sample_tolerance
from bastion.threat import ThreatModel

#: eps grid below the unbounded budget: these multiples of eps, then doubling.
CURVE_MULTIPLES = (0.25, 0.5, 1.0)
#: robust accuracy at the unbounded budget: pass up to, warn up to, fail above.
UNBOUNDED_PASS, UNBOUNDED_WARN = 0.02, 0.10
#: the stronger run may lower robust accuracy by sample_tolerance(n) before a warning,
#: and by CONVERGENCE_FAIL (or twice that tolerance) before a failure; raising it by
#: more than the latter fails too (the numbers are noise).
CONVERGENCE_FAIL = 0.03
#: the last PLATEAU_TAIL of the steps may bring at most PLATEAU_SHARE of the loss's
#: total rise (a straight, unconverged line brings PLATEAU_TAIL of it).
PLATEAU_TAIL, PLATEAU_SHARE = 0.1, 0.05


def unbounded_eps(threat: ThreatModel, dim: int) -> float:
    """A radius whose ball covers the whole input box around any input of ``dim`` values:
    the range ``high - low`` under Linf, the box's diameter ``sqrt(dim) * range`` under L2,
    ``dim * range`` under L1."""
    width = threat.bounds[1] - threat.bounds[0]
    return {"Linf": width, "L2": width * dim ** 0.5, "L1": width * dim}[threat.norm]


def eps_grid(threat: ThreatModel, dim: int) -> list[float]:
    """Ascending radii: ``CURVE_MULTIPLES * eps``, then ``2 eps, 4 eps, ...`` below the
    unbounded budget, then the budget itself (:func:`unbounded_eps`)."""
    top = unbounded_eps(threat, dim)
    grid = [m * threat.eps for m in CURVE_MULTIPLES if m * threat.eps < top]
    eps = 2 * threat.eps
    while eps < top:
        grid.append(eps)
        eps *= 2
    return [*grid, top]


def security_curve_check(points: Sequence[Mapping[str, float]], n: int) -> dict[str, Any]:
    """Judge ``points`` ({"eps", "robust_accuracy"}, ascending eps, the last one the
    unbounded budget) measured on ``n`` samples."""
    tol = sample_tolerance(n)
    rises = []
    for i in range(1, len(points)):
        low = min(points[:i], key=lambda p: p["robust_accuracy"])
        if points[i]["robust_accuracy"] - low["robust_accuracy"] > tol:
            rises.append({"eps_low": low["eps"], "accuracy_low": low["robust_accuracy"],
                          "eps_high": points[i]["eps"],
                          "accuracy_high": points[i]["robust_accuracy"]})
    last = points[-1]
    verdict = grade(last["robust_accuracy"], UNBOUNDED_PASS, UNBOUNDED_WARN)
    if rises:
        verdict = "fail"
    evidence = {"n": n, "points": [dict(p) for p in points], "unbounded_eps": last["eps"],
                "unbounded_accuracy": last["robust_accuracy"], "rises": rises,
                "rise_tolerance": tol, "pass_at_most": UNBOUNDED_PASS,
                "warn_at_most": UNBOUNDED_WARN}
    if verdict == "pass":
        return check("security-curve", "pass", evidence,
                     "Robust accuracy falls with eps and reaches about 0 once the budget "
                     "covers the whole input box, as a working attack must.")
    advice = []
    if rises:
        advice.append("Robust accuracy rises with eps, though every point of a small ball "
                      "lies in the larger one: the attack misses at large eps what it found "
                      "at small eps. Raise steps and restarts, or use APGD (--attack apgd), "
                      "which adapts its step size, until the curve falls monotonically.")
    if last["robust_accuracy"] > UNBOUNDED_PASS:
        advice.append(f"With eps = {last['eps']:g} every input can be replaced by any other, "
                      f"yet {last['robust_accuracy']:.1%} stay 'robust': the attack is "
                      "failing, not the model resisting. Suspect masked gradients (see "
                      "gradient-health and finite-differences), use a black-box attack "
                      "(--attack square) and BPDA or EOT where those checks point.")
    return check("security-curve", verdict, evidence, " ".join(advice))


def plateau_share(loss: Sequence[float], tail: float = PLATEAU_TAIL) -> float:
    """Share of a non-decreasing loss curve's total rise that came in its last ``tail``
    of steps; 0 for a flat curve (nothing moved, so nothing is still moving)."""
    last = len(loss) - 1
    start = min(last, max(0, round(last * (1 - tail))))
    total = loss[last] - loss[0]
    if not total > 1e-12:
        return 0.0
    return (loss[last] - loss[start]) / total


def convergence_check(base: float, strong: float, n: int, *, base_label: str,
                      strong_label: str, loss: Sequence[float],
                      newly_broken: int) -> dict[str, Any]:
    """Judge the base attack's robust accuracy ``base`` against a stronger run's
    ``strong`` (fractions of ``n``), and the base run's loss curve ``loss``
    (one value per step, :class:`bastion.diagnostics.trace.Trace`)."""
    tol = sample_tolerance(n)
    drop = base - strong
    tail = plateau_share(loss)
    fail_above = max(CONVERGENCE_FAIL, 2 * tol)
    verdict = grade(drop, tol, fail_above)
    # A stronger run that finds clearly *fewer* adversarial examples than the base run
    # means the numbers are noise (a randomised model). A sample or two either way is
    # what two random starts do on borderline samples, so only a large gap counts.
    if drop < -fail_above:
        verdict = "fail"
    if verdict == "pass" and tail > PLATEAU_SHARE:
        verdict = "warn"
    evidence = {"n": n, "one_sample": 1 / n, "base": base_label, "strong": strong_label,
                "base_robust_accuracy": base, "strong_robust_accuracy": strong,
                "drop": drop, "tolerance": tol, "fail_above": fail_above,
                "newly_broken_by_strong": newly_broken, "loss_tail_share": tail,
                "plateau_tail": PLATEAU_TAIL, "plateau_share_at_most": PLATEAU_SHARE}
    if verdict == "pass":
        advice = (f"{strong_label} changes robust accuracy by {-drop:+.1%} (one sample is "
                  f"{1 / n:.2%} at n = {n}) and the loss has flattened: {base_label} "
                  "has converged.")
    elif drop > tol:
        advice = (f"{strong_label} lowers robust accuracy by {drop:.1%} below "
                  f"{base_label}'s: the base attack has not converged, and its number is "
                  "too high. Raise steps and restarts until a further doubling changes "
                  "nothing, or use APGD (--attack apgd).")
    elif drop < -fail_above:
        advice = (f"{strong_label} leaves {-drop:.1%} more samples robust than "
                  f"{base_label}, though it searches more: the numbers are noise, as with "
                  "a randomised model (see randomness; attack it with EOT, "
                  "--attack eot:attack=pgd,draws=20).")
    else:
        advice = (f"The loss still rose by {tail:.0%} of its total over the last "
                  f"{PLATEAU_TAIL:.0%} of the steps: the attack stopped while still "
                  "climbing. Raise --steps.")
    return check("convergence", verdict, evidence, advice)
