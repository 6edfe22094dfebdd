"""Operating points of a trained layer: the threshold for a target false-positive rate.

Every threshold the training writes is chosen on held-out prompts only: S-Labs val
(at most :data:`TARGET_FPR` of its benign prompts flagged) and, for the layers the
bundled policy loads, ``benign-dev`` (benign prompts with attack words, at most
:data:`MAX_DEV_FLAGGED` flagged). Scores are probabilities in [0, 1], one per prompt.
"""

from __future__ import annotations

import numpy as np

#: the false-positive rate on S-Labs val a threshold is chosen for.
TARGET_FPR = 0.01
#: the largest share of ``benign-dev`` a trained layer's threshold may flag (the
#: over-refusal target, applied to the prompts set aside for choices).
MAX_DEV_FLAGGED = 0.03


def threshold_for_fpr(neg_scores: np.ndarray, target: float = TARGET_FPR) -> float:
    """The lowest threshold ``t`` with ``mean(neg_scores >= t) <= target``."""
    neg = np.sort(np.asarray(neg_scores, dtype=np.float64))[::-1]
    allowed = int(np.floor(target * len(neg)))
    if allowed >= len(neg):
        return 0.0
    return float(np.nextafter(neg[allowed], np.inf))


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, target: float = TARGET_FPR
               ) -> tuple[float, float, float]:
    """``(threshold, tpr, fpr)``: the lowest threshold flagging at most ``target`` of
    the benign scores (label 0), and the rates it gives."""
    neg, pos = scores[labels == 0], scores[labels == 1]
    t = threshold_for_fpr(neg, target)
    return t, float(np.mean(pos >= t)), float(np.mean(neg >= t))


def guarded_threshold(val_benign: np.ndarray, dev: np.ndarray) -> float:
    """The lowest threshold with FPR <= :data:`TARGET_FPR` on S-Labs val's benign scores
    *and* at most :data:`MAX_DEV_FLAGGED` of the ``benign-dev`` scores flagged: S-Labs'
    benign prompts are short everyday questions, so a threshold fitted to them alone can
    sit low enough to flag benign prompts that use attack words."""
    return max(threshold_for_fpr(val_benign, TARGET_FPR),
               threshold_for_fpr(dev, MAX_DEV_FLAGGED))


def guarded_rates(val: np.ndarray, labels: np.ndarray, dev: np.ndarray) -> dict[str, float]:
    """At :func:`guarded_threshold` of S-Labs val scores ``val`` (``labels`` 1 = attack)
    and ``benign-dev`` scores ``dev``: ``{"threshold", "tpr", "fpr", "dev_flagged"}``."""
    t = guarded_threshold(val[labels == 0], dev)
    return {"threshold": t, "tpr": float(np.mean(val[labels == 1] >= t)),
            "fpr": float(np.mean(val[labels == 0] >= t)),
            "dev_flagged": float(np.mean(dev >= t))}
