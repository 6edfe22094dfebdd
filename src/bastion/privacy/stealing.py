"""Extraction attacks: how a thief chooses the queries it sends to a victim.

    from bastion.privacy.stealing import make_extraction
    attack = make_extraction("jacobian", seed_size=150)
    transcript = attack.collect(victim, seed_images, 5000, train=train_copy)

An attack sends at most ``budget`` queries to an *oracle* (any callable from (N, C, H, W)
images in [0, 1] to (N, K) answer rows: a model, a model behind an output defence of
:mod:`bastion.privacy.defenses`, or :class:`~bastion.privacy.remote.RemoteClassifier`) and
returns the :class:`Transcript` in the order sent, so its first ``b`` rows are exactly what
the thief held after ``b`` queries. Attacks that adapt to what they learnt call ``train``
(the copy trainer of :func:`bastion.privacy.extraction.steal`) between rounds.

- ``knockoff`` (Orekondy et al. 2019, Copycat of Correia-Silva et al. 2018): queries from
  an attacker-owned pool of natural images; ``strategy="random"`` takes them in pool
  order, ``"adaptive"`` queries in doubling rounds and picks, each round, the pool images
  on which the current copy is least sure (smallest top-1 minus top-2 probability).
- ``jacobian`` (Papernot et al. 2017): from a small seed set, each round adds
  ``x + step * sign(d copy[label(x)] / dx)`` for every image so far (the direction in
  which the copy's answer for the victim's label changes fastest, which is where the
  copy's decision boundary lies), the sign of ``step`` flipping every ``flip_every``
  rounds; a round larger than the budget left takes a random subset.

Constructors take keyword-only settings and do no work (``get_params()`` rebuilds the
attack); settings are checked when :meth:`ExtractionAttack.collect` starts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from bastion.attacks.base import model_device
from bastion.errors import ConfigError, InputError
from bastion.privacy._fit import predict

Oracle = Callable[[torch.Tensor], torch.Tensor]
Trainer = Callable[[torch.Tensor, torch.Tensor], nn.Module]
STRATEGIES = ("random", "adaptive")


@dataclass
class Transcript:
    """Queries ``x`` (B, C, H, W) in the order sent and the oracle's ``answers`` (B, K)."""

    x: torch.Tensor
    answers: torch.Tensor


class ExtractionAttack(ABC):
    """A query strategy. ``name``: registry key; ``images``: what the attacker's images
    are to :meth:`collect` (a pool to draw from, or a seed set to grow)."""

    name: ClassVar[str]
    images: ClassVar[str]

    def get_params(self) -> dict[str, Any]:
        return dict(vars(self))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    @abstractmethod
    def collect(self, oracle: Oracle, images: torch.Tensor, budget: int, *, train: Trainer,
                generator: torch.Generator | None = None,
                log: Callable[[str], None] = lambda _: None) -> Transcript:
        """Send at most ``budget`` queries (exactly ``budget`` when the images allow).

        Args:
            images: (P, C, H, W) attacker images in [0, 1].
            train: ``train(x, answers) -> copy`` for attacks that adapt between rounds.
            generator: random source (subsets); seeded by the caller for determinism.
        """


def _check_images(images: torch.Tensor, budget: int) -> None:
    if images.dim() != 4 or len(images) == 0:
        raise InputError(f"attacker images must be (N, C, H, W) with N >= 1, got "
                         f"{tuple(images.shape)}")
    if budget < 1:
        raise InputError(f"the query budget must be >= 1, got {budget}")


