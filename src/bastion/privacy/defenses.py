"""Output defences: ``nn.Module`` wrappers that perturb what a classifier reveals.

    from bastion.privacy.defenses import build_defense
    guarded = build_defense("reverse-sigmoid", model, beta=0.7, gamma=0.4)
    probs = guarded(x)                 # (N, K) rows that sum to 1

Every wrapper takes a classifier that maps (N, C, H, W) to logits (N, K) and returns
(N, K) float rows that sum to 1: probabilities (``round``, ``top-k``, ``reverse-sigmoid``,
``noise``, ``none``) or one-hot rows (``label-only``). ``top-k`` and ``label-only`` keep
the arg-max class, so the victim's accuracy; ``round`` can tie it, and ``reverse-sigmoid``
and ``noise`` can flip near-ties (measure the cost with :func:`defended_accuracy`).
:data:`DEFENSES` maps each name to its builder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from bastion.errors import ConfigError


class _Defense(nn.Module):
    """Base: softmax of the wrapped model's logits, then :meth:`perturb`."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.perturb(torch.softmax(self.model(x), dim=1))

    def perturb(self, p: torch.Tensor) -> torch.Tensor:
        return p


class Identity(_Defense):
    """No defence: the full probability vector (N, K)."""


class Round(_Defense):
    """Probabilities rounded to ``decimals`` places, renormalised: (N, K)."""

    def __init__(self, model: nn.Module, *, decimals: int = 1) -> None:
        super().__init__(model)
        self.decimals = decimals

    def perturb(self, p: torch.Tensor) -> torch.Tensor:
        r = torch.round(p, decimals=self.decimals)
        # rounding can zero a whole row of small values: keep the top class then
        r = torch.where(r.sum(1, keepdim=True) > 0, r, _one_hot(p))
        return r / r.sum(1, keepdim=True)


class TopK(_Defense):
    """Only the ``k`` largest probabilities kept, renormalised, the rest 0: (N, K)."""

    def __init__(self, model: nn.Module, *, k: int = 3) -> None:
        super().__init__(model)
        self.k = k

    def perturb(self, p: torch.Tensor) -> torch.Tensor:
        values, index = p.topk(min(self.k, p.shape[1]), dim=1)
        out = torch.zeros_like(p).scatter(1, index, values)
        return out / out.sum(1, keepdim=True)


class LabelOnly(_Defense):
    """One-hot rows of the predicted class: (N, K) with a single 1 per row."""

    def perturb(self, p: torch.Tensor) -> torch.Tensor:
        return _one_hot(p)


class ReverseSigmoid(_Defense):
    """Lee et al. (2019): ``p - beta * (sigmoid(gamma * logit(p)) - 1/2)``, renormalised.

    The shift is largest where the copy's cross-entropy is most informative, which
    misleads a copy trained on the probabilities: (N, K).
    """

    def __init__(self, model: nn.Module, *, beta: float = 0.7, gamma: float = 0.4) -> None:
        super().__init__(model)
        self.beta = beta
        self.gamma = gamma

    def perturb(self, p: torch.Tensor) -> torch.Tensor:
        q = p.clamp(1e-6, 1 - 1e-6)
        r = q - self.beta * (torch.sigmoid(self.gamma * torch.log(q / (1 - q))) - 0.5)
        r = r.clamp_min(0) + 1e-12  # the shift can go below 0 for small p
        return r / r.sum(1, keepdim=True)


class GaussianNoise(_Defense):
    """Probabilities plus N(0, sigma^2) noise, clipped at 0 and renormalised: (N, K)."""

    def __init__(self, model: nn.Module, *, sigma: float = 0.1) -> None:
        super().__init__(model)
        self.sigma = sigma

    def perturb(self, p: torch.Tensor) -> torch.Tensor:
        r = (p + self.sigma * torch.randn_like(p)).clamp_min(0) + 1e-12
        return r / r.sum(1, keepdim=True)


def _one_hot(p: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(p).scatter(1, p.argmax(1, keepdim=True), 1.0)


#: name -> (class, whether its answers are one-hot labels rather than probabilities)
DEFENSES: dict[str, tuple[Callable[..., _Defense], bool]] = {
    "none": (Identity, False),
    "round": (Round, False),
    "top-k": (TopK, False),
    "label-only": (LabelOnly, True),
    "reverse-sigmoid": (ReverseSigmoid, False),
    "noise": (GaussianNoise, False),
}


def _check(name: str, kwargs: dict[str, Any]) -> None:
    if kwargs.get("decimals", 0) < 0:
        raise ConfigError(f"round: decimals must be >= 0, got {kwargs['decimals']}")
    if kwargs.get("k", 1) < 1:
        raise ConfigError(f"top-k: k must be >= 1, got {kwargs['k']}")
    if kwargs.get("sigma", 0.0) < 0 or kwargs.get("beta", 0.0) < 0:
        raise ConfigError(f"{name}: sigma and beta must be >= 0, got {kwargs}")


def build_defense(name: str, model: nn.Module, **kwargs: Any) -> nn.Module:
    """Wrap ``model`` (logits (N, K)) in defence ``name`` (a key of :data:`DEFENSES`)."""
    if name not in DEFENSES:
        raise ConfigError(f"unknown output defence {name!r}; available: {', '.join(DEFENSES)}")
    _check(name, kwargs)
    try:
        return DEFENSES[name][0](model, **kwargs).eval()
    except TypeError as exc:
        raise ConfigError(f"bad options for output defence {name!r}: {exc}") from None


def is_label_only(name: str) -> bool:
    """Whether defence ``name`` answers with one-hot labels (a copy trains on hard labels)."""
    return DEFENSES[name][1]


@torch.no_grad()
def defended_accuracy(defended: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      batch: int = 1000) -> float:
    """Top-1 accuracy (fraction) of a defended model's answers on (N, C, H, W) ``x``."""
    hits = sum(int((defended(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
               for i in range(0, len(x), batch))
    return hits / max(len(x), 1)
