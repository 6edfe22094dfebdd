"""Training recipes for membership inference, DP audits and inversion: the target and
every shadow model train the same way (the attacker knows the training algorithm).

    recipe = Recipe(method="dp", epochs=10, noise_multiplier=2.0)
    model, info = train(x, y, recipe, seed=3)      # info["epsilon"]: Opacus' accounting

Methods: ``standard`` (shuffled mini-batches, Adam, no regularisation, so a small
training set is memorised), ``pgd-at`` (Madry et al. 2018: the loss on L-inf PGD points
instead of clean ones) and ``dp`` (DP-SGD through :mod:`bastion.train.dp`: per-sample
clipping, Gaussian noise, Poisson batches, RDP accounting at ``delta``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from bastion.errors import ConfigError
from bastion.threat import ThreatModel
from bastion.zoo.registry import build_for

METHODS = ("standard", "pgd-at", "dp")


@dataclass(frozen=True)
class Recipe:
    """How every model of a membership audit trains.

    Attributes:
        arch: zoo architecture (``mlp`` is the cheapest; DP needs one without BatchNorm).
        epochs: passes over the training set; batch: mini-batch size (DP: the expected
            Poisson batch); lr: Adam's step size (standard, pgd-at; default 1e-3) or
            SGD's with momentum 0.9 (dp; default 0.1).
        eps, pgd_steps: the L-inf radius (input units) and PGD steps of ``pgd-at``.
        noise_multiplier, max_grad_norm, delta: DP-SGD's noise (in units of the clip
            norm), per-sample clip norm and the delta at which epsilon is accounted.
    """

    method: str = "standard"
    arch: str = "mlp"
    epochs: int = 30
    batch: int = 64
    lr: float | None = None
    eps: float = 0.1
    pgd_steps: int = 5
    noise_multiplier: float = 1.0
    max_grad_norm: float = 1.0
    delta: float = 1e-5

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown training method {self.method!r}; "
                              f"available: {', '.join(METHODS)}")
        if self.epochs < 1 or self.batch < 1 or (self.lr is not None and self.lr <= 0):
            raise ConfigError("epochs and batch must be >= 1 and lr > 0, got "
                              f"{self.epochs}, {self.batch}, {self.lr}")
        if self.method == "dp" and (self.noise_multiplier <= 0 or self.max_grad_norm <= 0):
            raise ConfigError("DP-SGD needs noise_multiplier > 0 and max_grad_norm > 0")

    @property
    def step_size(self) -> float:
        if self.lr is not None:
            return self.lr
        return 0.1 if self.method == "dp" else 1e-3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train(x: torch.Tensor, y: torch.Tensor, recipe: Recipe, *, seed: int,
          num_classes: int = 10, device: torch.device | str = "cpu"
          ) -> tuple[nn.Module, dict[str, Any]]:
    """Train a fresh model on (N, C, H, W) ``x`` in [0, 1] and (N,) int64 ``y``.

    The model is built (seeded) on the CPU and moved to ``device``; ``x`` and ``y`` stay
    where they are and each batch moves. Batches, PGD starts and DP-SGD's Poisson
    sampling are drawn on the CPU, so they do not depend on the device (DP-SGD's noise
    is drawn on ``device``, as Opacus needs, so on a GPU it differs from the CPU's).

    Returns:
        the model in eval mode on ``device`` and ``{"epsilon": float | None}`` (None
        unless DP).
    """
    torch.manual_seed(seed)
    model = build_for(recipe.arch, x, num_classes).to(device)
    gen = torch.Generator().manual_seed(seed)
    if recipe.method == "dp":
        return _train_dp(model, x, y, recipe, gen, torch.device(device))
    opt = torch.optim.Adam(model.parameters(), lr=recipe.step_size)
    threat = ThreatModel("Linf", recipe.eps)
    for _ in range(recipe.epochs):
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), recipe.batch):
            idx = order[start:start + recipe.batch].to(x.device)
            xb, yb = x[idx].to(device), y[idx].to(device)
            if recipe.method == "pgd-at":
                xb = _pgd(model, xb, yb, threat, recipe.pgd_steps, gen)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), {"epsilon": None}


def _pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
         steps: int, gen: torch.Generator) -> torch.Tensor:
    """L-inf PGD with a random start, step 2.5 * eps / steps (Madry et al.)."""
    step = 2.5 * threat.eps / steps
    delta = ((torch.rand(x.shape, generator=gen) * 2 - 1) * threat.eps).to(x.device)
    adv = (x + delta).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        grad, = torch.autograd.grad(F.cross_entropy(model(adv), y), adv)
        adv = threat.project(adv.detach() + step * grad.sign(), x)
    return adv.detach()


def _train_dp(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe,
              gen: torch.Generator, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """DP-SGD: each step every sample joins the batch with probability batch / N."""
    from bastion.train.dp import Private

    batches = max(1, len(x) // recipe.batch)
    opt = torch.optim.SGD(model.parameters(), lr=recipe.step_size, momentum=0.9)
    # Opacus draws the noise beside the gradients, so its generator lives on the device
    noise = torch.Generator(device=device).manual_seed(int(gen.initial_seed()) + 1)
    private = Private(model, opt, n_train=len(x), batches=batches,
                      noise_multiplier=recipe.noise_multiplier,
                      max_grad_norm=recipe.max_grad_norm, noise_generator=noise)
    for _ in range(recipe.epochs * batches):
        idx = (torch.rand(len(x), generator=gen) < private.sample_rate).nonzero()[:, 0]
        if len(idx) == 0:
            private.account_empty_step()
            continue
        idx = idx.to(x.device)
        # a mean, as Opacus' default loss_reduction expects (it rescales per-sample grads)
        loss = F.cross_entropy(private.model(x[idx].to(device)), y[idx].to(device))
        private.optimizer.zero_grad()
        loss.backward()
        private.optimizer.step()
    return model.eval(), {"epsilon": private.epsilon(recipe.delta)}