class Knockoff(ExtractionAttack):
    """Knockoff Nets / Copycat: query natural images of an attacker-owned pool.

    Args:
        strategy: ``"random"`` (the pool's order: shuffle or mix it beforehand) or
            ``"adaptive"`` (uncertainty sampling by the current copy).
        rounds: adaptive only: query rounds; round ``r`` ends at ``budget / 2**(rounds-r)``.
    """

    name = "knockoff"
    images = "pool"

    def __init__(self, *, strategy: str = "random", rounds: int = 4) -> None:
        self.strategy = strategy
        self.rounds = rounds

    def _check(self, pool: torch.Tensor, budget: int) -> None:
        _check_images(pool, budget)
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"knockoff strategy must be one of {STRATEGIES}, got "
                              f"{self.strategy!r}")
        if self.rounds < 1:
            raise ConfigError(f"knockoff rounds must be >= 1, got {self.rounds}")
        if budget > len(pool):
            raise InputError(f"the budget {budget} exceeds the pool's {len(pool)} images; "
                             "use a bigger pool or a smaller budget")

    def collect(self, oracle: Oracle, images: torch.Tensor, budget: int, *, train: Trainer,
                generator: torch.Generator | None = None,
                log: Callable[[str], None] = lambda _: None) -> Transcript:
        self._check(images, budget)
        if self.strategy == "random":
            return Transcript(images[:budget], predict(oracle, images[:budget]))
        ends = sorted({max(1, budget >> (self.rounds - r)) for r in range(1, self.rounds)}
                      | {budget})
        chosen = torch.arange(ends[0])
        answers = predict(oracle, images[chosen])
        left = torch.ones(len(images), dtype=torch.bool)
        left[chosen] = False
        for end in ends[1:]:
            copy = train(images[chosen], answers)
            rest = left.nonzero().squeeze(1)
            probs = torch.softmax(predict(copy, images[rest]), 1)
            top2 = probs.topk(2, dim=1).values
            pick = rest[(top2[:, 0] - top2[:, 1]).argsort()[:end - len(chosen)]]
            answers = torch.cat([answers, predict(oracle, images[pick])])
            chosen = torch.cat([chosen, pick])
            left[pick] = False
            log(f"knockoff adaptive: {len(chosen)} queries")
        return Transcript(images[chosen], answers)


class Jacobian(ExtractionAttack):
    """Papernot et al.'s Jacobian-based dataset augmentation from a seed set.

    Args:
        seed_size: images of the seed set (the first ones given); the first round.
        step: lambda, the size of each synthetic step in input units.
        flip_every: the sign of the step flips every this many rounds (tau in the paper),
            so later rounds walk back toward the data instead of off into noise.
    """

    name = "jacobian"
    images = "seed set"

    def __init__(self, *, seed_size: int = 150, step: float = 0.1, flip_every: int = 3) -> None:
        self.seed_size = seed_size
        self.step = step
        self.flip_every = flip_every

    def _check(self, seeds: torch.Tensor, budget: int) -> None:
        _check_images(seeds, budget)
        if self.seed_size < 1 or self.flip_every < 1:
            raise ConfigError(f"jacobian seed_size and flip_every must be >= 1, got "
                              f"{self.seed_size} and {self.flip_every}")
        if not 0 < self.step <= 1:
            raise ConfigError(f"jacobian step must be in (0, 1], got {self.step}")

    def collect(self, oracle: Oracle, images: torch.Tensor, budget: int, *, train: Trainer,
                generator: torch.Generator | None = None,
                log: Callable[[str], None] = lambda _: None) -> Transcript:
        self._check(images, budget)
        x = images[:min(self.seed_size, budget)]
        answers = predict(oracle, x)
        rnd = 0
        while len(x) < budget:
            copy = train(x, answers)
            sign = -1.0 if (rnd // self.flip_every) % 2 else 1.0
            idx = torch.arange(len(x))
            if len(x) > budget - len(x):  # the last round: a random subset
                idx = torch.randperm(len(x), generator=generator)[:budget - len(x)]
            new = self._augment(copy, x[idx], answers[idx].argmax(1), sign * self.step)
            answers = torch.cat([answers, predict(oracle, new)])
            x = torch.cat([x, new])
            rnd += 1
            log(f"jacobian round {rnd}: {len(x)} queries")
        return Transcript(x, answers)

    @staticmethod
    def _augment(copy: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                 step: float, batch: int = 500) -> torch.Tensor:
        """(N, C, H, W) new points ``clip(x + step * sign(d copy(x)[label] / dx))``, found
        on the copy's device and returned where ``x`` is."""
        out, device = [], model_device(copy)
        for i in range(0, len(x), batch):
            xb = x[i:i + batch].to(device, copy=True).requires_grad_(True)
            score = copy(xb).gather(1, labels[i:i + batch, None].to(device)).sum()
            (grad,) = torch.autograd.grad(score, xb)
            out.append((xb.detach() + step * grad.sign()).clamp(0, 1).to(x.device))
        return torch.cat(out)


REGISTRY: dict[str, type[ExtractionAttack]] = {Knockoff.name: Knockoff, Jacobian.name: Jacobian}


def make_extraction(name: str, **params: Any) -> ExtractionAttack:
    """A registered extraction attack by name, e.g. ``make_extraction("knockoff",
    strategy="adaptive")``; ConfigError for an unknown name or setting."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown extraction attack {name!r}; registered: "
                          f"{', '.join(sorted(REGISTRY))}") from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"bad settings for {name}: {exc}") from None
