"""``certify(model, x, y, threat, method=...) -> Certificate``: one entry point, five methods.

=========== ===================================================== ======================
method      what is certified                                     cost per sample
=========== ===================================================== ======================
ibp         margins > 0 on the whole ball, deterministic          ~2 forward passes
crown-ibp   same, CROWN backward pass with IBP intermediates      ~K backward passes
crown       same, full CROWN on two chains, max with IBP          2 per unstable neuron
alpha-crown same, ReLU slopes of every layer optimised by Adam    ~60 full-CROWN passes
smoothing   the *smoothed* classifier is constant on an L2 ball,  n0 + n forward passes
            with probability >= 1 - alpha
=========== ===================================================== ======================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from bastion.attacks.base import model_device
from bastion.certify import smoothing as smoothing_mod
from bastion.certify.alpha import alpha_crown_margins
from bastion.certify.bounds import Network, compile_network, ibp_margins, interval_bounds
from bastion.certify.budget import DEFAULT_MAX_MEMORY_MB, budget_floats
from bastion.certify.crown import crown_margins
from bastion.errors import CapabilityError, ConfigError
from bastion.evaluation.backoff import run_in_batches
from bastion.evaluation.checks import check_inputs
from bastion.threat import ThreatModel

METHODS = ("ibp", "crown", "crown-ibp", "alpha-crown", "smoothing")


@dataclass(frozen=True)
class SmoothingConfig:
    """Randomized-smoothing parameters (Cohen et al. 2019): noise level ``sigma`` (input
    units), ``n0`` samples to pick the class, ``n`` samples to bound its probability,
    failure probability ``alpha``, and ``batch`` noisy inputs per forward pass."""

    sigma: float = 0.25
    n0: int = 100
    n: int = 10_000
    alpha: float = 0.001
    batch: int = 1000


@dataclass
class Certificate:
    """What a certifier proved, per sample.

    Attributes:
        certified: (N,) bool; bound methods: every margin lower bound > 0 on the ball.
            Smoothing: the smoothed class is y and its L2 radius > threat.eps.
        lower, upper: (N, K-1) bounds on the margins ``z_y - z_j`` (j != y, ascending),
            bound methods only; ``upper`` is IBP's unless ``upper_by_crown``.
        radius: (N,) certified L2 radius of the smoothed classifier (smoothing only; 0
            where it abstains or predicts another class than y).
        abstained: (N,) bool, smoothing only.
        predicted: (N,) smoothed class, -1 where abstaining (smoothing only).
    """

    method: str
    threat: ThreatModel
    certified: torch.Tensor
    lower: torch.Tensor | None = None
    upper: torch.Tensor | None = None
    radius: torch.Tensor | None = None
    abstained: torch.Tensor | None = None
    predicted: torch.Tensor | None = None
    forward_passes: int = field(default=0)

    def certified_at(self, eps: float) -> torch.Tensor:
        """(N,) bool at another L2 radius; from a smoothing certificate's radii only.

        Strict: the guarantee covers ||δ||_2 < radius, so radius must exceed eps.
        """
        if self.radius is None:
            raise CapabilityError("a bound certificate holds for its own eps only; certify "
                                  "again with threat.with_eps(eps)")
        return self.radius > eps


def margin_bounds(net: Network, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                  method: str, *, upper_by_crown: bool = True,
                  max_memory_mb: float = DEFAULT_MAX_MEMORY_MB
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper margin bounds (N, K-1) of a compiled network, by ``method``.

    ``upper_by_crown=False`` skips CROWN's upper bounds (half the last backward pass):
    the upper bounds are then IBP's, sound but looser; certification reads only lower.
    ``max_memory_mb``: budget of one chunk of CROWN's specification rows (see
    :mod:`bastion.certify.budget`); it changes how much is held at once, not the bounds.
    """
    chunk = budget_floats(max_memory_mb, x.dtype)
    bounds = interval_bounds(net, x, threat)
    ibp = ibp_margins(net, x, y, threat, bounds)
    if method == "ibp":
        return ibp
    if method == "alpha-crown":
        lower = alpha_crown_margins(net, x, y, threat, bounds=bounds, chunk_floats=chunk)
        return torch.maximum(lower, ibp[0]), ibp[1]
    lower, upper = crown_margins(net, x, y, threat, bounds=bounds,
                                 intermediate="ibp" if method == "crown-ibp" else "crown",
                                 upper=upper_by_crown, chunk_floats=chunk)
    # Both are sound, so their elementwise best is: CROWN's adaptive slopes are not
    # tighter than IBP on every margin of every sample.
    return torch.maximum(lower, ibp[0]), torch.minimum(upper, ibp[1])


