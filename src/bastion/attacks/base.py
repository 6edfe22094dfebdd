"""The attack contract shared by every attack.

An :class:`Attack` is configured entirely by keyword-only constructor arguments (stored as
attributes with the same names, no logic in ``__init__``), so :meth:`Attack.get_params`
reproduces a run. :meth:`Attack.run` takes a model returning logits, inputs ``x`` (N, ...)
inside ``threat.bounds``, labels ``y`` (N,), and returns an :class:`AttackResult` whose
tensors live on the model's device.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from bastion.attacks._layout import channels_last
from bastion.attacks._seeding import per_sample
from bastion.common import draws
from bastion.errors import ConfigError
from bastion.threat import ThreatModel


@dataclass
class Passes:
    """Work done by an attack, counted in per-sample passes through the model.

    One forward pass of a batch of 64 counts 64. ``forward`` counts every sample sent
    through the model; ``backward`` counts every sample whose input gradient was computed.
    """

    forward: int = 0
    backward: int = 0

    def add(self, other: Passes) -> None:
        self.forward += other.forward
        self.backward += other.backward

    def to_dict(self) -> dict[str, int]:
        return {"forward": self.forward, "backward": self.backward}


@dataclass
class AttackResult:
    """What an attack found.

    Attributes:
        x_adv: (N, ...) perturbed inputs, always inside the threat model's ball and bounds.
            Where the attack failed, the best point it found (or ``x`` itself).
        success: (N,) bool; True where ``x_adv`` is misclassified (untargeted) or classified
            as the target (targeted). Attacks do not special-case inputs that are already
            misclassified: the evaluation runner only attacks correctly classified ones.
        passes: forward and backward passes the attack spent.
        stages: for an attack made of attacks (a cascade), one entry per stage in the
            order run: stage name -> {"broken": samples this stage broke first,
            "uses_gradients": bool, "passes": {"forward": n, "backward": n}}. Empty for
            a single attack.
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    passes: Passes = field(default_factory=Passes)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)


class Attack:
    """Base class: subclasses set ``name`` and implement :meth:`_run`."""

    name: ClassVar[str] = "attack"
    #: norms the attack supports; the runner refuses other threat models up front.
    norms: ClassVar[tuple[str, ...]] = ("Linf", "L2")
    #: whether the attack needs input gradients (white-box) or only scores.
    uses_gradients: ClassVar[bool] = True
    #: parameters whose values `bastion evaluate` appends to the attack's label
    #: (``pgd-40``); an empty tuple keeps the bare name.
    label_params: ClassVar[tuple[str, ...]] = ("steps",)
    #: True when every draw goes through :mod:`bastion.common.draws` (a sample's numbers
    #: then do not depend on its batch); ``_run`` gets a SampleRandom. False (an attack
    #: written against torch.rand(..., generator=...)): ``_run`` gets a torch.Generator.
    per_sample_draws: ClassVar[bool] = False

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, by name: enough to rebuild the same attack."""
        sig = inspect.signature(type(self).__init__)
        named = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return {p.name: getattr(self, p.name) for p in sig.parameters.values()
                if p.name != "self" and p.kind in named}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        threat: ThreatModel,
        *,
        target: torch.Tensor | None = None,
        generator: draws.Source | None = None,
    ) -> AttackResult:
        """Attack ``model`` on ``x`` (N, ...) with true labels ``y`` (N,) inside ``threat``.

        Args:
            target: (N,) class indices for a targeted attack; None for untargeted.
            generator: random source: a ``torch.Generator`` (seeds streams for samples
                0..N-1), or a :class:`~bastion.common.draws.SampleRandom` keyed by each
                sample's position in the data set (what the runner passes, so results do
                not depend on the batch size); None means seed 0.
        """
        if threat.norm not in self.norms:
            raise ConfigError(
                f"{self.name} supports norms {self.norms}, not {threat.norm!r}; "
                "pick another attack or norm."
            )
        if target is not None and target.shape != y.shape:
            raise ConfigError(f"target must have the shape of y {tuple(y.shape)}")
        device = model_device(model)
        x, y = x.to(device), _as_index(y, device)
        target = _as_index(target, device) if target is not None else None
        # Same passes, faster kernels: a CPU conv net runs channels-last while attacked
        # (a no-op inside an evaluation, which has laid the model out already).
        with channels_last(model, x[:8]), input_gradients_only(model):
            return self._run(model, x, y, threat, target,
                             self._source(generator, x.shape[0], device))

    def _source(self, generator: draws.Source | None, n: int,
                device: torch.device) -> draws.Source:
        """Per-sample streams for an attack that draws through them (its numbers then do
        not depend on the batch); a plain generator for one that does not."""
        if type(self).per_sample_draws:
            return per_sample(generator, n, device)
        if isinstance(generator, draws.SampleRandom):
            return torch.Generator(device=device).manual_seed(generator.batch_seed())
        return generator if generator is not None else torch.Generator(
            device=device).manual_seed(0)

    def _run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        threat: ThreatModel,
        target: torch.Tensor | None,
        generator: draws.Source,
    ) -> AttackResult:
        raise NotImplementedError  # pragma: no cover - every subclass implements it


@contextmanager
def input_gradients_only(model: nn.Module) -> Iterator[None]:
    """Within the block, ``model``'s parameters do not require gradients; restored after.

    Attacks differentiate with respect to the input alone. With the weights frozen,
    autograd records no edges to them, which took 6% off a forward+backward pass of
    Wong et al.'s MNIST net here (170 images, one thread); the gradients are the same.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    for param in trainable:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in trainable:
            param.requires_grad_(True)


