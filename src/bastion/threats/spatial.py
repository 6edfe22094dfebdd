"""Spatial threat model: rotations and translations within a budget (Engstrom et al.,
"Exploring the landscape of spatial robustness", ICML 2019).

A :class:`SpatialThreat` allows any rotation by at most ``max_angle`` degrees about the
image centre combined with any shift of at most ``max_shift`` pixels along each axis.
Images are resampled bilinearly (``affine_grid`` / ``grid_sample``); pixels brought in
from outside the image take the lower bound (black, for MNIST).

Two attacks search it, each per sample and reported as worst-case accuracy (a sample
counts robust only if the model is right under every transform tried):

- :func:`grid_attack`: every combination of ``angles`` rotations and integer shifts, the
  exhaustive search the paper found strongest;
- :func:`first_order_attack`: signed-gradient ascent on (angle, dx, dy) through the
  differentiable warp, from random starts.

Example:
    >>> threat = SpatialThreat(max_angle=30, max_shift=3)
    >>> fooled, params = grid_attack(model, x, y, threat)   # params (N, 3): deg, px, px
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bastion.errors import ConfigError


@dataclass(frozen=True)
class SpatialThreat:
    """Rotations up to ``max_angle`` degrees and shifts up to ``max_shift`` pixels per axis.

    Args:
        max_angle: largest rotation either way, degrees (0..180).
        max_shift: largest shift along x and along y, pixels (>= 0).
        bounds: valid input range; the value outside the image is ``bounds[0]``.
    """

    max_angle: float = 30.0
    max_shift: float = 3.0
    bounds: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if not 0 <= self.max_angle <= 180:
            raise ConfigError(f"max_angle must be in [0, 180] degrees, got {self.max_angle!r}")
        if not self.max_shift >= 0:
            raise ConfigError(f"max_shift must be >= 0 pixels, got {self.max_shift!r}")

    @classmethod
    def parse(cls, text: str) -> SpatialThreat:
        """``"30deg-3px"`` -> SpatialThreat(max_angle=30, max_shift=3)."""
        match = re.fullmatch(r"\s*([0-9.]+)deg-([0-9.]+)px\s*", text)
        if match is None:
            raise ConfigError(f"a spatial budget reads like 30deg-3px, got {text!r}")
        return cls(max_angle=float(match[1]), max_shift=float(match[2]))

    def label(self) -> str:
        return f"spatial {self.max_angle:g}deg-{self.max_shift:g}px"

    def clamp(self, params: torch.Tensor) -> torch.Tensor:
        """Params (N, 3) = (angle deg, dx px, dy px) clipped to the budget."""
        limit = params.new_tensor([self.max_angle, self.max_shift, self.max_shift])
        return torch.maximum(torch.minimum(params, limit), -limit)

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """``x`` (N, C, H, W) rotated by params[:, 0] degrees (counter-clockwise) and shifted
        by params[:, 1:] pixels (right, down); differentiable in both."""
        h, w = x.shape[2], x.shape[3]
        theta = params[:, 0] * (math.pi / 180)
        cos, sin = torch.cos(theta), torch.sin(theta)
        # affine_grid maps output to input coordinates in [-1, 1] units; a shift of d
        # pixels is 2 d / size in those units, and moving content right samples from left.
        tx, ty = -params[:, 1] * 2 / w, -params[:, 2] * 2 / h
        mat = torch.stack([torch.stack([cos, sin * h / w, tx], 1),
                           torch.stack([-sin * w / h, cos, ty], 1)], 1)
        grid = F.affine_grid(mat.to(x.dtype), list(x.shape), align_corners=False)
        low = self.bounds[0]
        out = F.grid_sample(x - low, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
        return out + low


def grid_params(threat: SpatialThreat, angles: int = 13) -> torch.Tensor:
    """(K, 3) every combination of ``angles`` evenly spaced rotations (ends included) and
    integer shifts in [-max_shift, max_shift] per axis; the identity comes first."""
    rot = torch.linspace(-threat.max_angle, threat.max_angle, angles) if angles > 1 \
        else torch.zeros(1)
    top = math.floor(threat.max_shift)
    shifts = torch.arange(-top, top + 1, dtype=torch.float32)
    grid = torch.cartesian_prod(rot, shifts, shifts)
    order = grid.abs().sum(1).argsort(stable=True)  # identity (all zeros) first
    return grid[order]


def grid_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: SpatialThreat,
                *, angles: int = 13, batch: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Try every transform of :func:`grid_params` on every sample.

    Returns (fooled (N,) bool, params (N, 3) of the first transform that fooled the model,
    or of the one with the lowest true-class margin where none did). Costs K forwards per
    sample (K = angles * (2 floor(max_shift) + 1)^2).
    """
    if angles < 1:
        raise ConfigError(f"angles must be >= 1, got {angles}")
    candidates = grid_params(threat, angles).to(x.device, x.dtype)
    fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    best = torch.zeros(x.shape[0], 3, device=x.device, dtype=x.dtype)
    worst_margin = torch.full((x.shape[0],), float("inf"), device=x.device)
    with torch.no_grad():
        for i in range(x.shape[0]):
            reps = x[i:i + 1].expand(min(batch, len(candidates)), *x.shape[1:])
            for start in range(0, len(candidates), batch):
                params = candidates[start:start + batch]
                logits = model(threat.apply(reps[:len(params)], params))
                margin = _margin(logits, y[i].expand(len(params)))
                j = int(margin.argmin())
                if float(margin[j]) < float(worst_margin[i]):
                    worst_margin[i], best[i] = margin[j], params[j]
                if float(margin[j]) < 0:
                    fooled[i] = True
                    break
    return fooled, best


def first_order_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       threat: SpatialThreat, *, steps: int = 20, restarts: int = 2,
                       generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed-gradient ascent on the margin loss over (angle, dx, dy), step 1/4 of each
    budget, from the identity and then from ``restarts - 1`` random transforms.

    Returns (fooled (N,) bool, params (N, 3)), as :func:`grid_attack`. Costs
    ``restarts * (steps + 1)`` forward and ``restarts * steps`` backward passes per sample.
    """
    if steps < 1 or restarts < 1:
        raise ConfigError(f"steps and restarts must be >= 1, got {steps}, {restarts}")
    gen = generator or torch.Generator(device=x.device).manual_seed(0)
    n = x.shape[0]
    scale = torch.tensor([threat.max_angle, threat.max_shift, threat.max_shift],
                         device=x.device, dtype=x.dtype)
    fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
    best = torch.zeros(n, 3, device=x.device, dtype=x.dtype)
    for restart in range(restarts):
        u = torch.rand((n, 3), generator=gen, device=x.device, dtype=x.dtype)
        params = (2 * u - 1) * scale if restart > 0 else torch.zeros_like(u)
        for _ in range(steps):
            p = params.detach().requires_grad_(True)
            with torch.enable_grad():
                loss = -_margin(model(threat.apply(x, p)), y)
                (grad,) = torch.autograd.grad(loss.sum(), p)
            params = threat.clamp(params + scale / 4 * grad.sign())
        with torch.no_grad():
            now = _margin(model(threat.apply(x, params)), y) < 0
        new = now & ~fooled
        best[new] = params[new].detach()
        fooled |= now
    return fooled, best


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) true-class logit minus the best other: negative exactly when misclassified."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return true - others.amax(1)
