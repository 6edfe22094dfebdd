"""Deliberately broken defenses: models that *look* robust to a naive attack and are not.

Each wraps a standard-trained classifier (in the registry: ``mnist-smallcnn-std``) in one
of the three ways of masking gradients described by Athalye, Carlini & Wagner (ICML 2018),
so that diagnostics and adaptive attacks can be tested on something known to be broken:

- :func:`quantized` — *shattered* gradients: inputs rounded to a few grey levels
  (:class:`Quantize`); autograd gives exactly zero. Broken by BPDA.
- :func:`randomized` — *stochastic* gradients: a random resize and zero-pad plus noise on
  every forward (:class:`RandomResizePad`, after Xie et al., ICLR 2018). Broken by EOT.
- :func:`saturated` — *vanishing* gradients: logits multiplied by a huge constant
  (:class:`Scaled`), so the float32 cross-entropy is exactly 0 with a zero gradient on
  correctly classified points. Broken by a margin or DLR loss, or by Square.

None of them is a defense to use; the numbers they give under a naive attack are wrong on
purpose. Inputs are images (N, C, H, W) in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bastion.errors import ConfigError

Transform = Callable[[torch.Tensor], torch.Tensor]

#: grey levels of broken-quantize. Not 2: binarizing MNIST at 0.5 gives some genuine
#: robustness at Linf 0.3 (BPDA-PGD-40 left 82% of the first 200 test images robust),
#: while from 4 levels on BPDA-PGD-40 leaves 0%, as on the undefended model; 16 keeps the
#: image closest to the original (clean accuracy unchanged).
QUANTIZE_LEVELS = 16
#: smallest side broken-random shrinks a 28x28 image to, and its Gaussian noise (input
#: units). Measured on the first 500 test images (mnist-smallcnn-std): min size 20 costs
#: 10 points of clean accuracy, 24-25 keep it at 96.5-98%; noise 0.3 brings it to ~95%.
RANDOM_MIN_SIZE = 25
RANDOM_NOISE = 0.1
#: the factor broken-saturate multiplies the logits by: with logit margins of ~10, the
#: float32 softmax of a correct point is then exactly one-hot.
SATURATE_SCALE = 1e4


class Preprocessed(nn.Module):
    """``classifier(preprocess(x))``, exposing both parts for BPDA.

    Follows :mod:`bastion.adaptive.split`'s protocol: ``.preprocess`` (a callable keeping
    the input's shape) and ``.classifier`` (an ``nn.Module``). An ``nn.Module``
    preprocess is registered as a sub-module, so ``.to(device)`` and ``.eval()`` reach it.
    """

    def __init__(self, preprocess: Transform, classifier: nn.Module) -> None:
        super().__init__()
        if not callable(preprocess):
            raise ConfigError(f"preprocess must be callable, got {type(preprocess).__name__}")
        if not isinstance(classifier, nn.Module):
            raise ConfigError(f"classifier must be a torch.nn.Module, got "
                              f"{type(classifier).__name__}")
        self.preprocess = preprocess
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.preprocess(x))


class Quantize(nn.Module):
    """Round inputs in [0, 1] to ``levels`` evenly spaced grey levels: (N, ...) -> same.

    ``torch.round`` has a zero derivative everywhere, so every input gradient through
    this module is exactly 0.
    """

    def __init__(self, levels: int = QUANTIZE_LEVELS) -> None:
        super().__init__()
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
            raise ConfigError(f"levels must be an integer >= 2, got {levels!r}")
        self.levels = levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.levels - 1
        return torch.round(x.clamp(0.0, 1.0) * steps) / steps

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


class RandomResizePad(nn.Module):
    """Per sample, shrink the image to a random ``r x r`` (``min_size <= r <= H``), place it
    at a random integer offset on a zero canvas of the original size, add Gaussian noise
    of standard deviation ``noise`` and clip to [0, 1]: (N, C, H, W) -> (N, C, H, W).

    Square images only. A fresh draw on every forward, from torch's global random state
    (so seeding it, as the adaptive attacks and the probe do, makes runs reproducible).
    Differentiable almost everywhere: the randomness, not the gradient, is what hides
    the direction of attack.
    """

    def __init__(self, min_size: int = RANDOM_MIN_SIZE, noise: float = RANDOM_NOISE) -> None:
        super().__init__()
        if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
            raise ConfigError(f"min_size must be an integer >= 1, got {min_size!r}")
        if not noise >= 0:
            raise ConfigError(f"noise must be >= 0, got {noise!r}")
        self.min_size = min_size
        self.noise = noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[2] != x.shape[3]:
            raise ConfigError(f"RandomResizePad takes square images (N, C, H, H), got "
                              f"{tuple(x.shape)}")
        n, side = x.shape[0], x.shape[2]
        if self.min_size > side:
            raise ConfigError(f"min_size {self.min_size} is larger than the images ({side})")
        size = torch.randint(self.min_size, side + 1, (n,), device=x.device)
        top = (torch.rand(n, device=x.device) * (side - size + 1)).floor()
        left = (torch.rand(n, device=x.device) * (side - size + 1)).floor()
        # affine_grid maps each output pixel to the input point it samples, in [-1, 1]
        # coordinates: the image shrunk by s = r / side, its left edge `left` pixels in.
        s = size.to(x.dtype) / side
        tx = -1 + (2 * left.to(x.dtype) + size) / side
        ty = -1 + (2 * top.to(x.dtype) + size) / side
        theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
        theta[:, 0, 0], theta[:, 0, 2] = 1 / s, -tx / s
        theta[:, 1, 1], theta[:, 1, 2] = 1 / s, -ty / s
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
        if self.noise > 0:
            out = (out + self.noise * torch.randn_like(out)).clamp(0.0, 1.0)
        return out

    def extra_repr(self) -> str:
        return f"min_size={self.min_size}, noise={self.noise}"


class Scaled(nn.Module):
    """``model(x) * scale``: logits (N, C) scaled by a constant.

    Predictions do not change; with a huge ``scale`` the float32 softmax of a correctly
    classified point is exactly one-hot, so its cross-entropy and gradient are 0.
    """

    def __init__(self, model: nn.Module, scale: float = SATURATE_SCALE) -> None:
        super().__init__()
        if not scale > 0:
            raise ConfigError(f"scale must be > 0, got {scale!r}")
        self.model = model
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.scale


def quantized(model: nn.Module, levels: int = QUANTIZE_LEVELS) -> Preprocessed:
    """broken-quantize: ``model`` behind :class:`Quantize` (shattered gradients)."""
    return Preprocessed(Quantize(levels), model)


def randomized(model: nn.Module, min_size: int = RANDOM_MIN_SIZE,
               noise: float = RANDOM_NOISE) -> Preprocessed:
    """broken-random: ``model`` behind :class:`RandomResizePad` (stochastic gradients)."""
    return Preprocessed(RandomResizePad(min_size, noise), model)


def saturated(model: nn.Module, scale: float = SATURATE_SCALE) -> Scaled:
    """broken-saturate: ``model``'s logits times ``scale`` (vanishing gradients)."""
    return Scaled(model, scale)
