"""ROC summaries of a membership score: TPR at a fixed low FPR and AUROC, with intervals.

Scores are "higher means member". At FPR ``alpha`` the threshold lets through at most
``floor(alpha * n_out)`` non-members, so with fewer than ``1 / alpha`` non-members the
operating point is FPR = 0 (the report says how many non-members there were).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from bastion.common.intervals import interval_list, wilson_interval


def tpr_at_fpr(scores: torch.Tensor, members: torch.Tensor, alpha: float) -> dict[str, Any]:
    """TPR at FPR <= ``alpha``: ``{"fpr_target", "tpr", "tpr_ci" (percentage points),
    "fpr", "members", "non_members"}`` for (N,) ``scores`` and (N,) bool ``members``."""
    pos, neg = scores[members], scores[~members]
    allowed = math.floor(alpha * len(neg))
    ordered = neg.sort(descending=True).values
    # strictly above the (allowed+1)-th largest non-member score
    threshold = ordered[allowed] if allowed < len(neg) else ordered[-1] - 1
    hits = int((pos > threshold).sum())
    fp = int((neg > threshold).sum())
    return {"fpr_target": alpha, "tpr": hits / max(len(pos), 1),
            "tpr_ci": interval_list(wilson_interval(hits, len(pos)), 100, 3),
            "fpr": fp / max(len(neg), 1), "members": len(pos), "non_members": len(neg)}


def auroc(scores: torch.Tensor, members: torch.Tensor) -> dict[str, Any]:
    """Area under the ROC curve (Mann-Whitney, ties count half) with a Hanley-McNeil
    95% interval: ``{"auroc", "auroc_ci"}``."""
    pos, neg = scores[members].double(), scores[~members].double()
    n_p, n_n = len(pos), len(neg)
    greater = (pos[:, None] > neg[None, :]).double().sum()
    ties = (pos[:, None] == neg[None, :]).double().sum()
    a = float((greater + 0.5 * ties) / (n_p * n_n))
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_p - 1) * (q1 - a * a) + (n_n - 1) * (q2 - a * a)) / (n_p * n_n)
    half = 1.959963984540054 * math.sqrt(max(var, 0.0))
    return {"auroc": a, "auroc_ci": [max(0.0, a - half), min(1.0, a + half)]}


def roc_curve(scores: torch.Tensor, members: torch.Tensor, points: int = 120
              ) -> dict[str, list[float]]:
    """The ROC curve sampled at ``points`` FPRs spaced evenly on a log axis from
    ``1 / non-members`` to 1 (for log-log plots): ``{"fpr": [...], "tpr": [...]}``,
    each TPR the best at FPR <= that value."""
    pos, neg = scores[members].double(), scores[~members].double()
    if len(pos) == 0 or len(neg) == 0:
        return {"fpr": [], "tpr": []}
    order = torch.cat([pos, neg]).argsort(descending=True, stable=True)
    is_pos = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])[order]
    tp, fp = is_pos.cumsum(0), (1 - is_pos).cumsum(0)
    grid = torch.logspace(math.log10(1 / len(neg)), 0, points, dtype=torch.float64)
    tpr = []
    for f in grid:
        ok = fp <= f * len(neg) + 1e-9
        tpr.append(float(tp[ok].max() / len(pos)) if ok.any() else 0.0)
    return {"fpr": [round(float(f), 6) for f in grid], "tpr": [round(t, 6) for t in tpr]}
