"""Membership inference at low false-positive rates: the global loss threshold
(Yeom et al. 2018) and offline LiRA (Carlini et al. 2022) with shadow models.

    from bastion.privacy import membership_audit
    result = membership_audit(x, y, shadows=4, steps=800)   # x: (N, 1, 28, 28) pool
    result.attacks["lira-offline"]["tpr_at_fpr"]

A target model trains on a random half of the pool (its members); each shadow model
trains on another random half. Offline LiRA scores a sample by how far the target's
logit-scaled confidence ``log(p_y / (1 - p_y))`` lies above the Gaussian fitted to the
shadows that did NOT train on it (one pooled variance, as the paper advises for few
shadows). Each shadow is one unit of the optional resume file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from bastion.common.state import StateFile, fingerprint, tensor_digest
from bastion.errors import InputError
from bastion.privacy._fit import fit, predict
from bastion.privacy.roc import auroc, tpr_at_fpr

FPRS = (0.001, 0.01)


@dataclass
class MembershipResult:
    """``attacks[name]`` = ``{"auroc", "auroc_ci", "tpr_at_fpr": [...]}`` (see
    :mod:`bastion.privacy.roc`); ``target_train_accuracy`` / ``target_test_accuracy``
    show how much the target overfits."""

    attacks: dict[str, dict[str, Any]] = field(default_factory=dict)
    target_train_accuracy: float = 0.0
    target_test_accuracy: float = 0.0
    pool_size: int = 0
    shadows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"pool_size": self.pool_size, "shadows": self.shadows,
                "target_train_accuracy": self.target_train_accuracy,
                "target_test_accuracy": self.target_test_accuracy, "attacks": self.attacks}


def confidence_logit(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``log(p_y) - log(1 - p_y)`` per sample, computed stably from (N, K) logits: (N,)."""
    logp = F.log_softmax(logits.double(), dim=1)
    true = logp.gather(1, y[:, None])[:, 0]
    rest = logp.scatter(1, y[:, None], float("-inf")).logsumexp(1)
    return (true - rest).float()


def _halves(n: int, count: int, seed: int) -> torch.Tensor:
    """(count, n) bool masks, each selecting a random half of n samples."""
    gen = torch.Generator().manual_seed(seed)
    masks = torch.zeros(count, n, dtype=torch.bool)
    for i in range(count):
        masks[i, torch.randperm(n, generator=gen)[: n // 2]] = True
    return masks


def _summary(scores: torch.Tensor, members: torch.Tensor) -> dict[str, Any]:
    return {**auroc(scores, members),
            "tpr_at_fpr": [tpr_at_fpr(scores, members, a) for a in FPRS]}


def lira_offline(target_phi: torch.Tensor, shadow_phi: torch.Tensor,
                 shadow_in: torch.Tensor) -> torch.Tensor:
    """Offline LiRA scores (N,): z-score of ``target_phi`` (N,) against the OUT shadows'
    mean per sample; ``shadow_phi`` (S, N), ``shadow_in`` (S, N) bool."""
    out = (~shadow_in).float()
    count = out.sum(0).clamp_min(1)
    mean = (shadow_phi * out).sum(0) / count
    resid = (shadow_phi - mean) * out
    std = (resid.pow(2).sum() / out.sum().clamp_min(1)).sqrt().clamp_min(1e-6)
    return (target_phi - mean) / std


def membership_audit(x: torch.Tensor, y: torch.Tensor, *, shadows: int = 4,
                     arch: str = "wong-small", steps: int = 800, seed: int = 0,
                     test: tuple[torch.Tensor, torch.Tensor] | None = None,
                     state: Path | None = None,
                     log: Callable[[str], None] = lambda _: None) -> MembershipResult:
    """Train a target on half of the pool ``x`` (N, C, H, W), ``y`` (N,), and
    ``shadows`` shadow models on other halves; score every pool sample with both attacks.

    ``test`` (images, labels) measures the target's accuracy off its training set.
    """
    if shadows < 2:
        raise InputError(f"offline LiRA needs >= 2 shadow models, got {shadows}")
    if len(x) < 20 or len(x) != len(y):
        raise InputError(f"need a pool of >= 20 labelled images, got {len(x)} images "
                         f"and {len(y)} labels")
    masks = _halves(len(x), shadows + 1, seed)
    members, shadow_in = masks[0], masks[1:]
    fp = fingerprint({"pool": tensor_digest(x, y), "arch": arch, "steps": steps,
                      "seed": seed, "shadows": shadows})
    saved = StateFile(state, fp, "pool, arch, steps, seed or shadow count")
    target = fit(x[members], y[members], arch=arch, steps=steps, seed=seed)
    logits = predict(target, x)
    phi = _shadow_scores(x, y, shadow_in, arch, steps, seed, saved, log)
    # in double precision: float32 rounds the loss of confident samples to exactly 0,
    # and a wall of ties at the top leaves no threshold at low FPR
    loss = F.cross_entropy(logits.double(), y, reduction="none")
    result = MembershipResult(pool_size=len(x), shadows=shadows)
    result.attacks["loss-threshold"] = _summary(-loss, members)
    result.attacks["lira-offline"] = _summary(
        lira_offline(confidence_logit(logits, y), phi, shadow_in), members)
    result.target_train_accuracy = float((logits[members].argmax(1) == y[members]).float().mean())
    if test is not None:
        result.target_test_accuracy = _accuracy(target, *test)
    return result


def _shadow_scores(x: torch.Tensor, y: torch.Tensor, shadow_in: torch.Tensor, arch: str,
                   steps: int, seed: int, saved: StateFile,
                   log: Callable[[str], None]) -> torch.Tensor:
    """(S, N) logit-scaled confidences of each shadow model on the whole pool."""
    rows = []
    for i, mask in enumerate(shadow_in):
        unit = saved.done(str(i))
        if unit is None:
            model = fit(x[mask], y[mask], arch=arch, steps=steps, seed=seed + 1 + i)
            unit = {"phi": confidence_logit(predict(model, x), y).tolist()}
            saved.save(str(i), unit)
        log(f"shadow {i + 1}/{len(shadow_in)} done")
        rows.append(torch.tensor(unit["phi"]))
    return torch.stack(rows)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x).argmax(1) == y).float().mean())
