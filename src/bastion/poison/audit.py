"""Curation audit of a training set: every registered detector over one model's features.

:func:`audit` extracts penultimate features of the training images (and of a trusted
reference set, when given), runs each detector, and reports per-sample scores, flagged
indices and, when the poisoned samples are known (a planted poison), TPR and FPR per
class with 95% Wilson intervals. :func:`cleaned` drops one detector's flagged samples.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn

from bastion.errors import ConfigError
from bastion.poison.base import check_data
from bastion.poison.clustering import ActivationClustering
from bastion.poison.curation import CurationDetector
from bastion.poison.features import penultimate
from bastion.poison.metrics import detection_rates
from bastion.poison.outlier import KnnOutlier
from bastion.poison.spectral import SpectralSignature

DETECTORS: dict[str, type[Any]] = {cls.name: cls for cls in (SpectralSignature,
                                                             ActivationClustering,
                                                             KnnOutlier)}


def detector(name: str) -> CurationDetector:
    if name not in DETECTORS:
        raise ConfigError(f"unknown curation detector {name!r}; choose from "
                          f"{', '.join(DETECTORS)}")
    found: CurationDetector = DETECTORS[name]()
    return found


def audit(model: nn.Module, x: Tensor, y: Tensor, *, detectors: list[str] | None = None,
          reference: tuple[Tensor, Tensor] | None = None,
          poisoned: Tensor | None = None) -> dict[str, Any]:
    """Run curation detectors over a training set.

    Args:
        model: a classifier trained on (x, y); its penultimate features are audited.
        x, y: training images (N, C, H, W) in [0, 1] and labels (N,) as given.
        detectors: names from :data:`DETECTORS` (default: all).
        reference: trusted clean (images (M, C, H, W), labels (M,)), or None.
        poisoned: (N,) bool ground truth, when known.

    Returns:
        ``{"n", "reference_n", "detectors": {name: {"flagged", "n_flagged", "scores",
        "details", "seconds", ["rates"]}}}``; ``flagged`` is a list of indices, ``scores``
        a (N,) tensor (drop it before writing JSON).
    """
    check_data(x, y)
    chosen = [detector(n) for n in (detectors or list(DETECTORS))]
    if poisoned is not None and poisoned.shape != y.shape:
        raise ConfigError(f"ground truth must be (N,) bool for {len(y)} samples")
    feats = penultimate(model, x)
    ref = None
    if reference is not None:
        check_data(*reference)
        ref = (penultimate(model, reference[0]), reference[1])
    out: dict[str, Any] = {"n": len(y), "reference_n": 0 if ref is None else len(ref[1]),
                           "detectors": {}}
    for det in chosen:
        began = time.perf_counter()
        found = det.audit(feats, y, reference=ref)
        entry: dict[str, Any] = {
            "flagged": found.flagged.nonzero().flatten().tolist(),
            "n_flagged": int(found.flagged.sum()), "scores": found.scores,
            "details": found.details, "seconds": round(time.perf_counter() - began, 2)}
        if poisoned is not None:
            entry["rates"] = detection_rates(found.flagged, poisoned, y)
        out["detectors"][det.name] = entry
    return out


def cleaned(x: Tensor, y: Tensor, flagged: list[int]) -> tuple[Tensor, Tensor, Tensor]:
    """``(x, y, kept)`` without the ``flagged`` indices; ``kept`` (M,) are the indices left."""
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[torch.tensor(flagged, dtype=torch.long)] = False
    kept = keep.nonzero().flatten()
    return x[kept], y[kept], kept
