"""ODIN (Liang et al., ICLR 2018): temperature scaling plus a small input step.

Each input first moves one signed-gradient step of size ``eps`` towards a more confident
prediction of its own predicted class at temperature T; the score is the negative maximum
softmax probability of the moved input at temperature T. In-distribution inputs gain more
confidence from the step than anomalous ones. Costs one extra forward and backward pass.

Adaptive attacks differentiate the score straight through the input step (the step is
treated as a constant offset, BPDA-style), since its sign() has zero gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bastion.errors import ConfigError
from bastion.ood.base import Detector
from bastion.ood.features import PENULTIMATE


class ODIN(Detector):
    """Input pre-processing and temperature-scaled softmax.

    Args:
        temperature: T (> 0; the paper's default 1000).
        eps: size of the input step, in input units (>= 0; 0 turns the step off).
        layer: unused by the score; kept so every detector takes the same arguments.
        batch_size: inputs per forward pass.
    """

    name = "odin"

    def __init__(self, *, temperature: float = 1000.0, eps: float = 0.0014,
                 layer: str = PENULTIMATE, batch_size: int = 512) -> None:
        self.temperature = temperature
        self.eps = eps
        self.layer = layer
        self.batch_size = batch_size

    def _check_params(self, n: int) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if not self.eps >= 0:
            raise ConfigError(f"eps must be >= 0, got {self.eps}")

    def _step(self, x: torch.Tensor) -> torch.Tensor:
        """The offset (N, C, H, W) that raises the temperature-scaled top probability."""
        if self.eps == 0:
            return torch.zeros_like(x)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            logits = self.model_(xg) / self.temperature
            loss = F.cross_entropy(logits, logits.argmax(dim=1), reduction="sum")
            (grad,) = torch.autograd.grad(loss, xg)
        return -self.eps * grad.sign()

    def differentiable_score(self, x: torch.Tensor) -> torch.Tensor:
        moved = x + self._step(x).detach()
        logits = self.model_(moved)
        return -torch.softmax(logits / self.temperature, dim=1).amax(dim=1)
