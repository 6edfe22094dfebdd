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

from bastion.attacks import PGD
from bastion.attacks.base import model_device
from bastion.common.intervals import interval_list, wilson_interval
from bastion.common.state import StateFile, fingerprint, tensor_digest
from bastion.errors import InputError
from bastion.privacy._fit import fit, predict
from bastion.privacy.membership import expected_calibration_error
from bastion.privacy.stealing import ExtractionAttack, Knockoff, Oracle
from bastion.threat import ThreatModel


@dataclass
class ExtractionResult:
    """One row per budget: ``queries``, ``fidelity`` and ``accuracy`` (fractions) with
    95% Wilson intervals ``fidelity_ci`` / ``accuracy_ci`` (percentage points), and
    ``victim_accuracy`` and ``victim_ece`` (expected calibration error, a fraction) of the
    answers the victim gives on the same test images: behind an output defence, what the
    defence costs its honest users."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    victim_accuracy: float = 0.0
    victim_ece: float = 0.0
    test_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"victim_accuracy": self.victim_accuracy, "victim_ece": self.victim_ece,
                "test_size": self.test_size, "rows": self.rows}


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


def steal(attack: ExtractionAttack, oracle: Oracle, images: torch.Tensor,
          test_x: torch.Tensor, test_y: torch.Tensor, *, budgets: Sequence[int],
          label_only: bool = False, arch: str = "wong-small", steps: int = 600,
          augment: float = 0.0, transfer: int = 500, eps: float = 0.3, seed: int = 0,
          state: Path | None = None, device: torch.device | str | None = None,
          log: Callable[[str], None] = lambda _: None) -> ExtractionResult:
    """Run ``attack`` against ``oracle`` up to the largest budget, then copy and measure
    at every budget from the first ``b`` queries of its transcript.

    Args:
        oracle: (N, C, H, W) -> (N, K) answers (a model, a defended model, a remote one).
        images: (P, C, H, W) attacker images in [0, 1]: the attack's pool or seed set.
        test_x, test_y: (T, C, H, W) held-out images and (T,) true labels; the victim is
            asked about them too (those answers are not counted in the budget).
        budgets: query counts.
        label_only: train the copy on the arg-max of the answers only.
        steps, augment: Adam steps (batch 64) per copy and its jitter in pixels (``fit``).
        transfer: test images (the first ones) for the transfer of PGD-20 examples made
            on the copy at Linf ``eps``; 0 skips it.
        state: resume file; finished budgets are skipped on a rerun.
        device: where the copies train and are attacked (default: the oracle's device,
            the CPU for a remote one); the oracle answers on its own device.
    Rows carry ``fidelity``, ``accuracy`` and ``transfer`` (fractions) with 95% Wilson
    intervals in percentage points.
    """
    if not budgets or min(budgets) < 1:
        raise InputError(f"query budgets must be >= 1, got {list(budgets)}")
    if images.dim() != 4 or images.shape[1:] != test_x.shape[1:]:
        raise InputError(f"attacker images {tuple(images.shape)} and test images "
                         f"{tuple(test_x.shape)} must both be (N, C, H, W) of one size")
    if isinstance(oracle, nn.Module):
        oracle.eval()
    if device is None:
        device = model_device(oracle) if isinstance(oracle, nn.Module) else "cpu"
    victim_answers = predict(oracle, test_x)
    victim_pred = victim_answers.argmax(1)
    fp = fingerprint({"attack": attack.name, "params": attack.get_params(),
                      "images": tensor_digest(images), "test": tensor_digest(test_x, test_y),
                      "victim": tensor_digest(victim_pred), "label_only": label_only,
                      "arch": arch, "steps": steps, "augment": augment, "transfer": transfer,
                      "eps": eps, "seed": seed})
    saved = StateFile(state, fp, "attack, images, test set, victim, or copy settings")

    def train(x: torch.Tensor, answers: torch.Tensor) -> nn.Module:
        return fit(x, answers_to_targets(answers, label_only), arch=arch, steps=steps,
                   seed=seed, augment=augment, device=device)

    # Calibration of what a client sees: label-only answers are one-hot (full confidence)
    probs = answers_to_targets(victim_answers, label_only=False)
    result = ExtractionResult(
        victim_accuracy=float((victim_pred == test_y).float().mean()),
        victim_ece=expected_calibration_error(probs.clamp_min(0).log(), test_y),
        test_size=len(test_x))
    sizes = sorted(set(budgets))
    todo = [b for b in sizes if saved.done(str(b)) is None]
    script = None
    if todo:
        gen = torch.Generator().manual_seed(seed)
        script = attack.collect(oracle, images, max(todo), train=train, generator=gen, log=log)
    for b in sizes:
        row = saved.done(str(b))
        if row is None:
            assert script is not None
            row = measure_copy(train(script.x[:b], script.answers[:b]), oracle, victim_pred,
                           test_x, test_y, transfer, eps)
            row = {"queries": min(b, len(script.x)), **row}
            saved.save(str(b), row)
        log(f"{b} queries: fidelity {row['fidelity']:.1%}, copy accuracy "
            f"{row['accuracy']:.1%}, transfer {row.get('transfer', 0.0):.1%}")
        result.rows.append(row)
    return result


def measure_copy(copy: nn.Module, oracle: Oracle, victim_pred: torch.Tensor,
             test_x: torch.Tensor, test_y: torch.Tensor, transfer: int,
             eps: float) -> dict[str, Any]:
    """Fidelity and accuracy of ``copy`` on (T, C, H, W) ``test_x`` against the victim's
    (T,) ``victim_pred`` and ``test_y``; with ``transfer`` > 0, the share of the first
    ``transfer`` test images (those the victim gets right) on which PGD-20 (no early stop:
    full-strength examples transfer better) at Linf ``eps`` made on the copy fools the
    oracle. Fractions, with 95% Wilson intervals in percentage points. The attack runs
    on the copy's device; the counts are taken on the CPU."""
    n = len(test_x)
    pred = predict(copy, test_x).argmax(1)
    agree, hits = int((pred == victim_pred).sum()), int((pred == test_y).sum())
    row: dict[str, Any] = {
        "fidelity": agree / n, "fidelity_ci": interval_list(wilson_interval(agree, n), 100, 2),
        "accuracy": hits / n, "accuracy_ci": interval_list(wilson_interval(hits, n), 100, 2)}
    if transfer > 0:
        right = (victim_pred[:transfer] == test_y[:transfer]).nonzero().squeeze(1)
        fooled = 0
        if len(right):
            where = model_device(copy)
            x_adv = PGD(steps=20, early_stop=False).run(
                copy, test_x[right].to(where), test_y[right].to(where),
                ThreatModel(norm="Linf", eps=eps),
                generator=torch.Generator().manual_seed(0)).x_adv
            fooled = int((predict(oracle, x_adv).argmax(1) != test_y[right]).sum())
        m = max(len(right), 1)
        row |= {"transfer": fooled / m, "transfer_n": len(right),
                "transfer_ci": interval_list(wilson_interval(fooled, m), 100, 2)}
    return row


