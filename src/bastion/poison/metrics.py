"""Detection rates with their intervals: TPR on poisons, FPR on clean samples, per class."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from bastion.common.intervals import interval_list, wilson_interval


def wilson(k: int, n: int) -> list[float] | None:
    """Wilson score interval ``[low, high]`` (95%) of the proportion ``k / n``; None if n = 0."""
    return interval_list(wilson_interval(k, n))


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
