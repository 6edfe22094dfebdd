"""Maximum softmax probability (Hendrycks & Gimpel, ICLR 2017).

Score: ``-max_k softmax(logits / temperature)_k``, in [-1, -1/K]. A confident
prediction gives a low (in-distribution) score. Needs no fitting statistics.

Example:
    >>> det = MSP().fit(model, train)
    >>> det.score(x_ood)          # (N,)
"""

from __future__ import annotations

import torch

from bastion.ood.base import LogitDetector


class MSP(LogitDetector):
    """Negative maximum softmax probability.

    Args:
        temperature: logits are divided by it before the softmax (> 0; 1 = the paper).
        layer: unused by the score; kept so every detector takes the same arguments.
        batch_size: inputs per forward pass.
    """

    name = "msp"

    def _score_outputs(self, logits: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        return -torch.softmax(logits / self.temperature, dim=1).amax(dim=1)