def extract(victim: nn.Module, pool_x: torch.Tensor, test_x: torch.Tensor,
            test_y: torch.Tensor, *, budgets: Sequence[int], label_only: bool = False,
            arch: str = "wong-small", steps: int = 600, augment: float = 0.0,
            transfer: int = 0, seed: int = 0, state: Path | None = None,
            device: torch.device | str | None = None,
            log: Callable[[str], None] = lambda _: None) -> ExtractionResult:
    """Knockoff with the pool in its order: the first ``b`` pool images are queried at
    budget ``b`` (:func:`steal` with :class:`~bastion.privacy.stealing.Knockoff`).

    Args:
        victim: (N, C, H, W) -> (N, K) answers.
        pool_x: (P, C, H, W) attacker images in [0, 1].
        test_x, test_y: (T, C, H, W) held-out images and (T,) true labels.
        budgets: query counts, each <= P.
        steps: Adam steps (batch 64) per copy, whatever the budget.
        state: resume file; finished budgets are skipped on a rerun.
        device: where the copy trains (default: the victim's device).
    """
    _check(pool_x, test_x, budgets)
    return steal(Knockoff(), victim, pool_x, test_x, test_y, budgets=budgets,
                 label_only=label_only, arch=arch, steps=steps, augment=augment,
                 transfer=transfer, seed=seed, state=state, device=device, log=log)
