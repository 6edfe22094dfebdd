"""Detection rates with their intervals: TPR on poisons, FPR on clean samples, per class."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

#: the normal quantile of a two-sided 95% interval.
_Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = _Z95) -> list[float] | None:
    """Wilson score interval ``[low, high]`` of the proportion ``k / n``; None if n = 0."""
    if n <= 0:
        return None
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return [0.0 if k == 0 else max(0.0, centre - half), 1.0 if k == n else min(1.0, centre + half)]


def rate(k: int, n: int) -> dict[str, Any]:
    """``{"k", "n", "rate", "ci95"}`` of a proportion (rate None when n = 0)."""
    return {"k": k, "n": n, "rate": k / n if n else None, "ci95": wilson(k, n)}


def detection_rates(flagged: Tensor, poisoned: Tensor, labels: Tensor) -> dict[str, Any]:
    """TPR (poisons flagged) and FPR (clean samples flagged), overall and per label.

    Args:
        flagged, poisoned: (N,) bool.
        labels: (N,) int, the labels as given in the (poisoned) training set.
    """
    out: dict[str, Any] = {"tpr": rate(int((flagged & poisoned).sum()), int(poisoned.sum())),
                           "fpr": rate(int((flagged & ~poisoned).sum()), int((~poisoned).sum())),
                           "per_class": {}}
    for c in sorted(set(labels.tolist())):
        here = labels == c
        out["per_class"][str(c)] = {
            "tpr": rate(int((flagged & poisoned & here).sum()), int((poisoned & here).sum())),
            "fpr": rate(int((flagged & ~poisoned & here).sum()), int((~poisoned & here).sum())),
        }
    return out
