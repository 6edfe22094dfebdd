"""The shape every diagnostic check returns, and the rules for combining them.

A check is a JSON-ready dict ``{"name", "verdict", "evidence", "advice"}``, the same
layout as the evaluation's sanity flags (:mod:`bastion.evaluation.flags`):

- ``verdict``: ``"pass"`` (nothing suspicious), ``"warn"`` (look into it) or ``"fail"``
  (the robust accuracy is probably too high until the advice is followed);
- ``evidence``: the numbers the verdict was drawn from (counts, shares, thresholds);
- ``advice``: what to run next; for a pass, what the check established.

A check that does not apply to a model (the binarization test on a randomised model,
transfer without a surrogate) passes with ``"skipped": True`` and the reason in
``evidence["reason"]``: it found nothing wrong because it did not look, and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

VERDICTS = ("pass", "warn", "fail")

#: shares below this are always tolerated: half a percentage point.
MIN_TOLERANCE = 0.005


def check(name: str, verdict: str, evidence: dict[str, Any], advice: str) -> dict[str, Any]:
    """One check's result; ``verdict`` must be one of :data:`VERDICTS`."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    return {"name": name, "verdict": verdict, "evidence": evidence, "advice": advice}


def skipped(name: str, reason: str) -> dict[str, Any]:
    """A check that did not run: a pass that says it is not one."""
    out = check(name, "pass", {"reason": reason}, f"Not run: {reason}")
    out["skipped"] = True
    return out


def grade(value: float, warn_above: float, fail_above: float) -> str:
    """``"pass"`` up to ``warn_above``, ``"warn"`` up to ``fail_above``, else ``"fail"``."""
    if value > fail_above:
        return "fail"
    return "warn" if value > warn_above else "pass"


def sample_tolerance(n: int, floor: float = MIN_TOLERANCE) -> float:
    """A share that counts as noise among ``n`` samples: ``floor``, but always more than
    one sample (1.5 / n), so a single sample never decides a verdict."""
    return max(floor, 1.5 / max(n, 1))


def masking_suspected(checks: Iterable[Mapping[str, Any]]) -> bool:
    """True when any check failed."""
    return any(c["verdict"] == "fail" for c in checks)


def share(count: int, total: int) -> float:
    """``count / total`` as a float, 0.0 for an empty total."""
    return count / total if total else 0.0
