"""Differentiable stand-ins for defenses that hide their gradient.

- :class:`ExpectedModel`: the mean logits of several forwards of a randomized model, so
  one backward pass gives the gradient averaged over the draws (expectation over
  transformation, EOT: Athalye, Engstrom, Ilyas & Kwok, ICML 2018).
- :class:`StraightThrough`: ``classifier(preprocess(x))`` forward, with ``preprocess``
  treated as the identity (or as a given differentiable ``approx``) on the backward pass
  (backward pass differentiable approximation, BPDA: Athalye, Carlini & Wagner, ICML 2018).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bastion.errors import ConfigError

Transform = Callable[[torch.Tensor], torch.Tensor]


class ExpectedModel(nn.Module):
    """Mean of ``draws`` forward passes of ``model``: (N, ...) -> logits (N, C).

    Each draw is a separate call of ``model`` (not one call on a repeated batch), so a
    model that draws its randomness once per call still gets ``draws`` independent draws.
    The gradient of the mean is the mean of the per-draw gradients. For losses that are
    linear in the logits on a neighbourhood (the margin, and DLR up to its normaliser)
    attacking the mean logits is exactly EOT; for cross-entropy it is the common
    approximation (the loss of the mean, not the mean of the losses), which is what
    attacks on randomized defenses usually run and is good enough to find a direction.

    Cost: every forward of a batch of N is ``N * draws`` model forwards, and a backward
    through it ``N * draws`` backwards; :class:`bastion.attacks.adaptive.EOT` counts them so.
    """

    def __init__(self, model: nn.Module, draws: int) -> None:
        super().__init__()
        if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
            raise ConfigError(f"draws must be an integer >= 1, got {draws!r}")
        self.model = model
        self.draws = draws

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.model(x)
        for _ in range(self.draws - 1):
            total = total + self.model(x)
        return total / self.draws


class StraightThrough(nn.Module):
    """``classifier(preprocess(x))`` whose gradient skips ``preprocess``: (N, ...) -> (N, C).

    Forward: exactly ``classifier(preprocess(x))``. Backward: as if the model were
    ``classifier(approx(x))`` evaluated at the point ``preprocess(x)``, i.e. the input
    gradient is ``J_approx(x)^T · ∇classifier(preprocess(x))``; with ``approx=None`` the
    identity, so the gradient is the classifier's gradient at ``preprocess(x)``.

    Args:
        classifier: the differentiable model applied after ``preprocess``.
        preprocess: the (non-differentiable, possibly random) input transformation; it
            must keep the input's shape.
        approx: a differentiable function of the input, close to ``preprocess``
            (e.g. a smooth rounding), or None for the identity.
    """

    def __init__(self, classifier: nn.Module, preprocess: Transform,
                 approx: Transform | None = None) -> None:
        super().__init__()
        if not callable(preprocess):
            raise ConfigError(f"preprocess must be callable, got {type(preprocess).__name__}")
        if approx is not None and not callable(approx):
            raise ConfigError(f"approx must be callable or None, got {type(approx).__name__}")
        self.classifier = classifier
        self.preprocess = preprocess
        self.approx = approx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.approx(x) if self.approx is not None else x
        with torch.no_grad():
            p = self.preprocess(x)
        if p.shape != a.shape:
            raise ConfigError(
                f"preprocess maps inputs {tuple(x.shape)} to {tuple(p.shape)} and the "
                f"approximation gives {tuple(a.shape)}; BPDA needs both to keep one shape")
        # p + (a - a.detach()) has the value of p exactly (a - a.detach() is exactly 0),
        # and the gradient of a: the usual a + (p - a).detach() is off by a rounding error
        # in the forward value, which could flip a prediction sitting on a tie.
        return self.classifier(p + (a - a.detach()))
