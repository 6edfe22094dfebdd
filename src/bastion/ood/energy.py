"""Energy score (Liu et al., "Energy-based out-of-distribution detection", NeurIPS 2020).

Score: the free energy ``-T * logsumexp(logits / T)``. In-distribution inputs get low
energy; it is a smooth upper envelope of the negative maximum logit.
"""

from __future__ import annotations

import torch

from bastion.ood.base import LogitDetector


class Energy(LogitDetector):
    """Free energy of the logits.

    Args:
        temperature: T (> 0; the paper uses 1).
        layer: unused by the score; kept so every detector takes the same arguments.
        batch_size: inputs per forward pass.
    """

    name = "energy"

    def _score_outputs(self, logits: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        return -t * torch.logsumexp(logits / t, dim=1)
