"""Mahalanobis distance (Lee et al., NeurIPS 2018) and its relative form (Ren et al. 2021).

``fit`` models the features of each class c as a Gaussian N(mu_c, S) with one covariance
S shared by all classes (the within-class scatter / N, plus ``ridge`` times its mean
variance on the diagonal so that it is invertible). Score: the smallest squared
Mahalanobis distance ``min_c (z - mu_c)^T S^-1 (z - mu_c)``.

The relative form subtracts the squared distance to one background Gaussian N(mu_0, S_0)
fitted to all features regardless of class, so that directions in which every input
varies (and which say nothing about familiarity) count less.

Only the feature part of Lee et al. is here: no input pre-processing, one layer.
"""

from __future__ import annotations

import torch
from torch import nn

from bastion.errors import ConfigError, InputError
from bastion.ood.base import Detector
from bastion.ood.features import PENULTIMATE


def _precision(centered: torch.Tensor, ridge: float) -> torch.Tensor:
    """Inverse of the covariance of already centred rows (N, D), regularised; (D, D)."""
    z = centered.double()
    cov = z.T @ z / len(z)
    scale = float(cov.diagonal().mean().clamp_min(1e-12))
    cov = cov + ridge * scale * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    return torch.linalg.inv(cov).float()


def _squared_distances(z: torch.Tensor, means: torch.Tensor,
                       precision: torch.Tensor) -> torch.Tensor:
    """(N, C) squared Mahalanobis distances of z (N, D) to means (C, D), float32.

    The expansion |z|^2 - 2 z.m + |m|^2 cancels heavily when the features sit far from 0
    relative to their spread, so it runs in float64: in float32 the rounding of the
    matrix products (which depends on the batch) showed in the scores."""
    z, means, precision = z.double(), means.double(), precision.double()
    zp = z @ precision
    quad_z = (zp * z).sum(dim=1, keepdim=True)
    cross = zp @ means.T
    quad_m = ((means @ precision) * means).sum(dim=1)
    return (quad_z - 2 * cross + quad_m).clamp_min(0.0).float()


class Mahalanobis(Detector):
    """Smallest class-conditional Mahalanobis distance of the features.

    Args:
        layer: feature layer ("penultimate" or a module name).
        ridge: added to the covariance diagonal, relative to its mean variance (>= 0).
        batch_size: inputs per forward pass.
    """

    name = "mahalanobis"
    needs_labels = True

    def __init__(self, *, layer: str = PENULTIMATE, ridge: float = 1e-6,
                 batch_size: int = 512) -> None:
        self.layer = layer
        self.ridge = ridge
        self.batch_size = batch_size

    def _check_params(self, n: int) -> None:
        if not self.ridge >= 0:
            raise ConfigError(f"ridge must be >= 0, got {self.ridge}")

    def _fit(self, model: nn.Module, logits: torch.Tensor, feats: torch.Tensor,
             y: torch.Tensor) -> None:
        classes = torch.unique(y)
        if len(classes) < 2:
            raise InputError("Mahalanobis needs fitting data from at least 2 classes; got "
                             f"{len(classes)}")
        means = torch.stack([feats[y == c].mean(dim=0) for c in classes])
        centered = feats - means[torch.searchsorted(classes, y)]
        self.means_ = means
        self.precision_ = _precision(centered, self.ridge)

    def _score_outputs(self, logits: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        return _squared_distances(feats, self.means_, self.precision_).amin(dim=1)


class RelativeMahalanobis(Mahalanobis):
    """Mahalanobis distance minus the distance under one class-agnostic Gaussian.

    Args: as :class:`Mahalanobis`.
    """

    name = "rmd"

    def _fit(self, model: nn.Module, logits: torch.Tensor, feats: torch.Tensor,
             y: torch.Tensor) -> None:
        super()._fit(model, logits, feats, y)
        self.background_mean_ = feats.mean(dim=0, keepdim=True)
        self.background_precision_ = _precision(feats - self.background_mean_, self.ridge)

    def _score_outputs(self, logits: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        per_class = _squared_distances(feats, self.means_, self.precision_).amin(dim=1)
        background = _squared_distances(feats, self.background_mean_,
                                        self.background_precision_)[:, 0]
        return per_class - background
