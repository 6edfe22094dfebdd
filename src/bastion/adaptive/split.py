"""The protocol by which a model exposes a non-differentiable input stage for BPDA.

A model follows it by having two attributes: ``preprocess`` (a callable taking inputs
(N, ...) to inputs of the same shape, e.g. quantization) and ``classifier`` (the
``nn.Module`` applied after it), with ``model(x) == classifier(preprocess(x))``.
:class:`bastion.zoo.broken.Preprocessed` is the ready-made wrapper that follows it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from bastion.errors import ConfigError

Transform = Callable[[torch.Tensor], torch.Tensor]


@runtime_checkable
class HasPreprocess(Protocol):
    """A model computing ``classifier(preprocess(x))`` that says so."""

    preprocess: Transform
    classifier: nn.Module


def split_model(model: nn.Module) -> tuple[Transform, nn.Module]:
    """``(preprocess, classifier)`` of a model that follows the protocol.

    Raises:
        ConfigError: the model has no callable ``preprocess`` or no ``nn.Module``
            ``classifier``; the message says how to provide them.
    """
    preprocess = getattr(model, "preprocess", None)
    classifier = getattr(model, "classifier", None)
    if callable(preprocess) and isinstance(classifier, nn.Module):
        return preprocess, classifier
    raise ConfigError(
        f"BPDA needs to know the model's non-differentiable input stage, but this "
        f"{type(model).__name__} has no callable .preprocess and nn.Module .classifier. "
        "Wrap it as bastion.zoo.broken.Preprocessed(preprocess, classifier) and attack "
        "that, or pass BPDA(preprocess=...) and give the attack the classifier alone")