def certify(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *,
            method: str = "crown", batch_size: int = 64, upper_by_crown: bool = False,
            max_memory_mb: float = DEFAULT_MAX_MEMORY_MB,
            smoothing: SmoothingConfig | None = None,
            generator: torch.Generator | None = None) -> Certificate:
    """Certify ``model`` on inputs x (N, *in) in ``threat.bounds`` with labels y (N,).

    Args:
        method: one of :data:`METHODS` (see the module docstring).
        batch_size: samples bounded at once (bound methods).
        upper_by_crown: CROWN methods also bound the margins from above by CROWN (one
            more backward pass per margin); by default ``upper`` holds IBP's upper
            bounds, which are sound but looser (certification reads only ``lower``).
        smoothing: parameters for ``method="smoothing"`` (defaults: Cohen et al.'s).
        generator: noise source for smoothing; the same seed gives the same certificate.

    Raises:
        CapabilityError: the model is not a chain of supported layers (bound methods).
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}")
    check_inputs(x, y, threat)
    device = model_device(model)
    x, y = x.to(device), y.to(device=device, dtype=torch.long)
    if method == "smoothing":
        return _certify_smoothing(model, x, y, threat, smoothing or SmoothingConfig(), generator)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    budget_floats(max_memory_mb)  # a bad budget fails here, before any work
    net = compile_network(model)
    lowers, uppers = [], []

    def step(start: int, stop: int) -> None:
        low, up = margin_bounds(net, x[start:stop], y[start:stop], threat, method,
                                upper_by_crown=upper_by_crown, max_memory_mb=max_memory_mb)
        lowers.append(low)
        uppers.append(up)

    with torch.no_grad():
        _check_same_function(model, net, x[:min(batch_size, 64)])
        # Bounds are per sample: out of memory, the batch is halved and the rest goes on
        # at that size with the same bounds (bastion.evaluation.backoff).
        run_in_batches(step, x.shape[0], batch_size)
    lower, upper = torch.cat(lowers), torch.cat(uppers)
    return Certificate(method=method, threat=threat, certified=(lower > 0).all(1),
                       lower=lower, upper=upper, forward_passes=0)


def _check_same_function(model: nn.Module, net: Network, x: torch.Tensor) -> None:
    """The layer chain must compute what the model computes, or the bounds mean nothing."""
    expected, got = model(x), net.forward(x)
    if expected.shape != got.shape or not torch.allclose(expected, got, rtol=1e-4, atol=1e-4):
        raise CapabilityError(
            f"{type(model).__name__}'s forward computes something its layers in order do not "
            "(extra operations outside its submodules?); write it as an nn.Sequential of "
            "supported layers, or use method='smoothing'"
        )


def _certify_smoothing(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       threat: ThreatModel, cfg: SmoothingConfig,
                       generator: torch.Generator | None) -> Certificate:
    if threat.norm != "L2":
        raise ConfigError("randomized smoothing certifies L2 radii; use a ThreatModel with "
                          "norm='L2' (eps is then the radius to certify)")
    result = smoothing_mod.certify(model, x, cfg.sigma, cfg.n0, cfg.n, cfg.alpha, cfg.batch,
                                   generator=generator)
    predicted = result.label.to(y.device)
    correct = predicted == y
    radius = result.radius.to(y.device)
    radius = torch.where(correct, radius, torch.zeros_like(radius))
    return Certificate(method="smoothing", threat=threat,
                       certified=radius > threat.eps,
                       radius=radius, abstained=predicted == smoothing_mod.ABSTAIN,
                       predicted=predicted, forward_passes=result.forward_passes)