def require_counts(attack: Attack, *names: str) -> None:
    """ConfigError unless each named parameter is an integer >= 1 (bools refused)."""
    for name in names:
        value = getattr(attack, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")


def require_loss(loss: str) -> None:
    """ConfigError unless ``loss`` is one of :data:`LOSSES`."""
    if loss not in LOSSES:
        raise ConfigError(f"loss must be one of {LOSSES}, got {loss!r}")


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer; CPU for parameter-free models."""
    for param in model.parameters():
        return param.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def _as_index(labels: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Integer labels of any width as int64 on ``device``: cross-entropy and gather need
    int64, while int32 or uint8 labels are valid input. Other dtypes pass unchanged."""
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        return labels.to(device)
    return labels.to(device=device, dtype=torch.long)


def is_success(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """(N,) bool: has the attack reached its goal on these logits (N, C)?"""
    pred = logits.argmax(dim=1)
    return pred == target if target is not None else pred != y


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample Carlini-Wagner margin (N,): best other logit minus the logit of ``y``.

    Positive exactly where the model does not predict ``y``.
    """
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.clone()
    others.scatter_(1, y[:, None], float("-inf"))
    return others.amax(dim=1) - true


def dlr_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Difference of logits ratio (Croce & Hein 2020), per sample (N,); to be ascended.

    Untargeted: (max_{i != y} z_i - z_y) / (z_(1) - z_(3)), with z_(k) the k-th largest
    logit. Targeted: (z_t - z_y) / (z_(1) - (z_(3) + z_(4)) / 2). Both are invariant to
    shifting and rescaling the logits, so saturated or scaled logits cannot hide the
    direction of attack the way they can for cross-entropy.
    """
    need = 3 if target is None else 4
    if logits.shape[1] < need:
        raise ConfigError(f"the DLR loss needs at least {need} classes, the model has "
                          f"{logits.shape[1]}; use loss='ce' or 'margin'")
    top = logits.topk(need, dim=1).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    if target is None:
        return margin_loss(logits, y) / (top[:, 0] - top[:, 2] + 1e-12)
    goal = logits.gather(1, target[:, None]).squeeze(1)
    return (goal - true) / (top[:, 0] - (top[:, 2] + top[:, 3]) / 2 + 1e-12)


LOSSES = ("ce", "margin", "dlr")


def attack_loss(
    logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, loss: str
) -> torch.Tensor:
    """Per-sample loss (N,) that the attack *ascends*.

    Untargeted: push away from ``y``; targeted: pull toward ``target``.
    """
    if loss == "ce":
        if target is None:
            return F.cross_entropy(logits, y, reduction="none")
        return -F.cross_entropy(logits, target, reduction="none")
    if loss == "margin":
        if target is None:
            return margin_loss(logits, y)
        return -margin_loss(logits, target)
    if loss == "dlr":
        return dlr_loss(logits, y, target)
    raise ConfigError(f"loss must be one of {LOSSES}, got {loss!r}")
