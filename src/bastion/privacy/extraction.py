"""Model extraction (Knockoff / Copycat style): query a victim with an attacker-owned
pool, train a copy on its answers, and measure the copy against the victim.

    from bastion.privacy import extract
    result = extract(victim, pool_x, test_x, test_y, budgets=[500, 2000], label_only=False)
    result.rows[0]["fidelity"]        # agreement with the victim on the test images

The victim is any ``nn.Module`` whose outputs are (N, K) rows: logits, probabilities or
one-hot answers of an output defence (:mod:`bastion.privacy.defenses`). Its rows are
turned into soft labels with :func:`answers_to_targets`; with ``label_only`` the copy
trains on the arg-max only. One budget is one work unit of the optional resume file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bastion.common.intervals import interval_list, wilson_interval
from bastion.common.state import StateFile, fingerprint, model_digest, tensor_digest
from bastion.errors import InputError
from bastion.privacy._fit import fit, predict


@dataclass
class ExtractionResult:
    """One row per budget: ``queries``, ``fidelity`` and ``accuracy`` (fractions) with
    95% Wilson intervals ``fidelity_ci`` / ``accuracy_ci`` (percentage points), and
    ``victim_accuracy`` of the victim's own answers on the same test images."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    victim_accuracy: float = 0.0
    test_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"victim_accuracy": self.victim_accuracy, "test_size": self.test_size,
                "rows": self.rows}


def answers_to_targets(answers: torch.Tensor, label_only: bool) -> torch.Tensor:
    """Training targets from the victim's (N, K) answers: (N,) labels when ``label_only``,
    otherwise (N, K) probability rows (logits are softmaxed; rows already on the simplex
    are kept)."""
    if label_only:
        return answers.argmax(1)
    on_simplex = bool((answers >= 0).all()) and bool(
        torch.allclose(answers.sum(1), torch.ones(len(answers)), atol=1e-3))
    return answers if on_simplex else torch.softmax(answers, dim=1)


def _check(pool_x: torch.Tensor, test_x: torch.Tensor, budgets: Sequence[int]) -> None:
    if not budgets or min(budgets) < 1:
        raise InputError(f"query budgets must be >= 1, got {list(budgets)}")
    if max(budgets) > len(pool_x):
        raise InputError(f"the largest budget {max(budgets)} exceeds the pool's "
                         f"{len(pool_x)} images; use a bigger pool or smaller budgets")
    if pool_x.dim() != 4 or pool_x.shape[1:] != test_x.shape[1:]:
        raise InputError(f"pool images {tuple(pool_x.shape)} and test images "
                         f"{tuple(test_x.shape)} must both be (N, C, H, W) of one size")


def extract(victim: nn.Module, pool_x: torch.Tensor, test_x: torch.Tensor,
            test_y: torch.Tensor, *, budgets: Sequence[int], label_only: bool = False,
            arch: str = "wong-small", steps: int = 600, seed: int = 0,
            state: Path | None = None,
            log: Callable[[str], None] = lambda _: None) -> ExtractionResult:
    """Copy ``victim`` at each query budget and measure each copy.

    Args:
        victim: (N, C, H, W) -> (N, K) answers.
        pool_x: (P, C, H, W) attacker images in [0, 1]; the first ``b`` are queried at
            budget ``b``.
        test_x, test_y: (T, C, H, W) held-out images and (T,) true labels.
        budgets: query counts, each <= P.
        steps: Adam steps (batch 64) per copy, whatever the budget.
        state: resume file; finished budgets are skipped on a rerun.
    """
    _check(pool_x, test_x, budgets)
    victim.eval()
    answers = predict(victim, pool_x[:max(budgets)])
    victim_pred = predict(victim, test_x).argmax(1)
    fp = fingerprint({"victim": model_digest(victim), "pool": tensor_digest(pool_x),
                      "test": tensor_digest(test_x, test_y), "label_only": label_only,
                      "arch": arch, "steps": steps, "seed": seed})
    saved = StateFile(state, fp, "victim, pool, test set, label_only, arch, steps or seed")
    n = len(test_x)
    result = ExtractionResult(victim_accuracy=float((victim_pred == test_y).float().mean()),
                              test_size=n)
    for b in sorted(set(budgets)):
        row = saved.done(str(b))
        if row is None:
            targets = answers_to_targets(answers[:b], label_only)
            copy = fit(pool_x[:b], targets, arch=arch, steps=steps, seed=seed)
            pred = predict(copy, test_x).argmax(1)
            agree, hits = int((pred == victim_pred).sum()), int((pred == test_y).sum())
            row = {"queries": b, "fidelity": agree / n,
                   "fidelity_ci": interval_list(wilson_interval(agree, n), 100, 2),
                   "accuracy": hits / n,
                   "accuracy_ci": interval_list(wilson_interval(hits, n), 100, 2)}
            saved.save(str(b), row)
        log(f"{b} queries: fidelity {row['fidelity']:.1%}, copy accuracy {row['accuracy']:.1%}")
        result.rows.append(row)
    return result
