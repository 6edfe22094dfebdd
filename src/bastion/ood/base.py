"""The detector protocol: ``fit(model, data)``, then ``score(x) -> (N,)``, higher = more anomalous.

A detector is configured only by its keyword-only constructor arguments (stored under the
same names, no logic in ``__init__``), so :meth:`Detector.get_params` rebuilds it. What
``fit`` learns is kept in attributes ending in ``_``. Subclasses implement
:meth:`Detector._fit` (statistics of the in-distribution data) and
:meth:`Detector._score_outputs` (a score from logits and features of one batch); the
base class validates inputs, batches and extracts features.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Self

import torch
from torch import nn

from bastion.data.base import Dataset
from bastion.errors import ConfigError, InputError, ModelError, StateError
from bastion.ood.features import PENULTIMATE, check_layer, logits_and_features

#: What ``fit`` accepts: a Dataset, an ``(x, y)`` pair, or bare inputs ``x``.
FitData = Dataset | tuple[torch.Tensor, torch.Tensor] | torch.Tensor


class Detector:
    """Base class of every out-of-distribution detector.

    Class attributes:
        name: registry name (``bastion ood --detectors``).
        needs_labels: ``fit`` uses class labels (bare ``x`` gets the model's predictions).
        smooth: the score has informative input gradients almost everywhere; when False
            the adaptive evaluation also attacks a smooth surrogate (:meth:`surrogate_score`).
    """

    name: ClassVar[str] = ""
    needs_labels: ClassVar[bool] = False
    smooth: ClassVar[bool] = True

    #: set by ``__init__`` of subclasses; read by the base class
    layer: str = PENULTIMATE
    batch_size: int = 512
    #: set by ``fit``
    model_: nn.Module
    input_shape_: tuple[int, ...]
    n_fit_: int
    n_classes_: int

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, by name: enough to rebuild the same (unfitted) detector."""
        sig = inspect.signature(type(self).__init__)
        return {p.name: getattr(self, p.name) for p in sig.parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- fitting -----------------------------------------------------------------------
    def fit(self, model: nn.Module, data: FitData) -> Self:
        """Learn in-distribution statistics of ``model`` on ``data``.

        Args:
            model: classifier in eval mode, (N, C, H, W) in [0, 1] -> logits (N, K).
            data: the training (in-distribution) data: a Dataset, ``(x, y)`` with x
                (N, C, H, W) and y (N,) int, or bare ``x`` (labels are then the model's
                predictions).
        Returns:
            self, fitted.
        """
        x, y = split_fit_data(data)
        _check_images(x, "fit data")
        if model.training:
            raise ModelError("the model is in training mode (dropout and batch-norm would make "
                             "scores random); call model.eval() before fit")
        check_layer(model, self.layer)
        self._check_params(len(x))
        logits, feats = self._extract(model, x)
        if y is None:
            y = logits.argmax(dim=1)
        elif y.shape != (len(x),):
            raise InputError(f"labels must have shape ({len(x)},) to match x; got "
                             f"{tuple(y.shape)}")
        self._fit(model, logits, feats, y.long().to(logits.device))
        # set last, so a failed fit leaves the detector unfitted
        self.model_ = model
        self.input_shape_ = tuple(int(d) for d in x.shape[1:])
        self.n_fit_ = len(x)
        self.n_classes_ = int(logits.shape[1])
        return self

    def _extract(self, model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        device = _device(model)
        logits, feats = [], []
        with torch.no_grad():
            for start in range(0, len(x), self.batch_size):
                lg, ft = logits_and_features(model, x[start:start + self.batch_size].to(device),
                                             self.layer)
                logits.append(lg)
                feats.append(ft)
        return torch.cat(logits), torch.cat(feats)

    def _check_params(self, n: int) -> None:
        """Validate constructor arguments against ``n`` fitting samples (override)."""

    def _fit(self, model: nn.Module, logits: torch.Tensor, feats: torch.Tensor,
             y: torch.Tensor) -> None:
        """Statistics from logits (N, K), features (N, D) and labels (N,) (override)."""

    # -- scoring -----------------------------------------------------------------------
    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly scores (N,) float32 on the CPU for inputs x (N, C, H, W); higher = more
        anomalous. Runs in batches of ``batch_size`` without keeping gradients."""
        self.check_inputs(x)
        out = []
        with torch.no_grad():
            for start in range(0, len(x), self.batch_size):
                batch = x[start:start + self.batch_size].to(_device(self.model_))
                out.append(self.differentiable_score(batch).float().cpu())
        return torch.cat(out)

    def differentiable_score(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (N,) of one batch with the autograd graph kept (for adaptive attacks)."""
        logits, feats = logits_and_features(self.model_, x, self.layer)
        return self._score_outputs(logits, feats)

    def surrogate_score(self, x: torch.Tensor) -> torch.Tensor:
        """A smooth stand-in for the score, attacked when ``smooth`` is False (override)."""
        return self.differentiable_score(x)

    def _score_outputs(self, logits: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check_inputs(self, x: torch.Tensor) -> None:
        """Raise a clear error when the detector is unfitted or ``x`` does not match the fit."""
        if not hasattr(self, "model_"):
            raise StateError(f"{type(self).__name__} is not fitted; call "
                             "fit(model, in_distribution_data) first")
        _check_images(x, "inputs")
        if tuple(x.shape[1:]) != self.input_shape_:
            raise InputError(
                f"inputs have shape {tuple(x.shape[1:])} per sample but the detector was fitted "
                f"on {self.input_shape_}; convert them first (e.g. grey-scale and resize, "
                "bastion.ood.sets.to_shape)"
            )


def split_fit_data(data: FitData) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(x, y)`` of fit data; y is None for bare inputs."""
    if isinstance(data, Dataset):
        return data.x, data.y
    if isinstance(data, torch.Tensor):
        return data, None
    if isinstance(data, tuple) and len(data) == 2:
        return data[0], torch.as_tensor(data[1])
    raise InputError(f"fit data must be a Dataset, an (x, y) pair or a tensor x; got "
                     f"{type(data).__name__}")


def _check_images(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise InputError(f"{what} must be a float tensor (N, C, H, W) in [0, 1]; got "
                         f"{getattr(x, 'dtype', type(x).__name__)}")
    if x.dim() < 2 or len(x) == 0:
        raise InputError(f"{what} must have a batch dimension and at least one sample; got "
                         f"shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise InputError(f"{what} contain NaN or infinite values; clean them first")


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


class LogitDetector(Detector):
    """A score of the logits alone, scaled by a temperature (MSP, energy): the shared
    constructor and its check."""

    def __init__(self, *, temperature: float = 1.0, layer: str = PENULTIMATE,
                 batch_size: int = 512) -> None:
        self.temperature = temperature
        self.layer = layer
        self.batch_size = batch_size

    def _check_params(self, n: int) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
