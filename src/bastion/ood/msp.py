"""Maximum softmax probability (Hendrycks & Gimpel, ICLR 2017).

Score: ``-max_k softmax(logits / temperature)_k``, in [-1, -1/K]. A confident
prediction gives a low (in-distribution) score. Needs no fitting statistics.

Example:
    >>> det = MSP().fit(model, train)
    >>> det.score(x_ood)          # (N,)
"""

from __future__ import annotations

import torch

from bastion.errors import ConfigError
from bastion.ood.base import Detector
from bastion.ood.features import PENULTIMATE


class MSP(Detector):
    """Negative maximum softmax probability.

    Args:
        temperature: logits are divided by it before the softmax (> 0; 1 = the paper).
        layer: unused by the score; kept so every detector takes the same arguments.
        batch_size: inputs per forward pass.
    """

    name = "msp"

    def __init__(self, *, temperature: float = 1.0, layer: str = PENULTIMATE,
                 batch_size: int = 512) -> None:
        self.temperature = temperature
        self.layer = layer
        self.batch_size = batch_size

    def _check_params(self, n: int) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")

    def _score_outputs(self, logits: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        return -torch.softmax(logits / self.temperature, dim=1).amax(dim=1)
