"""Energy score (Liu et al., "Energy-based out-of-distribution detection", NeurIPS 2020).

Score: the free energy ``-T * logsumexp(logits / T)``. In-distribution inputs get low
energy; it is a smooth upper envelope of the negative maximum logit.
"""

from __future__ import annotations

import torch

from bastion.errors import ConfigError
from bastion.ood.base import Detector
from bastion.ood.features import PENULTIMATE


class Energy(Detector):
    """Free energy of the logits.

    Args:
        temperature: T (> 0; the paper uses 1).
        layer: unused by the score; kept so every detector takes the same arguments.
        batch_size: inputs per forward pass.
    """

    name = "energy"

    def __init__(self, *, temperature: float = 1.0, layer: str = PENULTIMATE,
                 batch_size: int = 512) -> None:
        self.temperature = temperature
        self.layer = layer
        self.batch_size = batch_size

    def _check_params(self, n: int) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")

    def _score_outputs(self, logits: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        return -t * torch.logsumexp(logits / t, dim=1)
