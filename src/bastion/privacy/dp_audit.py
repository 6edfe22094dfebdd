"""An empirical lower bound on a DP-SGD model's epsilon from one training run
(Steinke, Nasr and Jagielski 2023, "Privacy auditing with one (1) training run").

    res = one_run_audit(x, y, canaries=500, recipe=Recipe(method="dp", noise_multiplier=1.0))
    res["audited_epsilon"], res["accounted_epsilon"]

``m`` canaries (here: training images given a random wrong label, which makes them easy
to spot when included) each join the training set independently with probability 1/2;
the rest of the training set is fixed. After one DP-SGD training the auditor ranks the
canaries by their membership score (the model's log-probability of the canary label),
guesses "in" for the top k and "out" for the bottom k and abstains on the rest. If the
training is (eps, delta)-DP, the number of correct guesses is stochastically dominated
by Binomial(r, e^eps / (1 + e^eps)) up to a delta term (their Theorem 3.2); the largest
eps that this rejects at 95% confidence is the audited lower bound.

A lower bound above the accounted epsilon means the training or the accountant is
broken: :func:`one_run_audit` raises :class:`AuditViolation` then, never a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from scipy import stats

from bastion.errors import BastionError, ConfigError
from bastion.privacy._fit import predict
from bastion.privacy._train import Recipe, train
from bastion.privacy.mia import true_logprob


class AuditViolation(BastionError, AssertionError):
    """The audited epsilon lower bound exceeds the accounted epsilon: the DP training
    (clipping, noise, sampling) or its accountant is wrong. Report it with the command."""


def p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """Probability of >= v correct guesses out of r (m canaries) under (eps, delta)-DP."""
    if not 0 <= v <= r <= m:
        raise ConfigError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    q = 1 / (1 + math.exp(-eps))  # accuracy of eps-DP randomised response
    tail = float(stats.binom.sf(v - 1, r, q))
    # delta's share: the worst ratio P[v - i <= Bin < v] / i over i (their Appendix D)
    worst, below = 0.0, 0.0
    for i in range(1, v + 1):
        below += float(stats.binom.pmf(v - i, r, q))
        worst = max(worst, below / i)
    return min(1.0, tail + 2 * m * delta * worst)


def epsilon_lower_bound(m: int, r: int, v: int, *, delta: float,
                        confidence: float = 0.95) -> float:
    """Largest eps rejected at ``confidence``: bisection on p_value, which rises with
    eps. 0 when even eps = 0 is not rejected."""
    alpha = 1 - confidence
    if p_value(m, r, v, 0.0, delta) >= alpha:
        return 0.0
    low, high = 0.0, 1.0
    while p_value(m, r, v, high, delta) < alpha:
        low, high = high, high * 2
    for _ in range(40):
        mid = (low + high) / 2
        if p_value(m, r, v, mid, delta) < alpha:
            low = mid
        else:
            high = mid
    return low


def guesses(scores: torch.Tensor, included: torch.Tensor, k: int) -> tuple[int, int]:
    """(r, v): guesses made and correct when guessing top-k "in", bottom-k "out"."""
    order = scores.argsort(descending=True)
    top, bottom = order[:k], order[len(order) - k:]
    return 2 * k, int(included[top].sum()) + int((~included[bottom]).sum())


def one_run_audit(x: torch.Tensor, y: torch.Tensor, *, canaries: int, recipe: Recipe,
                  guess_fraction: float = 0.1, seed: int = 0, num_classes: int = 10,
                  device: torch.device | str = "cpu",
                  log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Audit one training of ``recipe`` on (N, C, H, W) ``x`` and (N,) ``y``: the last
    ``canaries`` samples become canaries, the others are always trained on. The model
    trains on ``device``; canaries are drawn and scored on the CPU.

    Returns:
        ``{"accounted_epsilon", "audited_epsilon", "delta", "canaries", "guesses",
        "correct", "confidence", "noise_multiplier"}``.
    Raises:
        AuditViolation: audited > accounted (a bug, never a result).
    """
    if recipe.method != "dp":
        raise ConfigError("the one-run audit compares with an accounted epsilon: use a DP "
                          "recipe (method='dp')")
    if not 10 <= canaries < len(x) or not 0 < guess_fraction <= 0.5:
        raise ConfigError(f"need 10 <= canaries < {len(x)} and 0 < guess_fraction <= 0.5")
    gen = torch.Generator().manual_seed(seed)
    base = len(x) - canaries
    can_x = x[base:]
    # a random wrong label: an outlier the model can only fit by memorising it
    can_y = (y[base:] + torch.randint(1, num_classes, (canaries,), generator=gen)) % num_classes
    included = torch.rand(canaries, generator=gen) < 0.5
    train_x = torch.cat([x[:base], can_x[included]])
    train_y = torch.cat([y[:base], can_y[included]])
    model, info = train(train_x, train_y, recipe, seed=seed, device=device)
    scores = true_logprob(predict(model, can_x), can_y)
    k = max(1, int(guess_fraction * canaries))
    r, v = guesses(scores, included, k)
    accounted = float(info["epsilon"])
    audited = epsilon_lower_bound(canaries, r, v, delta=recipe.delta)
    log(f"noise {recipe.noise_multiplier}: {v}/{r} correct guesses, audited eps >= "
        f"{audited:.3f}, accounted {accounted:.3f}")
    if audited > accounted:
        raise AuditViolation(
            f"audited epsilon {audited:.3f} exceeds the accounted {accounted:.3f} "
            f"(noise {recipe.noise_multiplier}, {v}/{r} correct guesses): DP-SGD or its "
            "accounting is broken; report this with the command that produced it")
    return {"accounted_epsilon": accounted, "audited_epsilon": audited, "delta": recipe.delta,
            "canaries": canaries, "guesses": r, "correct": v, "confidence": 0.95,
            "noise_multiplier": recipe.noise_multiplier}
