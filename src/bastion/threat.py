"""Threat models: the set of perturbations an attacker may choose from.

A :class:`ThreatModel` is the ball ``{x' : ||x' - x||_p <= eps}`` intersected with the box
``bounds`` (the valid input range, by default ``[0, 1]`` per pixel). Attacks search inside it;
:meth:`ThreatModel.project` maps any point back into it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from bastion.common import draws
from bastion.errors import ConfigError

NORMS = ("Linf", "L2", "L1")


@dataclass(frozen=True)
class ThreatModel:
    """An Lp ball of radius ``eps`` around each input, clipped to ``bounds``.

    Args:
        norm: ``"Linf"`` (max absolute change per pixel), ``"L2"`` (Euclidean length of
            the whole perturbation, per sample) or ``"L1"`` (sum of absolute changes per
            sample: a budget that favours few, large pixel changes).
        eps: radius of the ball, in input units (for images in [0, 1], eps=0.3 under Linf
            means each pixel may move by 0.3).
        bounds: ``(low, high)`` valid input range; perturbed inputs are clipped to it.

    Example:
        >>> t = ThreatModel(norm="Linf", eps=0.3)
        >>> x_adv = t.project(x_adv, x)   # inside the ball and in [0, 1]
    """

    norm: str = "Linf"
    eps: float = 0.3
    bounds: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            hint = ""
            if isinstance(self.norm, str) and self.norm.lower() in ("inf", "linf", "l_inf"):
                hint = ' Did you mean "Linf"?'
            elif isinstance(self.norm, str) and self.norm.lower() in ("2", "l2", "l_2"):
                hint = ' Did you mean "L2"?'
            elif isinstance(self.norm, str) and self.norm.lower() in ("1", "l1", "l_1"):
                hint = ' Did you mean "L1"?'
            raise ConfigError(f"norm must be one of {NORMS}, got {self.norm!r}.{hint}")
        eps = self.eps
        # numbers.Real also admits NumPy scalars such as np.float32(0.3).
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
            raise ConfigError(f"eps must be a number, got {type(eps).__name__} {eps!r}")
        if not math.isfinite(eps) or eps < 0:
            raise ConfigError(f"eps must be a finite number >= 0, got {eps!r}")
        bounds = self.bounds
        if (not isinstance(bounds, tuple | list) or len(bounds) != 2
                or not all(isinstance(b, numbers.Real) for b in bounds)):
            raise ConfigError(f"bounds must be (low, high), got {bounds!r}")
        low, high = bounds
        if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
            raise ConfigError(f"bounds must be finite with low < high, got {self.bounds!r}")
        if self.norm == "Linf" and eps > high - low:
            raise ConfigError(
                f"eps={eps} under Linf exceeds the input range {self.bounds}; every input could "
                "be replaced entirely. Inputs are expected in bounds: rescale them (e.g. divide "
                "pixels by 255) or pass an eps in the same units."
            )
        object.__setattr__(self, "eps", float(eps))
        object.__setattr__(self, "bounds", (float(low), float(high)))

    def with_eps(self, eps: float) -> ThreatModel:
        """The same threat model with another radius."""
        return ThreatModel(norm=self.norm, eps=eps, bounds=self.bounds)

    def clip(self, x: torch.Tensor) -> torch.Tensor:
        """Clip ``x`` to ``bounds``."""
        return x.clamp(self.bounds[0], self.bounds[1])

    def norm_of(self, delta: torch.Tensor) -> torch.Tensor:
        """Per-sample size of a perturbation ``delta`` (N, ...) -> (N,)."""
        flat = delta.flatten(1)
        if self.norm == "Linf":
            return flat.abs().amax(dim=1)
        if self.norm == "L1":
            return flat.abs().sum(dim=1)
        return flat.norm(p=2, dim=1)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Map ``x_adv`` (N, ...) into the ball of radius eps around ``x`` and into bounds.

        For Linf the result is the exact Euclidean projection onto ball ∩ box (both are
        boxes). For L1 it is exact too (:func:`project_l1_box`). For L2 the ball is
        projected first and then clipped; the result always lies in both sets (clipping
        toward ``x`` never leaves the ball, since x is in the box).
        """
        delta = x_adv - x
        if self.norm == "Linf":
            delta = delta.clamp(-self.eps, self.eps)
        elif self.norm == "L1":
            return x + project_l1_box(delta, x, self.eps, self.bounds)
        else:
            size = delta.flatten(1).norm(p=2, dim=1).clamp_min(1e-12)
            factor = (self.eps / size).clamp(max=1.0)
            delta = delta * factor.view(-1, *([1] * (delta.dim() - 1)))
        return self.clip(x + delta)

    def contains(self, x_adv: torch.Tensor, x: torch.Tensor, tol: float = 1e-5) -> torch.Tensor:
        """Per-sample bool (N,): is ``x_adv`` inside the ball and the bounds (up to ``tol``)?"""
        in_ball = self.norm_of(x_adv - x) <= self.eps + tol
        flat = x_adv.flatten(1)
        in_box = (flat >= self.bounds[0] - tol).all(1) & (flat <= self.bounds[1] + tol).all(1)
        return in_ball & in_box

    def random_point(self, x: torch.Tensor, generator: draws.Source) -> torch.Tensor:
        """A uniformly random point of the ball around each sample, clipped to bounds."""
        if self.norm == "Linf":
            noise = draws.rand(generator, x.shape, device=x.device, dtype=x.dtype)
            delta = (2 * noise - 1) * self.eps
        elif self.norm == "L1":
            # Uniform in the L1 ball: Laplace draws normalised to the sphere, radius
            # eps * u^(1/dim) (the ball's volume grows as r^dim).
            exp = -draws.rand(generator, x.shape, device=x.device,
                              dtype=x.dtype).clamp_min(1e-12).log()
            sign = draws.randint(generator, 0, 2, x.shape, device=x.device)
            direction = exp * (2 * sign.to(x.dtype) - 1)
            direction = direction / direction.flatten(1).abs().sum(1).clamp_min(1e-12).view(
                -1, *([1] * (x.dim() - 1)))
            u = draws.rand(generator, (x.shape[0],), device=x.device, dtype=x.dtype)
            radius = self.eps * u.pow(1.0 / x[0].numel())
            delta = direction * radius.view(-1, *([1] * (x.dim() - 1)))
        else:
            direction = draws.randn(generator, x.shape, device=x.device, dtype=x.dtype)
            direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(
                -1, *([1] * (x.dim() - 1))
            )
            dim = x[0].numel()
            u = draws.rand(generator, (x.shape[0],), device=x.device, dtype=x.dtype)
            radius = self.eps * u.pow(1.0 / dim)
            delta = direction * radius.view(-1, *([1] * (x.dim() - 1)))
        return self.clip(x + delta)

    def to_dict(self) -> dict[str, object]:
        return {"norm": self.norm, "eps": self.eps, "bounds": list(self.bounds)}


