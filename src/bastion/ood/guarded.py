"""Deploy a model behind a detector: abstain on inputs the detector finds anomalous.

``Guarded(model, detector, threshold)`` returns logits (N, K + 1): the model's K logits
plus one reserved *abstain* column at index K (:attr:`Guarded.abstain_index`). For an
input whose score exceeds ``threshold`` the abstain logit is set one above the largest
class logit, so ``argmax`` is K; otherwise it is set one below the smallest, so the
prediction is the model's own. Choose the threshold on held-out in-distribution data with
:meth:`Guarded.calibrate` (a target true-positive rate: the fraction of clean inputs that
must still be answered).

Example:
    >>> det = make("energy").fit(model, train)
    >>> guarded = Guarded.calibrate(model, det, heldout_x, tpr=0.95)
    >>> guarded(x).argmax(1) == guarded.abstain_index   # abstentions
"""

from __future__ import annotations

import torch
from torch import nn

from bastion.errors import ConfigError
from bastion.ood.base import Detector
from bastion.ood.metrics import threshold_at_tpr


class Guarded(nn.Module):
    """A classifier that abstains (output index K) when ``detector`` scores above ``threshold``.

    Args:
        model: classifier (N, C, H, W) -> (N, K) logits; the one the detector was fitted on.
        detector: a fitted detector.
        threshold: scores strictly above it abstain.
    """

    def __init__(self, model: nn.Module, detector: Detector, threshold: float) -> None:
        super().__init__()
        self.model = model
        self.detector = detector
        self.threshold = float(threshold)

    @classmethod
    def calibrate(cls, model: nn.Module, detector: Detector, heldout: torch.Tensor,
                  tpr: float = 0.95) -> Guarded:
        """Guard ``model`` with the threshold that answers a fraction ``tpr`` of ``heldout``
        (clean in-distribution inputs not used to fit the detector)."""
        if getattr(detector, "model_", None) is not model:
            raise ConfigError("the detector was not fitted on this model; call "
                              "detector.fit(model, train_data) first")
        return cls(model, detector, threshold_at_tpr(detector.score(heldout), tpr))

    @property
    def abstain_index(self) -> int:
        """Index of the abstain output: the model's number of classes, K."""
        return self.detector.n_classes_

    def rejects(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) bool: would ``x`` be refused?"""
        return self.detector.score(x).to(x.device) > self.threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        rejected = self.rejects(x)
        top = logits.amax(dim=1, keepdim=True)
        low = logits.amin(dim=1, keepdim=True)
        abstain = torch.where(rejected.unsqueeze(1), top + 1.0, low - 1.0)
        return torch.cat([logits, abstain], dim=1)
