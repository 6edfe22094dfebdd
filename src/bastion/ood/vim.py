"""ViM: virtual-logit matching (Wang et al., CVPR 2022).

The features z (N, D) are the input of the classifier's last linear layer W z + b.
``fit`` moves the origin to ``o = -pinv(W) b`` (where all logits vanish), finds the
``dim`` leading principal directions of the centred features, and keeps the remaining
D - dim directions as the residual space. An input's virtual logit is
``alpha * |residual part of (z - o)|``, with alpha matching the mean residual norm to the
mean maximum logit on the fitting data. Score: virtual logit minus
``logsumexp(logits)``: large residuals and low energy both mean "unfamiliar".
"""

from __future__ import annotations

import torch
from torch import nn

from bastion.errors import ConfigError
from bastion.ood.base import Detector
from bastion.ood.features import PENULTIMATE, last_linear


class ViM(Detector):
    """Residual-space norm, scaled, against the energy of the logits.

    Args:
        dim: dimension of the principal space (1 <= dim < D); None = D // 2.
        layer: must be "penultimate" (ViM needs the features the last linear layer reads).
        batch_size: inputs per forward pass.
    """

    name = "vim"

    def __init__(self, *, dim: int | None = None, layer: str = PENULTIMATE,
                 batch_size: int = 512) -> None:
        self.dim = dim
        self.layer = layer
        self.batch_size = batch_size

    def _check_params(self, n: int) -> None:
        if self.layer != PENULTIMATE:
            raise ConfigError("ViM reads the features of the last linear layer; use "
                              f"layer='{PENULTIMATE}', not {self.layer!r}")

    def _fit(self, model: nn.Module, logits: torch.Tensor, feats: torch.Tensor,
             y: torch.Tensor) -> None:
        _, head = last_linear(model)
        d_feat = feats.shape[1]
        dim = d_feat // 2 if self.dim is None else self.dim
        if not (isinstance(dim, int) and 1 <= dim < d_feat):
            raise ConfigError(f"dim must be an integer in [1, {d_feat - 1}] for {d_feat}-d "
                              f"features; got {self.dim!r}")
        weight = head.weight.detach().double()
        bias = (head.bias.detach().double() if head.bias is not None
                else torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device))
        origin = -(torch.linalg.pinv(weight) @ bias)
        centered = feats.double() - origin
        _, vectors = torch.linalg.eigh(centered.T @ centered / len(centered))
        # eigh sorts eigenvalues ascending: the first D - dim vectors span the residual
        residual = vectors[:, : d_feat - dim]
        norms = (centered @ residual).norm(dim=1)
        self.origin_ = origin.float()
        self.residual_ = residual.float()
        self.alpha_ = float(logits.amax(dim=1).mean() / norms.mean().clamp_min(1e-12))

    def _score_outputs(self, logits: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        virtual = self.alpha_ * ((feats - self.origin_) @ self.residual_).norm(dim=1)
        return virtual - torch.logsumexp(logits, dim=1)
