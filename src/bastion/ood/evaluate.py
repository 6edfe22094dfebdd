"""The job behind ``bastion ood``: every detector on every OOD set, clean and attacked.

Work is split into units, one per detector (clean metrics on every set) and one per
(detector, eps) (the adaptive attack on the first OOD set), each saved to an optional
resume file as it finishes (:class:`bastion.common.state.StateFile`), so an
interrupted run continues where it stopped and a resumed run gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bastion.errors import ConfigError, InputError
from bastion.ood.adaptive import attack_all
from bastion.ood.base import FitData, split_fit_data
from bastion.ood.metrics import detection, threshold_at_tpr, wilson_interval
from bastion.ood.registry import make
from bastion.threat import ThreatModel


def check_sets(x_id: torch.Tensor, ood_sets: Mapping[str, torch.Tensor]) -> None:
    """Raise InputError unless every OOD set has the ID images' per-sample shape."""
    if not ood_sets:
        raise ConfigError("give at least one OOD set")
    for name, x in ood_sets.items():
        if x.dim() != x_id.dim() or tuple(x.shape[1:]) != tuple(x_id.shape[1:]):
            raise InputError(
                f"OOD set {name!r} has images of shape {tuple(x.shape[1:])} but the ID images "
                f"are {tuple(x_id.shape[1:])} (channels, height, width); convert it with "
                "bastion.ood.to_shape(x, shape)"
            )


def _clean_unit(det: Any, x_id: torch.Tensor,
                ood_sets: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    s_id = det.score(x_id)
    return {"threshold": threshold_at_tpr(s_id),
            "sets": {name: detection(s_id, det.score(x)).to_dict()
                     for name, x in ood_sets.items()}}


def _adaptive_unit(det: Any, x_id: torch.Tensor, x_ood: torch.Tensor, threshold: float,
                   threat: ThreatModel, steps: int, seed: int) -> dict[str, Any]:
    up = attack_all(det, x_id, threat, direction="up", steps=steps, seed=seed)
    down = attack_all(det, x_ood, threat, direction="down", steps=steps, seed=seed + 1)
    adv = detection(up.scores, down.scores)
    accepted = int((down.scores <= threshold).sum())
    rejected = int((up.scores > threshold).sum())
    return {"eps": threat.eps, "norm": threat.norm, "auroc": adv.auroc,
            "auroc_ci": list(adv.auroc_ci), "fpr95": accepted / len(x_ood),
            "fpr95_ci": list(wilson_interval(accepted, len(x_ood))),
            "id_rejected": rejected / len(x_id),
            "id_rejected_ci": list(wilson_interval(rejected, len(x_id))),
            "masking_suspected": up.masking_suspected or down.masking_suspected,
            "n_id": len(x_id), "n_ood": len(x_ood), "steps": steps}


def evaluate_ood(model: nn.Module, fit_data: FitData, x_id: torch.Tensor,
                 ood_sets: Mapping[str, torch.Tensor], *, detectors: Sequence[str],
                 eps: Sequence[float] = (), norm: str = "Linf", n_adv: int = 200,
                 steps: int = 20, seed: int = 0, state: Path | None = None,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Fit each detector on ``fit_data`` and measure it on ``x_id`` vs each OOD set.

    Args:
        model: classifier in eval mode, (N, C, H, W) in [0, 1] -> logits.
        fit_data: in-distribution training data (see :meth:`Detector.fit`).
        x_id: (N, C, H, W) held-out ID images; ood_sets: name -> (M, C, H, W) images.
        detectors: registry names.
        eps: radii of the adaptive attack (empty: clean only); the attack uses the first
            ``n_adv`` images of ``x_id`` and of the first OOD set.
    Returns:
        ``{"detectors": {name: {"threshold", "sets": {set: metrics}, "adaptive": {set: [row
        per eps]}}}, "settings": {...}}``; rates in [0, 1].
    """
    from bastion.common.state import StateFile, fingerprint, model_digest, tensor_digest

    check_sets(x_id, ood_sets)
    threats = [ThreatModel(norm, e) for e in eps]
    for name in detectors:
        make(name)  # unknown names fail before any work
    settings = {"detectors": list(detectors), "sets": list(ood_sets), "eps": list(eps),
                "norm": norm, "n_adv": n_adv, "steps": steps, "seed": seed,
                "n_id": len(x_id), "n_fit": len(split_fit_data(fit_data)[0])}
    fp = fingerprint({**settings, "model": model_digest(model),
                      "data": tensor_digest(x_id, *ood_sets.values(), split_fit_data(fit_data)[0])})
    saved = StateFile(state, fp, settings="model, data, detectors, sets, eps or seed")
    attacked = next(iter(ood_sets))
    out: dict[str, Any] = {}
    for name in _progress(detectors, log):
        det = make(name).fit(model, fit_data)
        clean = saved.done(name) or _clean_unit(det, x_id, ood_sets)
        saved.save(name, clean)
        rows = []
        for threat in threats:
            key = f"{name}/{threat.eps:g}"
            row = saved.done(key) or _adaptive_unit(
                det, x_id[:n_adv], ood_sets[attacked][:n_adv], clean["threshold"], threat,
                steps, seed)
            saved.save(key, row)
            rows.append(row)
        out[name] = {**clean, "adaptive": {attacked: rows} if rows else {}}
    return {"detectors": out, "settings": settings}


def _progress(names: Sequence[str], log: Callable[[str], None] | None) -> Iterable[str]:
    for i, name in enumerate(names):
        if log is not None:
            log(f"[{i + 1}/{len(names)}] {name}")
        yield name
