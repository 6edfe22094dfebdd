"""Deep nearest neighbours (Sun et al., "Out-of-distribution detection with deep nearest
neighbors", ICML 2022).

Features are scaled to unit length; ``fit`` keeps those of the in-distribution data (the
memory bank). Score: the Euclidean distance from an input's unit feature to its k-th
nearest neighbour in the bank. Non-parametric: no Gaussian assumption.

The k-th distance switches neighbour as the input moves, so its gradient is piecewise
and can mislead an attacker; :meth:`KNN.surrogate_score` (the mean distance to the k
nearest) is the smoother objective the adaptive evaluation also tries.
Cost: one (batch x bank) matrix product per batch.
"""

from __future__ import annotations

import torch
from torch import nn

from bastion.errors import ConfigError
from bastion.ood.base import Detector
from bastion.ood.features import PENULTIMATE, logits_and_features


def _unit(z: torch.Tensor) -> torch.Tensor:
    return z / z.norm(dim=1, keepdim=True).clamp_min(1e-12)


class KNN(Detector):
    """Distance to the k-th nearest in-distribution feature.

    Args:
        k: which neighbour (>= 1 and at most the number of fitting samples; 50 in the
            paper's CIFAR-10 setting).
        layer: feature layer ("penultimate" or a module name).
        batch_size: inputs per forward pass.
    """

    name = "knn"
    smooth = False

    def __init__(self, *, k: int = 50, layer: str = PENULTIMATE, batch_size: int = 512) -> None:
        self.k = k
        self.layer = layer
        self.batch_size = batch_size

    def _check_params(self, n: int) -> None:
        if not (isinstance(self.k, int) and 1 <= self.k <= n):
            raise ConfigError(f"k must be an integer in [1, {n}] (the fitting set size); "
                              f"got {self.k!r}")

    def _fit(self, model: nn.Module, logits: torch.Tensor, feats: torch.Tensor,
             y: torch.Tensor) -> None:
        self.bank_ = _unit(feats.float())

    def _nearest(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, k) distances to the k nearest bank features, nearest first."""
        similarity = _unit(feats) @ self.bank_.T
        top = similarity.topk(self.k, dim=1).values
        # for unit vectors |a - b|^2 = 2 - 2 a.b; a small floor keeps sqrt differentiable
        return (2 - 2 * top).clamp_min(1e-12).sqrt()

    def _score_outputs(self, logits: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        return self._nearest(feats)[:, -1]

    def surrogate_score(self, x: torch.Tensor) -> torch.Tensor:
        _, feats = logits_and_features(self.model_, x, self.layer)
        return self._nearest(feats).mean(dim=1)