def project_l1_box(delta: torch.Tensor, x: torch.Tensor, eps: float,
                   bounds: tuple[float, float]) -> torch.Tensor:
    """Exact Euclidean projection of ``delta`` (N, ...) onto
    ``{d : ||d||_1 <= eps, low <= x + d <= high}``, per sample; ``x`` (N, ...) in bounds.

    The KKT conditions give ``d_i = sign(v_i) * min(max(|v_i| - lam, 0), b_i)``, with
    ``b_i`` the room to the bound that ``v_i`` points at, and ``lam >= 0`` the smallest
    level whose L1 size is at most ``eps``. That size ``g(lam)`` is piecewise linear and
    non-increasing, with kinks at ``|v_i| - b_i`` (slope -1 more) and ``|v_i|`` (slope back
    +1); sorting the kinks and summing slopes gives ``g`` at every kink, and ``lam``
    follows exactly by linear interpolation inside the segment where ``g`` crosses eps
    (Duchi et al. 2008's sort-based projection, extended to the box). Computed in
    float64; cost O(D log D) per sample for D values.
    """
    low, high = bounds
    shape = delta.shape
    v = delta.flatten(1).to(torch.float64)
    x64 = x.flatten(1).to(torch.float64)
    room = torch.where(v > 0, high - x64, x64 - low).clamp_min(0)
    a = v.abs()
    inside = torch.minimum(a, room).sum(1) <= eps
    kinks = torch.cat([a - room, a], dim=1)
    slope_change = torch.cat([-torch.ones_like(a), torch.ones_like(a)], dim=1)
    kinks, order = kinks.sort(dim=1)
    slope = slope_change.gather(1, order).cumsum(1)  # slope of g right of each kink
    widths = kinks[:, 1:] - kinks[:, :-1]
    # g at the first kink is sum(room) (every coordinate saturated); walk right from it.
    g = torch.cat([room.sum(1, keepdim=True),
                   room.sum(1, keepdim=True) + (slope[:, :-1] * widths).cumsum(1)], dim=1)
    g[:, -1] = 0.0  # exactly: every coordinate is thresholded away (no rounding residue)
    # First kink where g has fallen to eps; g is 0 at the last kink, so one exists.
    first = (g <= eps).to(torch.int64).argmax(dim=1, keepdim=True).clamp_min(1)
    left = first - 1
    g_left, k_left = g.gather(1, left), kinks.gather(1, left)
    s_left = slope.gather(1, left)
    lam = k_left + (g_left - eps) / (-s_left).clamp_min(1e-300)
    lam = torch.where(inside[:, None], torch.zeros_like(lam), lam.clamp_min(0))
    d = torch.sign(v) * torch.minimum((a - lam).clamp_min(0), room)
    return d.to(delta.dtype).view(shape)
