"""Spectral signatures (Tran, Li and Madry, 2018).

In the features of one class, poisons shift the class along a direction that the top
singular vector of the centred features picks up; a sample's score is its squared
projection on that vector. Without a reference, the class is centred on its own mean
and the ``remove_share`` largest scores are flagged (the paper removes 1.5 times the
bound on the poisoned share). With a clean reference, the class is centred on the
reference's mean (so a class that is half poison still has a direction to find) and the
threshold is the score only ``fpr`` of the reference exceeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from bastion.poison.curation import (
    Audit,
    Reference,
    check_features,
    check_fraction,
    reference_of,
    top_share,
    upper_quantile,
)


@dataclass(frozen=True, kw_only=True)
class SpectralSignature:
    """Args:
    remove_share: without reference, the share of each class flagged, in (0, 1).
    fpr: with reference, the share of clean reference samples above the threshold.
    """

    name: ClassVar[str] = "spectral"
    remove_share: float = 0.15
    fpr: float = 0.01

    def audit(self, features: Tensor, labels: Tensor, *,
              reference: Reference | None = None) -> Audit:
        check_features(features, labels, reference)
        check_fraction("remove_share", self.remove_share)
        check_fraction("fpr", self.fpr)
        scores = torch.zeros(len(labels))
        flagged = torch.zeros(len(labels), dtype=torch.bool)
        details: dict[str, Any] = {}
        for c in sorted(set(labels.tolist())):
            here = (labels == c).nonzero().squeeze(1)
            feats = features[here].float()
            ref = reference_of(reference, c)
            centre = ref.mean(0) if ref is not None else feats.mean(0)
            direction = torch.linalg.svd(feats - centre, full_matrices=False).Vh[0]
            s = ((feats - centre) @ direction) ** 2
            scores[here] = s
            if ref is not None:
                threshold = upper_quantile(((ref - centre) @ direction) ** 2, self.fpr)
                flagged[here] = s > threshold
                details[str(c)] = {"threshold": threshold, "rule": "reference"}
            else:
                flagged[here] = top_share(s, self.remove_share)
                details[str(c)] = {"rule": f"top {self.remove_share:.0%}"}
        return Audit(scores, flagged, details)
