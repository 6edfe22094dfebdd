"""Building blocks shared by gradient attacks: one input gradient, one ascent step."""

from __future__ import annotations

import torch
from torch import nn

from bastion.attacks.base import attack_loss

#: share of the coordinates an L1 ascent step moves (the largest gradient entries).
L1_TOP_SHARE = 0.01


def input_gradient(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor | None,
    loss: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample loss (N,), logits (N, C) and d(loss)/dx (N, ...) at ``x``.

    Only the input gradient is computed: model parameters get no ``.grad``.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logits = model(x)
        per_sample = attack_loss(logits, y, target, loss)
        (grad,) = torch.autograd.grad(per_sample.sum(), x)
    return per_sample.detach(), logits.detach(), grad


def ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """Unit steepest-ascent direction of ``grad`` (N, ...) for ``norm``.

    Linf: ``sign(grad)``. L2: ``grad / ||grad||_2`` per sample (a zero gradient gives a
    zero direction rather than NaN). L1: the signs of the top :data:`L1_TOP_SHARE` of the
    coordinates by ``|grad|``, scaled to unit L1 length (sparse L1 descent, Tramer & Boneh
    2019: the exact L1 steepest direction moves one pixel per step, far too slow).
    """
    if norm == "Linf":
        return grad.sign()
    if norm == "L1":
        flat = grad.flatten(1)
        k = max(1, round(L1_TOP_SHARE * flat.shape[1]))
        level = flat.abs().topk(k, dim=1).values[:, -1:]
        chosen = (flat.abs() >= level) & (flat != 0)
        signs = flat.sign() * chosen
        signs = signs / signs.abs().sum(1, keepdim=True).clamp_min(1)
        return signs.view_as(grad)
    length = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return grad / length.view(-1, *([1] * (grad.dim() - 1)))


def ascent_step(x: torch.Tensor, grad: torch.Tensor, size: float, norm: str) -> torch.Tensor:
    """Move ``x`` by ``size`` along :func:`ascent_direction` of ``grad`` for ``norm``."""
    return x + size * ascent_direction(grad, norm)
