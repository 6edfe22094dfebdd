"""One APGD run (Croce & Hein, ICML 2020, Algorithm 1) over a batch, with early stop.

Kept apart from :mod:`bastion.attacks.apgd` so the two public attacks (APGD and APGD-T)
share one loop. Every per-sample quantity (iterate, previous iterate, gradient, step size,
best loss and its point, oscillation counters) lives in one :class:`_State`; samples the
model already gets wrong leave it, so later iterations cost only what is still robust.
Because every update is per sample, dropping samples changes no other sample's path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import nn

from bastion.attacks._input_grad import input_grad_kernels
from bastion.attacks.base import Passes, attack_loss, is_success
from bastion.attacks.steps import ascent_direction
from bastion.threat import ThreatModel

#: fraction of the iterations after which the first step-size check happens, the minimum
#: spacing between checks, and the spacing's decrease (all from the paper, section 3.2).
P1, P_MIN, P_DECAY = 0.22, 0.06, 0.03
#: a step size survives a check if the loss rose on at least this share of the steps.
RHO = 0.75
#: momentum weight on the new step (the remaining 0.25 continues the previous move).
ALPHA = 0.75


def checkpoints(n_iter: int) -> list[int]:
    """Iterations (1-based counts) at which APGD may halve its step size.

    p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06); w_j = ceil(p_j N).
    For N = 100: [22, 41, 57, 70, 80, 87, 93, 99].
    """
    marks: list[int] = []
    prev, cur = 0.0, P1
    while cur <= 1.0:
        w = max(1, math.ceil(cur * n_iter - 1e-9))
        if not marks or w > marks[-1]:
            marks.append(w)
        prev, cur = cur, cur + max(cur - prev - P_DECAY, P_MIN)
    return [w for w in marks if w <= n_iter]


@dataclass
class _State:
    """Per-sample tensors of the samples still being attacked (first dim = active)."""

    idx: torch.Tensor        # (A,) positions in the caller's batch
    x0: torch.Tensor         # clean inputs
    y: torch.Tensor
    goal: torch.Tensor | None  # target class of the loss (None: untargeted loss)
    x: torch.Tensor          # current iterate
    x_prev: torch.Tensor     # previous iterate (for momentum)
    grad: torch.Tensor       # loss gradient at x
    step: torch.Tensor       # (A,) step size
    loss_prev: torch.Tensor  # loss at the previous iterate
    best_loss: torch.Tensor
    best_x: torch.Tensor
    best_grad: torch.Tensor
    rises: torch.Tensor      # (A,) loss increases since the last checkpoint
    halved_last: torch.Tensor  # (A,) bool: step halved at the last checkpoint
    best_at_last: torch.Tensor  # best loss at the last checkpoint

    def keep(self, mask: torch.Tensor) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                setattr(self, f.name, value[mask])


def loss_and_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  goal: torch.Tensor | None, loss: str, eot: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss (N,), logits (N, C) of the last draw, and input gradient averaged over ``eot``
    forward/backward passes (expectation over transformation, for randomized models)."""
    total_grad = torch.zeros_like(x)
    total_loss = torch.zeros(x.shape[0], device=x.device)
    logits = torch.empty(0)
    with torch.enable_grad(), input_grad_kernels(model):
        for _ in range(eot):
            xr = x.detach().requires_grad_(True)
            logits = model(xr)
            per = attack_loss(logits, y, goal, loss)
            (g,) = torch.autograd.grad(per.sum(), xr)
            total_grad += g
            total_loss += per.detach().to(total_loss.dtype)
    return total_loss / eot, logits.detach(), total_grad / eot


