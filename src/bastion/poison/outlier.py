"""A representation-space outlier score: distance to the k nearest neighbours of the
same label.

With a clean reference the neighbours are the reference samples of the class (a poison
labelled ``target`` lies far from every real ``target`` sample) and the threshold is the
score only ``fpr`` of the reference samples reach (each scored against the others).
Without one, the neighbours are the other samples of the class and the flag is a
robust z-score (distance from the median in units of the scaled median absolute
deviation) above ``z``; a dense mass of poisons then looks normal, so the reference is
the setting to use when a backdoor may be large.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from bastion.errors import ConfigError
from bastion.poison.curation import (
    Audit,
    Reference,
    check_features,
    check_fraction,
    reference_of,
    upper_quantile,
)


def knn_distance(queries: Tensor, points: Tensor, k: int, *, exclude_self: bool = False,
                 batch_size: int = 2048) -> Tensor:
    """Mean Euclidean distance of each query (Q, D) to its k nearest ``points`` (P, D)."""
    out = []
    skip = 1 if exclude_self else 0
    kk = min(k + skip, len(points))
    for i in range(0, len(queries), batch_size):
        d = torch.cdist(queries[i:i + batch_size], points)
        out.append(d.topk(kk, largest=False).values[:, skip:].mean(1))
    return torch.cat(out) if out else torch.empty(0)


@dataclass(frozen=True, kw_only=True)
class KnnOutlier:
    """Args:
    k: neighbours averaged over.
    fpr: with reference, the share of reference samples above the threshold.
    z: without reference, the robust z-score above which a sample is flagged.
    """

    name: ClassVar[str] = "knn"
    k: int = 10
    fpr: float = 0.01
    z: float = 3.5

    def audit(self, features: Tensor, labels: Tensor, *,
              reference: Reference | None = None) -> Audit:
        check_features(features, labels, reference)
        check_fraction("fpr", self.fpr)
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")
        scores = torch.zeros(len(labels))
        flagged = torch.zeros(len(labels), dtype=torch.bool)
        details: dict[str, Any] = {}
        for c in sorted(set(labels.tolist())):
            here = (labels == c).nonzero().squeeze(1)
            feats = features[here].float()
            ref = reference_of(reference, c, minimum=self.k + 2)
            if ref is not None:
                s = knn_distance(feats, ref, self.k)
                threshold = upper_quantile(knn_distance(ref, ref, self.k, exclude_self=True),
                                           self.fpr)
            elif len(feats) > 1:
                s = knn_distance(feats, feats, self.k, exclude_self=True)
                median = s.median()
                mad = 1.4826 * (s - median).abs().median()
                threshold = float(median + self.z * mad)
            else:
                continue
            scores[here] = s
            flagged[here] = s > threshold
            details[str(c)] = {"threshold": threshold,
                               "rule": "reference" if ref is not None else f"z>{self.z:g}"}
        return Audit(scores, flagged, details)
