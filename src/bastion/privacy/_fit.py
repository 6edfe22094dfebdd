"""Small training loop shared by extraction (a copy on soft or hard answers) and
membership inference (target and shadow models).

Device rule of the privacy commands: data sets and every random draw stay on the CPU
(so a seed gives the same batches and starting weights on every device); a model lives
on its device, each batch moves to it, and what comes back for statistics or JSON is a
CPU tensor (:func:`predict`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from bastion.attacks.base import model_device
from bastion.zoo.registry import build_for


def jitter(x: torch.Tensor, shift: float, gen: torch.Generator) -> torch.Tensor:
    """``x`` (N, C, H, W), each image moved by up to ``shift`` pixels in each direction and
    rotated by up to 10 degrees (bilinear, zero fill): cheap views of the same digit."""
    n, side = len(x), x.shape[-1]
    move = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2 * shift / side)
    angle = (torch.rand(n, generator=gen) * 2 - 1) * (torch.pi / 18)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, move[:, 0]], 1),
                         torch.stack([sin, cos, move[:, 1]], 1)], 1).to(x.device)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def fit(x: torch.Tensor, target: torch.Tensor, *, arch: str = "wong-small", steps: int,
        batch: int = 64, lr: float = 1e-3, seed: int = 0, num_classes: int = 10,
        augment: float = 0.0, device: torch.device | str = "cpu") -> nn.Module:
    """Train a fresh ``arch`` for ``steps`` Adam steps on batches drawn with replacement.

    Args:
        x: (N, C, H, W) inputs in [0, 1].
        target: (N,) int64 labels, or (N, K) float rows summing to 1 (soft labels:
            cross-entropy against the row).
        num_classes: outputs of the model for int64 labels (soft labels give K).
        augment: when > 0, each batch is :func:`jitter`-ed by up to this many pixels
            (the targets stay: the answer to an image holds for its small moves).
        device: where the model trains; ``x`` and ``target`` may stay on the CPU (each
            batch moves), and the draws stay there, so the batches do not depend on it.
    Returns:
        the model in eval mode, on ``device``.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    # sized to x's channels and side; a clear error when arch cannot take that shape
    model = build_for(arch, x, target.shape[1] if target.dim() == 2 else num_classes)
    model = model.to(device)  # built on the CPU first: the same initial weights anywhere
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (min(batch, len(x)),), generator=gen).to(x.device)
        xb = jitter(x[idx], augment, gen) if augment > 0 else x[idx]
        logits = model(xb.to(device))
        t = target[idx].to(device)
        if t.dim() == 1:
            loss = F.cross_entropy(logits, t)
        else:
            loss = -(t * F.log_softmax(logits, dim=1)).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def predict(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
            batch: int = 1000) -> torch.Tensor:
    """``model``'s outputs on (N, C, H, W) ``x``, batched: (N, K) on the CPU.

    Each batch moves to the model's device (a module's parameters say where; any other
    callable gets CPU batches) and its outputs come back to the CPU.
    """
    device = model_device(model) if isinstance(model, nn.Module) else torch.device("cpu")
    return torch.cat([model(x[i:i + batch].to(device)).cpu()
                      for i in range(0, len(x), batch)])
