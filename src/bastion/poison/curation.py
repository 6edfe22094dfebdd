"""What every curation-time detector shares: its result, its input checks, and how a
trusted reference set is split by class.

A curation detector reads features (N, D) of a training set (usually the penultimate
features of a model trained on it, :func:`bastion.poison.features.penultimate`) with the
labels as given, and returns a suspicion score per sample (higher = more suspicious)
and the samples it flags. Given a small *reference* set known to be clean (features and
labels), a detector centres and calibrates on it: its flag threshold is the score that
only ``fpr`` of the reference samples exceed, which holds however large the poisoned
share of a class is. Without one, it falls back on the method's own rule (largest
scores, smallest cluster, robust z-score), which assumes poisons are a minority.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from bastion.errors import ConfigError, InputError

Reference = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class Audit:
    """One detector's verdict on a training set.

    Attributes:
        scores: (N,) float, higher = more suspicious (comparable within a class).
        flagged: (N,) bool, the samples the detector would remove.
        details: per-class notes (thresholds, cluster sizes), JSON-ready.
    """

    scores: Tensor
    flagged: Tensor
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class CurationDetector(Protocol):
    name: ClassVar[str]

    def audit(self, features: Tensor, labels: Tensor, *,
              reference: Reference | None = None) -> Audit: ...


def check_features(features: Tensor, labels: Tensor, reference: Reference | None) -> None:
    """Raise InputError unless features are (N, D) finite with (N,) labels."""
    if features.dim() != 2 or labels.shape != (features.shape[0],):
        raise InputError(f"features must be (N, D) with (N,) labels, got "
                         f"{tuple(features.shape)} and {tuple(labels.shape)}")
    if not bool(torch.isfinite(features).all()):
        raise InputError("features hold NaN or infinite values; check the model and data")
    if reference is not None:
        ref_x, ref_y = reference
        if ref_x.dim() != 2 or ref_x.shape[1] != features.shape[1] or \
                ref_y.shape != (ref_x.shape[0],):
            raise InputError(f"reference features must be (M, {features.shape[1]}) with "
                             f"(M,) labels, got {tuple(ref_x.shape)}, {tuple(ref_y.shape)}")


def check_fraction(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise ConfigError(f"{name} must be a fraction in (0, 1), got {value}")


def reference_of(reference: Reference | None, label: int, minimum: int = 5) -> Tensor | None:
    """Reference features (M_c, D) of class ``label``; None when there are too few."""
    if reference is None:
        return None
    ref = reference[0][reference[1] == label]
    return ref.float() if len(ref) >= minimum else None


def upper_quantile(values: Tensor, fpr: float) -> float:
    """The threshold that a share ``fpr`` of ``values`` exceeds."""
    return float(torch.quantile(values.double(), 1 - fpr))


def top_share(scores: Tensor, share: float) -> Tensor:
    """(n,) bool: the ``ceil(share * n)`` largest scores."""
    k = min(len(scores), int(-(-share * len(scores) // 1)))
    out = torch.zeros(len(scores), dtype=torch.bool)
    out[scores.topk(k).indices] = True
    return out
