"""Activation clustering (Chen et al., 2018: "Detecting backdoor attacks on deep neural
networks by activation clustering").

The features of each class are projected on their top ``components`` principal axes
(the paper uses ICA; PCA keeps the result deterministic) and split in two by k-means.
A class with a backdoor splits into its clean samples and its poisons. Which cluster is
poisoned: without a reference, the smaller one when its share is below
``size_threshold`` (the paper's relative-size rule); with a clean reference, the one
that receives less than ``reference_share`` of the class's reference samples (clean
samples land in the clean cluster, whatever its size). A sample's score is how much
closer it lies to the other cluster's centre than to the clean one's.
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
)


@dataclass(frozen=True, kw_only=True)
class ActivationClustering:
    """Args:
    components: principal axes kept before clustering.
    size_threshold: without reference, a cluster smaller than this share is poisoned.
    reference_share: with reference, a cluster holding less than this share of the
        class's reference samples is poisoned.
    seed: k-means initialisation seed.
    """

    name: ClassVar[str] = "activation-clustering"
    components: int = 10
    size_threshold: float = 0.35
    reference_share: float = 0.05
    seed: int = 0

    def audit(self, features: Tensor, labels: Tensor, *,
              reference: Reference | None = None) -> Audit:
        from sklearn.cluster import KMeans

        check_features(features, labels, reference)
        check_fraction("size_threshold", self.size_threshold)
        check_fraction("reference_share", self.reference_share)
        scores = torch.zeros(len(labels))
        flagged = torch.zeros(len(labels), dtype=torch.bool)
        details: dict[str, Any] = {}
        for c in sorted(set(labels.tolist())):
            here = (labels == c).nonzero().squeeze(1)
            feats = features[here].double()
            if len(feats) < 4:
                continue
            mean = feats.mean(0)
            axes = torch.linalg.svd(feats - mean, full_matrices=False).Vh[:self.components]
            low = ((feats - mean) @ axes.T).numpy()
            km = KMeans(n_clusters=2, n_init=10, random_state=self.seed).fit(low)
            member = torch.from_numpy(km.labels_).long()
            shares = [float((member == k).double().mean()) for k in (0, 1)]
            ref = reference_of(reference, c)
            if ref is not None:
                near = km.predict(((ref.double() - mean) @ axes.T).numpy())
                ref_shares = [float((near == k).mean()) for k in (0, 1)]
                clean = int(ref_shares[1] > ref_shares[0])
                poisoned = ref_shares[1 - clean] < self.reference_share
                details[str(c)] = {"shares": shares, "reference_shares": ref_shares}
            else:
                clean = int(shares[1] > shares[0])
                poisoned = shares[1 - clean] < self.size_threshold
                details[str(c)] = {"shares": shares}
            centres = torch.from_numpy(km.cluster_centers_)
            dist = torch.cdist(torch.from_numpy(low), centres)
            scores[here] = (dist[:, clean] - dist[:, 1 - clean]).float()
            if poisoned:
                flagged[here] = member == 1 - clean
            details[str(c)]["poisoned_cluster"] = poisoned
        return Audit(scores, flagged, details)
