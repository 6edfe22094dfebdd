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

from bastion.errors import ConfigError

NORMS = ("Linf", "L2")


@dataclass(frozen=True)
class ThreatModel:
    """An Lp ball of radius ``eps`` around each input, clipped to ``bounds``.

    Args:
        norm: ``"Linf"`` (max absolute change per pixel) or ``"L2"`` (Euclidean length of
            the whole perturbation, per sample).
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
        return flat.norm(p=2, dim=1)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Map ``x_adv`` (N, ...) into the ball of radius eps around ``x`` and into bounds.

        For Linf the result is the exact Euclidean projection onto ball ∩ box (both are
        boxes). For L2 the ball is projected first and then clipped; the result always lies
        in both sets (clipping toward ``x`` never leaves the ball, since x is in the box).
        """
        delta = x_adv - x
        if self.norm == "Linf":
            delta = delta.clamp(-self.eps, self.eps)
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

    def random_point(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A uniformly random point of the ball around each sample, clipped to bounds."""
        if self.norm == "Linf":
            noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            delta = (2 * noise - 1) * self.eps
        else:
            direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            direction = direction / direction.flatten(1).norm(dim=1).clamp_min(1e-12).view(
                -1, *([1] * (x.dim() - 1))
            )
            dim = x[0].numel()
            u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
            radius = self.eps * u.pow(1.0 / dim)
            delta = direction * radius.view(-1, *([1] * (x.dim() - 1)))
        return self.clip(x + delta)

    def to_dict(self) -> dict[str, object]:
        return {"norm": self.norm, "eps": self.eps, "bounds": list(self.bounds)}
