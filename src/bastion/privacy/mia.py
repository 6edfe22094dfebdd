"""Membership inference attacks: each turns what a target model says about a sample
(and, for most, what shadow models trained on known halves of the pool say) into a
score, higher = more likely a member of the target's training set.

    obs = Observations(target=logits, labels=y, shadows=shadow_logits, shadow_in=masks)
    scores = ATTACKS["lira-online"]().score(obs)       # (N,)

| name | paper | needs |
|---|---|---|
| ``loss-threshold`` | Yeom et al. 2018 | target only |
| ``confidence-threshold`` | Yeom et al. 2018 (max probability, no label) | target only |
| ``shokri`` | Shokri et al. 2017: an attack classifier per class on shadow outputs | shadows |
| ``lira-offline`` | Carlini et al. 2022: Gaussian of OUT shadows, one-sided test | shadows |
| ``lira-online`` | Carlini et al. 2022: IN vs OUT Gaussian likelihood ratio | shadows |
| ``rmia`` | Zarifzadeh et al. 2024: likelihood ratio against a population | shadows, population |

LiRA works on the logit-scaled confidence ``phi = log p_y - log(1 - p_y)``, which is
close to Gaussian across models; ``per_example_variance=False`` pools one variance over
all samples (what Carlini et al. advise below ~64 shadows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch.nn import functional as F

from bastion.errors import ConfigError, InputError


@dataclass
class Observations:
    """What the attacks see.

    Attributes:
        target: (N, K) the target model's logits on the N audited samples.
        labels: (N,) int64 true labels.
        shadows: (S, N, K) shadow models' logits on the same samples (S may be 0).
        shadow_in: (S, N) bool, True where shadow s trained on sample n.
        population: (P, K) target logits on P samples no model trained on (RMIA's z);
            pop_labels (P,); pop_shadows (S, P, K).
    """

    target: torch.Tensor
    labels: torch.Tensor
    shadows: torch.Tensor | None = None
    shadow_in: torch.Tensor | None = None
    population: torch.Tensor | None = None
    pop_labels: torch.Tensor | None = None
    pop_shadows: torch.Tensor | None = None


def true_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p_y from (..., N, K) logits and (N,) labels, in float64: (..., N)."""
    logp = F.log_softmax(logits.double(), dim=-1)
    index = labels.expand(*logits.shape[:-1])[..., None]
    return logp.gather(-1, index)[..., 0]


def confidence_logit(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log p_y - log(1 - p_y)`` from (..., N, K) logits, stably (no 1 - p): (..., N)."""
    logp = F.log_softmax(logits.double(), dim=-1)
    index = labels.expand(*logits.shape[:-1])[..., None]
    rest = logp.scatter(-1, index, float("-inf")).logsumexp(-1)
    return logp.gather(-1, index)[..., 0] - rest


class MembershipAttack:
    """Base of the registered attacks: metadata as class attributes, constructor
    arguments keyword-only (they are the whole configuration)."""

    name: ClassVar[str]
    paper: ClassVar[str]
    needs_shadows: ClassVar[bool] = False
    needs_population: ClassVar[bool] = False

    def get_params(self) -> dict[str, Any]:
        return dict(vars(self))

    def score(self, obs: Observations) -> torch.Tensor:
        """(N,) float64 scores, higher = member."""
        raise NotImplementedError

    def check(self, obs: Observations) -> None:
        """InputError when ``obs`` lacks what this attack needs."""
        if obs.target.dim() != 2 or obs.labels.shape != obs.target.shape[:1]:
            raise InputError(f"{self.name}: target logits must be (N, K) and labels (N,), got "
                             f"{tuple(obs.target.shape)} and {tuple(obs.labels.shape)}")
        if self.needs_shadows:
            if obs.shadows is None or obs.shadow_in is None or len(obs.shadows) < 2:
                raise InputError(f"{self.name} needs >= 2 shadow models; train more shadows")
            if obs.shadows.shape[1:] != obs.target.shape or obs.shadow_in.shape != (
                    obs.shadows.shape[0], obs.target.shape[0]):
                raise InputError(f"{self.name}: shadows must be (S, N, K) with shadow_in (S, N)")
        if self.needs_population and (obs.population is None or obs.pop_shadows is None
                                      or obs.pop_labels is None or len(obs.population) == 0):
            raise InputError(f"{self.name} needs population samples that no model trained on")


class LossThreshold(MembershipAttack):
    name = "loss-threshold"
    paper = "Yeom et al. 2018"

    def score(self, obs: Observations) -> torch.Tensor:
        self.check(obs)
        return true_logprob(obs.target, obs.labels)  # = -loss


class ConfidenceThreshold(MembershipAttack):
    name = "confidence-threshold"
    paper = "Yeom et al. 2018"

    def score(self, obs: Observations) -> torch.Tensor:
        self.check(obs)
        return F.log_softmax(obs.target.double(), dim=1).max(1).values


def _gauss_fit(phi: torch.Tensor, use: torch.Tensor, per_example: bool
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (N,) and std (N,) of (S, N) ``phi`` over the shadows where ``use`` (S, N)."""
    w = use.double()
    count = w.sum(0)
    mean = (phi * w).sum(0) / count.clamp_min(1)
    sq = ((phi - mean) ** 2 * w)
    if per_example:
        std = (sq.sum(0) / (count - 1).clamp_min(1)).sqrt()
    else:
        std = (sq.sum() / (w.sum() - (count > 0).sum()).clamp_min(1)).sqrt().expand_as(mean)
    # a sample no shadow saw on this side keeps the global mean (nothing better known)
    mean = torch.where(count > 0, mean, (phi * w).sum() / w.sum().clamp_min(1))
    return mean, std.clamp_min(1e-3)


class _Lira(MembershipAttack):
    """Shared by both LiRA variants: the shadows' and the target's logit-scaled confidence."""

    paper = "Carlini et al. 2022"
    needs_shadows = True

    def __init__(self, *, per_example_variance: bool = False) -> None:
        self.per_example_variance = per_example_variance

    def _phis(self, obs: Observations) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(S, N) shadow and (N,) target confidences, and the (S, N) IN mask."""
        self.check(obs)
        assert obs.shadows is not None and obs.shadow_in is not None
        return (confidence_logit(obs.shadows, obs.labels),
                confidence_logit(obs.target, obs.labels), obs.shadow_in)


class LiraOffline(_Lira):
    name = "lira-offline"

    def score(self, obs: Observations) -> torch.Tensor:
        phi, t, shadow_in = self._phis(obs)
        mean, std = _gauss_fit(phi, ~shadow_in, self.per_example_variance)
        # log P[OUT Gaussian <= phi_target]: how far above the OUT models it lies
        return torch.special.log_ndtr((t - mean) / std)


class LiraOnline(_Lira):
    name = "lira-online"

    def score(self, obs: Observations) -> torch.Tensor:
        phi, t, shadow_in = self._phis(obs)
        m_in, s_in = _gauss_fit(phi, shadow_in, self.per_example_variance)
        m_out, s_out = _gauss_fit(phi, ~shadow_in, self.per_example_variance)
        return _log_normal(t, m_in, s_in) - _log_normal(t, m_out, s_out)


def _log_normal(v: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((v - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)


class Rmia(MembershipAttack):
    """``Pr(x) / Pr(z)`` ratios of the target against a reference estimate of Pr(.),
    compared with every population sample z; the score is the share of z that x beats
    by a factor ``gamma``. Offline (``online=False``) uses only OUT shadows and
    ``Pr(x) = ((1 + a) * mean_out + (1 - a)) / 2`` to make up for the missing IN half."""

    name = "rmia"
    paper = "Zarifzadeh et al. 2024"
    needs_shadows = True
    needs_population = True

    def __init__(self, *, online: bool = True, a: float = 0.3, gamma: float = 1.0) -> None:
        self.online, self.a, self.gamma = online, a, gamma

    def score(self, obs: Observations) -> torch.Tensor:
        self.check(obs)
        assert obs.shadows is not None and obs.shadow_in is not None
        assert obs.population is not None and obs.pop_shadows is not None
        assert obs.pop_labels is not None
        p_ref = true_logprob(obs.shadows, obs.labels).exp()
        use = torch.ones_like(obs.shadow_in) if self.online else ~obs.shadow_in
        mean = (p_ref * use).sum(0) / use.sum(0).clamp_min(1)
        if not self.online:
            mean = 0.5 * ((1 + self.a) * mean + (1 - self.a))
        ratio_x = true_logprob(obs.target, obs.labels).exp() / mean.clamp_min(1e-30)
        pz = true_logprob(obs.pop_shadows, obs.pop_labels).exp().mean(0)
        ratio_z = true_logprob(obs.population, obs.pop_labels).exp() / pz.clamp_min(1e-30)
        beats = ratio_x[:, None] / ratio_z[None, :] >= self.gamma
        # ties broken by the ratio itself so the score orders samples finely at low FPR
        return beats.double().mean(1) + 1e-9 * ratio_x.log().tanh()


class Shokri(MembershipAttack):
    """One logistic-regression attack model per class, trained on shadow outputs labelled
    IN/OUT; features: the sorted top-3 log-probabilities and the true-class log-prob."""

    name = "shokri"
    paper = "Shokri et al. 2017"
    needs_shadows = True

    def __init__(self, *, steps: int = 50, lr: float = 0.5) -> None:
        self.steps, self.lr = steps, lr

    def score(self, obs: Observations) -> torch.Tensor:
        self.check(obs)
        assert obs.shadows is not None and obs.shadow_in is not None
        feats = _features(obs.shadows, obs.labels)           # (S, N, F)
        target = _features(obs.target, obs.labels)           # (N, F)
        scores = torch.zeros(len(obs.labels), dtype=torch.float64)
        for c in obs.labels.unique():
            cols = obs.labels == c
            w = _logistic(feats[:, cols].reshape(-1, feats.shape[-1]),
                          obs.shadow_in[:, cols].reshape(-1).double(), self.steps, self.lr)
            scores[cols] = _affine(target[cols], w)
        return scores


def _features(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(logits.double(), dim=-1)
    top = logp.topk(min(3, logp.shape[-1]), dim=-1).values
    return torch.cat([top, true_logprob(logits, labels)[..., None]], -1).clamp_min(-50)


def _affine(f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return f @ w[:-1] + w[-1]


def _logistic(f: torch.Tensor, target: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """Weights (F + 1,) of a logistic regression fitted with L-BFGS on standardised f."""
    mu, sd = f.mean(0), f.std(0).clamp_min(1e-6)
    w = torch.zeros(f.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=lr, max_iter=steps)
    fs = (f - mu) / sd

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(_affine(fs, w), target)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():  # fold the standardisation into the weights
        lin = w[:-1] / sd
        return torch.cat([lin, (w[-1] - (lin * mu).sum())[None]])


ATTACKS: dict[str, type[MembershipAttack]] = {
    cls.name: cls for cls in (LossThreshold, ConfidenceThreshold, Shokri, LiraOffline,
                              LiraOnline, Rmia)}


def get_attack(name: str, **params: Any) -> MembershipAttack:
    """A registered attack by name; ConfigError listing the names when unknown."""
    try:
        return ATTACKS[name](**params)
    except KeyError:
        raise ConfigError(f"unknown membership attack {name!r}; available: "
                          f"{', '.join(ATTACKS)}") from None
