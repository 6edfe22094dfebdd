"""Adaptive attacks: EOT for randomized defenses, BPDA for non-differentiable ones.

Both wrap another attack (any registered gradient attack, a cascade, or each other) and
run it against a differentiable stand-in for the model, then check every point against
the real model:

- :class:`EOT` (expectation over transformation, Athalye, Engstrom, Ilyas & Kwok, ICML
  2018) attacks :class:`~bastion.adaptive.ExpectedModel`: the mean logits of ``draws``
  forwards, so each gradient is averaged over the model's randomness.
- :class:`BPDA` (backward pass differentiable approximation, Athalye, Carlini & Wagner,
  ICML 2018) attacks :class:`~bastion.adaptive.StraightThrough`: the model's own forward,
  with its non-differentiable input stage replaced by the identity (or ``approx``) on
  the backward pass. The model exposes that stage by having ``.preprocess`` and
  ``.classifier`` (:mod:`bastion.adaptive.split`), as
  :class:`bastion.zoo.broken.Preprocessed` does.

Success is decided by one fresh forward of the real model at the returned point (for a
randomized model: misclassified on that draw), so the stand-in can only steer the search,
never vouch for a result. To combine them on a defense that is both random and
non-differentiable, put BPDA outside: ``BPDA(attack=EOT(attack="pgd"))``.

The wrapper classes live here rather than in :mod:`bastion.adaptive` so that the attack
registry can import them without an import cycle (see that package's docstring).

Example:
    >>> EOT(attack=PGD(steps=40), draws=10).run(random_model, x, y, ThreatModel("Linf", 0.3))
    >>> BPDA(attack="pgd").run(zoo.load("broken-quantize"), x, y, ThreatModel("Linf", 0.3))
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from bastion.adaptive import ExpectedModel, StraightThrough, split_model
from bastion.attacks._wrapped import (
    AttackSpec,
    Transform,
    build_attack,
    describe_attack,
    describe_callable,
    resolve_callable,
    seeded_global_rng,
    verify,
)
from bastion.attacks.base import Attack, AttackResult, Passes, require_counts
from bastion.common import draws
from bastion.errors import ConfigError
from bastion.threat import NORMS, ThreatModel


class EOT(Attack):
    """Run ``attack`` against the mean of ``draws`` forwards of a randomized model.

    Args:
        attack: the inner attack: a registered name (``"pgd"``, its defaults), an
            :class:`Attack`, or ``{"name": "pgd", "steps": 40, ...}``.
        draws: forwards averaged per model evaluation; every forward and backward of the
            inner attack costs ``draws`` passes per sample.

    Cost: the inner attack's passes times ``draws``, plus one forward per sample to check
    the result on the real model.

    The inner attack should not stop at its first success: a point where the mean logits
    have just flipped is right on the boundary, and one fresh draw of the real model there
    often says the true class. On ``broken-random`` (Linf 0.3, 500 images) EOT-10 over
    PGD-40 leaves 50.2% robust with early stopping and 0.8% without. So an inner attack
    given by name or description is built with ``early_stop=False`` (where it has that
    parameter) unless the description sets it; an :class:`Attack` instance is used as is.
    """

    name = "eot"
    per_sample_draws = True
    norms = NORMS  # whatever the inner attack supports; it refuses the rest itself
    uses_gradients = True
    label_params = ("draws",)
    #: the constructor argument holding the inner attack (read by the command-line parser)
    inner_param: ClassVar[str] = "attack"

    def __init__(self, *, attack: AttackSpec = "pgd", draws: int = 20) -> None:
        self.attack = attack
        self.draws = draws

    def get_params(self) -> dict[str, Any]:
        return {"attack": describe_attack(self.attack), "draws": self.draws}

    def inner_attack(self) -> Attack:
        """The wrapped attack, built from its name or description if need be."""
        return build_attack(self.attack, self.name, defaults={"early_stop": False})

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
             target: torch.Tensor | None, generator: draws.Source) -> AttackResult:
        require_counts(self, "draws")
        inner = self.inner_attack()
        with seeded_global_rng(generator):
            res = inner.run(ExpectedModel(model, self.draws), x, y, threat, target=target,
                            generator=generator)
            x_adv, success = verify(model, res.x_adv, x, y, target, threat)
        passes = _scaled(res.passes, self.draws)
        passes.forward += x.shape[0]
        stages = {label: {**rep, "passes": _scaled(Passes(**rep["passes"]),
                                                   self.draws).to_dict()}
                  for label, rep in res.stages.items()}
        return AttackResult(x_adv=x_adv, success=success, passes=passes, stages=stages)


class BPDA(Attack):
    """Run ``attack`` with the model's non-differentiable input stage skipped on backward.

    Args:
        attack: the inner attack, as for :class:`EOT`.
        approx: a differentiable stand-in for the input stage on the backward pass (a
            function of x, or ``"package.module:function"``); None means the identity.
        preprocess: the input stage, for a model that does not expose ``.preprocess``
            and ``.classifier``. Then the model given to :meth:`run` is taken to be the
            classifier *behind* ``preprocess``, and success is checked on
            ``model(preprocess(x_adv))``. The evaluation runner measures the model it is
            given, so there pass ``bastion.zoo.broken.Preprocessed(preprocess, model)``
            instead and leave this None.

    Cost: the inner attack's passes (one classifier pass per model pass), plus one
    forward per sample to check the result on the real model.
    """

    name = "bpda"
    per_sample_draws = True
    norms = NORMS
    uses_gradients = True
    label_params = ()
    inner_param: ClassVar[str] = "attack"

    def __init__(self, *, attack: AttackSpec = "pgd", approx: Transform | str | None = None,
                 preprocess: Transform | str | None = None) -> None:
        self.attack = attack
        self.approx = approx
        self.preprocess = preprocess

    def get_params(self) -> dict[str, Any]:
        return {"attack": describe_attack(self.attack),
                "approx": describe_callable(self.approx),
                "preprocess": describe_callable(self.preprocess)}

    def inner_attack(self) -> Attack:
        """The wrapped attack, built from its name or description if need be."""
        return build_attack(self.attack, self.name)

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
             target: torch.Tensor | None, generator: draws.Source) -> AttackResult:
        inner = self.inner_attack()
        approx = resolve_callable(self.approx, "approx")
        preprocess, classifier, real = self._split(model)
        surrogate = StraightThrough(classifier, preprocess, approx)
        with seeded_global_rng(generator):
            res = inner.run(surrogate, x, y, threat, target=target, generator=generator)
            x_adv, success = verify(real, res.x_adv, x, y, target, threat)
        passes = Passes(res.passes.forward + x.shape[0], res.passes.backward)
        return AttackResult(x_adv=x_adv, success=success, passes=passes, stages=res.stages)

    def _split(self, model: nn.Module) -> tuple[Transform, nn.Module, Transform]:
        """(preprocess, classifier, the real model's forward)."""
        given = resolve_callable(self.preprocess, "preprocess")
        if given is None:
            preprocess, classifier = split_model(model)
            return preprocess, classifier, model
        if callable(getattr(model, "preprocess", None)):
            raise ConfigError(
                "BPDA got preprocess= and a model that has its own .preprocess; either "
                "leave preprocess=None to use the model's, or give the attack the "
                "classifier alone")

        def real(x: torch.Tensor) -> torch.Tensor:
            return model(given(x))

        return given, model, real


def _scaled(passes: Passes, factor: int) -> Passes:
    return Passes(forward=passes.forward * factor, backward=passes.backward * factor)
