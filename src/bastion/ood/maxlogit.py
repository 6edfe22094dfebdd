"""Maximum logit (Hendrycks et al., "Scaling out-of-distribution detection", ICML 2022).

Score: ``-max_k logits_k``. Unlike the softmax it keeps the logits' scale, which carries
how familiar the input is. Needs no fitting statistics.
"""

from __future__ import annotations

import torch

from bastion.ood.base import Detector
from bastion.ood.features import PENULTIMATE


class MaxLogit(Detector):
    """Negative maximum logit.

    Args:
        layer: unused by the score; kept so every detector takes the same arguments.
        batch_size: inputs per forward pass.
    """

    name = "maxlogit"

    def __init__(self, *, layer: str = PENULTIMATE, batch_size: int = 512) -> None:
        self.layer = layer
        self.batch_size = batch_size

    def _score_outputs(self, logits: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        return -logits.amax(dim=1)
