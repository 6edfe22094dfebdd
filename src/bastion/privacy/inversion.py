"""Model inversion (Fredrikson et al. 2015 style): reconstruct a representative input of
a class by gradient ascent on the model's log-probability of that class, and measure
how much it resembles the class's training data.

    res = invert_classes(model, class_means, steps=300)
    res["mean_similarity"], res["nearest_mean_rate"]

The start is the mean of all class means (a blank "average" image); a total-variation
and an L2 prior keep the image smooth and small, and every step stays in [0, 1].
Similarity is the cosine between the reconstruction and each class's training mean,
both centred on the overall mean (so a blank image scores 0): high similarity to its
own class, and its own class the nearest, means the model gives away what its training
images of that class look like.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from bastion.attacks.base import model_device
from bastion.common.intervals import interval_list, wilson_interval
from bastion.errors import ConfigError


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels of (N, C, H, W) ``x``: (N,)."""
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


def invert(model: nn.Module, classes: torch.Tensor, start: torch.Tensor, *, steps: int = 300,
           lr: float = 0.05, tv: float = 0.3, l2: float = 0.01) -> torch.Tensor:
    """Reconstructions (N, C, H, W) in [0, 1] of ``classes`` (N,) from ``start``
    (C, H, W): Adam on ``-log p_class + tv * TV + l2 * ||x - start||^2 / D``."""
    if steps < 1 or lr <= 0 or tv < 0 or l2 < 0:
        raise ConfigError("inversion needs steps >= 1, lr > 0, tv >= 0 and l2 >= 0")
    x = start.expand(len(classes), *start.shape).clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        logp = F.log_softmax(model(x), dim=1).gather(1, classes[:, None])[:, 0]
        prior = tv * total_variation(x) + l2 * (x - start).pow(2).flatten(1).mean(1)
        loss = (-logp + prior).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach()


def class_means(x: torch.Tensor, y: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """(K, C, H, W) per-class means of (N, C, H, W) ``x``; ConfigError if a class is empty."""
    counts = torch.bincount(y, minlength=num_classes)
    if (counts == 0).any():
        raise ConfigError(f"classes {(counts == 0).nonzero()[:, 0].tolist()} have no "
                          "training images; pass more data")
    return torch.stack([x[y == k].mean(0) for k in range(num_classes)])


def similarity(recon: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """(N, K) cosines between each centred reconstruction (N, ...) and each centred class
    mean (K, ...), centred on the mean of the class means."""
    centre = means.mean(0)
    a = (recon - centre).flatten(1)
    b = (means - centre).flatten(1)
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


def invert_classes(model: nn.Module, means: torch.Tensor, **options: Any) -> dict[str, Any]:
    """Invert every class of ``model`` given the training class means (K, C, H, W).

    The reconstruction runs on the model's device; the results are CPU tensors.

    Returns:
        ``{"similarity": [K floats], "mean_similarity", "nearest_mean": hits,
        "nearest_mean_rate", "nearest_mean_ci" (percentage points), "confidence": [K]}``
        and ``"images"``: the (K, C, H, W) reconstructions.
    """
    model = model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    k, device = len(means), model_device(model)
    classes = torch.arange(k)
    recon = invert(model, classes.to(device), means.mean(0).to(device), **options)
    with torch.no_grad():
        conf = F.softmax(model(recon), 1).cpu()[classes, classes]
    recon = recon.cpu()
    sims = similarity(recon, means.cpu())
    own = sims[classes, classes]
    hits = int((sims.argmax(1) == classes).sum())
    return {"similarity": [round(float(s), 4) for s in own],
            "mean_similarity": float(own.mean()), "nearest_mean": hits,
            "nearest_mean_rate": hits / k,
            "nearest_mean_ci": interval_list(wilson_interval(hits, k), 100, 1),
            "confidence": [round(float(c), 4) for c in conf], "images": recon}
