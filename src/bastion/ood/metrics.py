"""Detection metrics, in one place. In-distribution (ID) vs out-of-distribution (OOD)
scores, higher = more anomalous; OOD is the positive class unless said otherwise.

- ``auroc``: P(OOD score > ID score) + P(tie) / 2, with a Hanley-McNeil 95% interval.
- ``aupr``: average precision with OOD as positive (AUPR-Out).
- ``fpr_at_tpr``: with the threshold that accepts a fraction ``tpr`` of the ID scores
  (95% by default), the fraction of OOD inputs also accepted, i.e. missed; with a Wilson
  95% interval over the OOD inputs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from bastion.common import intervals
from bastion.errors import InputError

_Z95 = 1.959963984540054


def _arrays(id_scores: torch.Tensor | np.ndarray,
            ood_scores: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(id_scores, dtype=np.float64).reshape(-1)
    b = np.asarray(ood_scores, dtype=np.float64).reshape(-1)
    if a.size == 0 or b.size == 0:
        raise InputError("metrics need at least one ID and one OOD score")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise InputError("scores contain NaN or infinite values; check the detector's inputs")
    return a, b


def wilson_interval(k: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval (two-sided 95%) of the proportion k / n, n >= 1."""
    interval = intervals.wilson_interval(k, n, z)
    if interval is None:
        raise InputError(f"need n >= 1 for a proportion, got k={k}, n={n}")
    return interval


def auroc(id_scores: torch.Tensor | np.ndarray, ood_scores: torch.Tensor | np.ndarray) -> float:
    """Area under the ROC curve by ranks (Mann-Whitney U), ties counted half."""
    a, b = _arrays(id_scores, ood_scores)
    s = np.concatenate([a, b])
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = mean_rank[inverse]
    u = ranks[a.size:].sum() - b.size * (b.size + 1) / 2.0
    return float(u / (a.size * b.size))


def auroc_interval(value: float, n_id: int, n_ood: int) -> tuple[float, float]:
    """Hanley & McNeil (1982) normal 95% interval of an AUROC, clipped to [0, 1]."""
    q1, q2 = value / (2 - value), 2 * value * value / (1 + value)
    var = (value * (1 - value) + (n_ood - 1) * (q1 - value ** 2)
           + (n_id - 1) * (q2 - value ** 2)) / (n_id * n_ood)
    half = _Z95 * math.sqrt(max(var, 0.0))
    return max(0.0, value - half), min(1.0, value + half)


def aupr(id_scores: torch.Tensor | np.ndarray, ood_scores: torch.Tensor | np.ndarray) -> float:
    """Average precision with OOD as the positive class (step-wise area, as scikit-learn)."""
    a, b = _arrays(id_scores, ood_scores)
    s = np.concatenate([a, b])
    positive = np.concatenate([np.zeros(a.size), np.ones(b.size)])
    order = np.argsort(-s, kind="mergesort")
    s, positive = s[order], positive[order]
    last = np.r_[s[1:] != s[:-1], True]  # last index of each run of tied scores
    tps = np.cumsum(positive)[last]
    fps = np.cumsum(1 - positive)[last]
    precision = tps / (tps + fps)
    recall_gain = np.diff(np.r_[0.0, tps]) / b.size
    return float((recall_gain * precision).sum())


def threshold_at_tpr(id_scores: torch.Tensor | np.ndarray, tpr: float = 0.95) -> float:
    """The smallest threshold t with at least ``tpr`` of the ID scores <= t (accepted)."""
    if not 0 < tpr <= 1:
        raise InputError(f"tpr must be in (0, 1], got {tpr}")
    a = np.sort(np.asarray(id_scores, dtype=np.float64).reshape(-1))
    if a.size == 0:
        raise InputError("need at least one in-distribution score to choose a threshold")
    return float(a[max(math.ceil(tpr * a.size) - 1, 0)])


def fpr_at_tpr(id_scores: torch.Tensor | np.ndarray, ood_scores: torch.Tensor | np.ndarray,
               tpr: float = 0.95) -> tuple[float, int]:
    """(fraction, count) of OOD scores <= the ID threshold at ``tpr``: OOD inputs accepted."""
    a, b = _arrays(id_scores, ood_scores)
    accepted = int((b <= threshold_at_tpr(a, tpr)).sum())
    return accepted / b.size, accepted


@dataclass(frozen=True)
class Detection:
    """How well one score separates one ID set from one OOD set (rates in [0, 1])."""

    auroc: float
    auroc_ci: tuple[float, float]
    aupr: float
    fpr95: float
    fpr95_ci: tuple[float, float]
    n_id: int
    n_ood: int

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["auroc_ci"], d["fpr95_ci"] = list(self.auroc_ci), list(self.fpr95_ci)
        return d


def detection(id_scores: torch.Tensor | np.ndarray,
              ood_scores: torch.Tensor | np.ndarray, tpr: float = 0.95) -> Detection:
    """All metrics of one (ID, OOD) pair of score arrays."""
    a, b = _arrays(id_scores, ood_scores)
    area = auroc(a, b)
    fpr, accepted = fpr_at_tpr(a, b, tpr)
    return Detection(auroc=area, auroc_ci=auroc_interval(area, a.size, b.size),
                     aupr=aupr(a, b), fpr95=fpr, fpr95_ci=wilson_interval(accepted, b.size),
                     n_id=int(a.size), n_ood=int(b.size))
