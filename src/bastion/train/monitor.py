"""Validation each epoch, and the two safeguards built on it.

- Robust overfitting (Rice, Wong & Kolter, ICML 2020): robust test accuracy peaks soon
  after a learning-rate decay and then falls while training robustness keeps rising.
  We keep the checkpoint with the best *robust* validation accuracy (clean accuracy for
  standard training), not the last one.
- Catastrophic overfitting (Wong et al., 2020): single-step training (FGSM) can
  suddenly lose all PGD robustness within an epoch while clean accuracy stays high. We
  flag an epoch whose robust validation accuracy fell more than ``co_drop`` below its
  best while clean accuracy still exceeds robust accuracy by more than ``co_drop``, and
  stop early with a warning; the best checkpoint from before the collapse is kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from bastion.attacks.pgd import PGD
from bastion.evaluation.runner import evaluate
from bastion.threat import ThreatModel


def validate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *,
             steps: int, seed: int) -> dict[str, float]:
    """Clean and PGD-``steps`` robust accuracy (fractions) on ``x`` (N, ...), ``y`` (N,).

    Runs :func:`bastion.evaluate` in eval mode and restores the model's mode after.
    """
    was = model.training
    model.eval()
    try:
        result = evaluate(model, (x, y), threat, {f"pgd-{steps}": PGD(steps=steps)},
                          seed=seed, batch_size=500)
    finally:
        model.train(was)
    return {"clean_accuracy": result.clean_accuracy, "robust_accuracy": result.robust_accuracy}


@dataclass
class Monitor:
    """Best scores so far and the decision taken after each validation.

    Attributes:
        by: ``robust_accuracy`` or ``clean_accuracy``: what "best" means.
        co_drop: catastrophic-overfitting threshold (fraction), None for off.
    """

    by: str
    co_drop: float | None
    best: float = -1.0
    best_epoch: int = -1
    best_robust: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)

    def update(self, epoch: int, scores: dict[str, float]) -> tuple[bool, bool]:
        """Record epoch ``epoch``'s scores; return (new best?, catastrophic overfitting?)."""
        clean, robust = scores["clean_accuracy"], scores["robust_accuracy"]
        collapsed = (self.co_drop is not None and self.best_robust >= 0
                     and self.best_robust - robust > self.co_drop
                     and clean - robust > self.co_drop)
        improved = scores[self.by] > self.best
        if improved:
            self.best, self.best_epoch = scores[self.by], epoch
        self.best_robust = max(self.best_robust, robust)
        self.history.append({"epoch": epoch, **scores, "catastrophic_overfitting": collapsed})
        return improved, collapsed

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Monitor:
        return cls(**state)