def apgd_once(model: nn.Module, x: torch.Tensor, y: torch.Tensor, goal: torch.Tensor | None,
              targeted_success: bool, threat: ThreatModel, start: torch.Tensor,
              idx: torch.Tensor, n_iter: int, loss: str, eot: int,
              out_x: torch.Tensor, success: torch.Tensor, out_loss: torch.Tensor,
              passes: Passes) -> None:
    """Run APGD on samples ``idx`` of the batch, from ``start`` (full batch, (N, ...)).

    ``goal`` (N,) is the class the loss pulls toward (None: untargeted loss).
    ``targeted_success``: success means reaching ``goal``; otherwise leaving ``y``.
    Writes into ``out_x`` / ``success`` / ``out_loss`` (full batch) in place: a sample's
    first fooling point is kept; for samples never fooled, the highest-loss point seen
    (compared with ``out_loss`` from earlier runs).
    """
    x0, y0 = x[idx], y[idx]
    g0 = goal[idx] if goal is not None else None
    target_of_success = g0 if targeted_success else None
    xs = start[idx]
    per, logits, grad = loss_and_grad(model, xs, y0, g0, loss, eot)
    passes.forward += idx.numel() * eot
    passes.backward += idx.numel() * eot
    eps_step = 2.0 * threat.eps
    s = _State(idx=idx, x0=x0, y=y0, goal=g0, x=xs, x_prev=xs, grad=grad,
               step=torch.full((idx.numel(),), eps_step, device=x.device, dtype=x.dtype),
               loss_prev=per, best_loss=per.clone(), best_x=xs.clone(), best_grad=grad.clone(),
               rises=torch.zeros(idx.numel(), device=x.device),
               halved_last=torch.zeros(idx.numel(), dtype=torch.bool, device=x.device),
               best_at_last=per.clone())
    if not _record_fooled(s, logits, target_of_success, out_x, success):
        return
    marks = set(checkpoints(n_iter))
    last_mark = 0
    shape = (-1, *([1] * (x.dim() - 1)))
    for it in range(1, n_iter + 1):
        a = ALPHA if it > 1 else 1.0
        z = threat.project(_ascent(s.x, s.grad, s.step.view(shape), threat.norm), s.x0)
        moved = s.x + a * (z - s.x) + (1 - a) * (s.x - s.x_prev)
        s.x_prev, s.x = s.x, threat.project(moved, s.x0)
        per, logits, s.grad = loss_and_grad(model, s.x, s.y, s.goal, loss, eot)
        passes.forward += s.idx.numel() * eot
        passes.backward += s.idx.numel() * eot
        s.rises += (per > s.loss_prev).to(s.rises.dtype)
        s.loss_prev = per
        better = per > s.best_loss
        s.best_loss = torch.where(better, per, s.best_loss)
        s.best_x[better] = s.x[better]
        s.best_grad[better] = s.grad[better]
        # Record fooling points before a checkpoint moves s.x back to a best point: the
        # logits belong to this iterate, not to the point a restart puts in its place.
        target_of_success = s.goal if targeted_success else None
        if not _record_fooled(s, logits, target_of_success, out_x, success):
            return
        if it in marks:
            _checkpoint(s, it - last_mark)
            last_mark = it
    # Still robust after all iterations: offer the best point to the caller's best-so-far.
    better = s.best_loss > out_loss[s.idx]
    out_x[s.idx[better]] = s.best_x[better]
    out_loss[s.idx[better]] = s.best_loss[better].to(out_loss.dtype)


def _ascent(x: torch.Tensor, grad: torch.Tensor, step: torch.Tensor, norm: str) -> torch.Tensor:
    """One steepest-ascent move with a per-sample step (broadcast shape (A, 1, ...))."""
    return x + step * ascent_direction(grad, norm)


def _checkpoint(s: _State, span: int) -> None:
    """Halve the step where the loss rose on too few of the last ``span`` steps, or where
    the step was not halved last time and the best loss has not improved since; those
    samples restart from their best point (and its gradient)."""
    oscillating = s.rises < RHO * span
    stalled = ~s.halved_last & (s.best_at_last >= s.best_loss)
    halve = oscillating | stalled
    s.step = torch.where(halve, s.step / 2, s.step)
    s.x[halve] = s.best_x[halve]
    s.grad[halve] = s.best_grad[halve]
    s.halved_last = halve
    s.best_at_last = s.best_loss.clone()
    s.rises.zero_()


def _record_fooled(s: _State, logits: torch.Tensor, target: torch.Tensor | None,
                   out_x: torch.Tensor, success: torch.Tensor) -> bool:
    """Keep the points that fool the model and drop them; False when none is left."""
    fooled = is_success(logits, s.y, target)
    if bool(fooled.any()):
        out_x[s.idx[fooled]] = s.x[fooled]
        success[s.idx[fooled]] = True
        s.keep(~fooled)
    return s.idx.numel() > 0
