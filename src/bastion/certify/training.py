"""Certified training: IBP (Gowal et al. 2018) and CROWN-IBP (Zhang et al., ICLR 2020).

Both minimise ``κ · CE(f(x), y) + (1 − κ) · CE(−m, y)`` where m (N, K-1) are lower bounds
on the margins ``z_y − z_j`` over the ball of the current eps. CE(−m) is the cross-entropy
of logits that put 0 on the true class and −m_j on class j: it is small only when every
margin bound is large. CROWN-IBP mixes the bounds: ``m = β m_CROWN-IBP + (1 − β) m_IBP``.
eps ramps up linearly from 0 (training at full eps from the start fails), while κ and β
ramp from their start to their end values over the same steps.

The loop runs the model in eval mode throughout: bound propagation reads BatchNorm's
running statistics and needs Dropout off, so neither should be relied on here.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bastion.certify.bounds import compile_network, ibp_margins, interval_bounds
from bastion.certify.crown import crown_margins
from bastion.errors import ConfigError
from bastion.threat import ThreatModel


def ramp(step: int, start: int, end: int, low: float, high: float) -> float:
    """Linear schedule: ``low`` until ``start``, ``high`` from ``end``, linear between."""
    if end <= start:
        return high if step >= start else low
    if step <= start:
        return low
    if step >= end:
        return high
    return low + (high - low) * (step - start) / (end - start)


def robust_cross_entropy(lower: torch.Tensor) -> torch.Tensor:
    """Mean CE(−m) over the batch for margin lower bounds ``lower`` (N, K-1): (scalar)."""
    zeros = lower.new_zeros(lower.shape[0], 1)
    return torch.logsumexp(torch.cat([zeros, -lower], 1), 1).mean()


def certified_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                   *, kappa: float, beta: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The IBP / CROWN-IBP loss of one batch x (N, *in), y (N,), and metrics.

    Args:
        kappa: weight of the clean cross-entropy, in [0, 1].
        beta: weight of the CROWN-IBP bounds, in [0, 1]; 0 gives pure IBP training and
            skips the CROWN pass.
    Returns:
        (loss, {"clean_ce", "robust_ce", "certified": fraction of the batch certified}).
    """
    logits = model(x)
    clean = nn.functional.cross_entropy(logits, y)
    if threat.eps == 0 or kappa >= 1:
        return clean, {"clean_ce": clean.item(), "robust_ce": float("nan"),
                       "certified": float("nan")}
    net = compile_network(model)
    bounds = interval_bounds(net, x, threat)
    lower = ibp_margins(net, x, y, threat, bounds)[0]
    if beta > 0:
        crown = crown_margins(net, x, y, threat, intermediate="ibp", bounds=bounds)[0]
        lower = beta * crown + (1 - beta) * lower
    robust = robust_cross_entropy(lower)
    loss = kappa * clean + (1 - kappa) * robust
    return loss, {"clean_ce": clean.item(), "robust_ce": robust.item(),
                  "certified": float((lower > 0).all(1).float().mean())}


@dataclass(frozen=True)
class Schedule:
    """Schedules in epochs: eps is 0 for ``warmup`` epochs, then ramps linearly to its
    target over ``ramp`` epochs (fractions allowed); κ and β ramp over the same steps."""

    warmup: float = 0.0
    ramp: float = 1.0
    kappa: tuple[float, float] = (1.0, 0.5)
    beta: tuple[float, float] = (1.0, 0.0)


def train_certified(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], eps: float,
                    epochs: int, *, norm: str = "Linf", method: str = "crown-ibp",
                    batch_size: int = 128, lr: float = 5e-4,
                    schedule: Schedule | None = None, seed: int = 0,
                    checkpoint: Path | None = None,
                    log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train ``model`` in place with IBP or CROWN-IBP; returns one metrics dict per epoch.

    Args:
        data: inputs (N, *in) in [0, 1] and labels (N,).
        eps: target radius, input units. norm: "Linf" or "L2".
        method: "ibp" (β = 0 throughout) or "crown-ibp" (β from ``schedule.beta``).
        checkpoint: file to save model, optimizer and history to after every epoch; if it
            exists when the call starts, training resumes after its last finished epoch.
    """
    if method not in ("ibp", "crown-ibp"):
        raise ConfigError(f"method must be 'ibp' or 'crown-ibp', got {method!r}")
    sched = schedule or Schedule()
    threat = ThreatModel(norm, eps)  # validates eps and norm
    x, y = data
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[dict[str, Any]] = []
    first = 0
    if checkpoint is not None and checkpoint.exists():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        history, first = saved["history"], len(saved["history"])
        log(f"resuming from {checkpoint} after epoch {first}")
    per_epoch = -(-x.shape[0] // batch_size)
    start, end = int(sched.warmup * per_epoch), int((sched.warmup + sched.ramp) * per_epoch)
    model.eval()
    for epoch in range(first, epochs):
        began = time.perf_counter()
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)  # resumable shuffles
        order = torch.randperm(x.shape[0], generator=gen)
        losses: list[float] = []
        certified: list[float] = []
        for b, i in enumerate(range(0, x.shape[0], batch_size)):
            step = epoch * per_epoch + b
            idx = order[i:i + batch_size]
            step_eps = ramp(step, start, end, 0.0, eps)
            kappa = ramp(step, start, end, *sched.kappa)
            beta = 0.0 if method == "ibp" else ramp(step, start, end, *sched.beta)
            loss, stats = certified_loss(model, x[idx], y[idx], threat.with_eps(step_eps),
                                         kappa=kappa, beta=beta)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if not math.isnan(stats["certified"]):  # NaN: no bound computed (κ = 1)
                certified.append(stats["certified"])
        row = {"epoch": epoch + 1, "eps": step_eps, "kappa": kappa, "beta": beta,
               "loss": sum(losses) / len(losses),
               "batch_certified": sum(certified) / len(certified) if certified else None,
               "seconds": round(time.perf_counter() - began, 2)}
        history.append(row)
        log(json.dumps(row))
        if checkpoint is not None:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                        "history": history, "schedule": asdict(sched)}, checkpoint)
    return history
