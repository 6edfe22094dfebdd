"""Adaptive-attack building blocks: models that give gradient attacks a usable gradient.

Where things live, and why:

- here, :class:`ExpectedModel` (average over a randomized model's draws, for EOT) and
  :class:`StraightThrough` (a non-differentiable input stage replaced by the identity or
  an approximation on the backward pass, for BPDA), plus the small protocol a model
  follows to expose that stage (:func:`split_model`). These are plain ``nn.Module``
  wrappers that depend on torch alone.
- the *attacks* that use them, :class:`~bastion.attacks.adaptive.EOT` and
  :class:`~bastion.attacks.adaptive.BPDA`, live in :mod:`bastion.attacks.adaptive` next to
  every other attack and are registered there (``eot``, ``bpda``). Keeping them out of this
  package breaks what would otherwise be an import cycle (``bastion.attacks`` registers
  them, and they are built on ``bastion.attacks.base``); import them from
  ``bastion.attacks`` or ``bastion``.

>>> from bastion import EOT, BPDA, PGD
>>> EOT(attack=PGD(steps=40), draws=10)      # a randomized defense
>>> BPDA(attack="pgd")                       # a model exposing .preprocess/.classifier
"""

from __future__ import annotations

from bastion.adaptive.split import HasPreprocess, split_model
from bastion.adaptive.wrappers import ExpectedModel, StraightThrough

__all__ = ["ExpectedModel", "HasPreprocess", "StraightThrough", "split_model"]
