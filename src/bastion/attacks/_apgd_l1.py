"""One APGD-L1 run (Croce & Hein, "Mind the box: l1-APGD for sparse adversarial attacks on
image classifiers", ICML 2021) over a batch, with early stop.

Under L1 the steepest ascent direction moves a single pixel, which makes plain PGD crawl.
APGD-L1 instead moves the top ``k`` coordinates of ``|grad|`` at once (by sign, scaled to
the step's L1 length), skipping coordinates already at the box edge they are pushed
toward: the part of the L1 ball that the box leaves is what the attack must search. The
sparsity ``k`` adapts: at every check (each 4% of the iterations) it is set to the number
of pixels the best point so far changed, divided by 1.5. Where that number shrank by more
than 5% the step size is reset to eps and the sample restarts from its best point;
elsewhere the step shrinks by 1.5, never below eps / 10. There is no momentum.

With ``eps_schedule`` the run first spends 30% of its iterations at 3 eps and 30% at
2 eps, carrying its best point down to eps for the rest (AutoAttack's L1 setting); only
points found at eps itself count as successes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import nn

from bastion.attacks._apgd_run import loss_and_grad
from bastion.attacks.base import Passes, is_success
from bastion.threat import ThreatModel

#: share of the coordinates moved by the first step of a fresh start.
TOPK_START = 0.2
#: checks happen every CHECK_SHARE of a phase's iterations.
CHECK_SHARE = 0.04
#: k becomes (pixels changed by the best point) / K_SHRINK at each check.
K_SHRINK = 1.5
#: a check that finds the changed-pixel count below SPARSER of its last value resets the step.
SPARSER = 0.95
#: the step shrinks by STEP_SHRINK at checks that do not reset it, down to eps / STEP_FLOOR.
STEP_SHRINK, STEP_FLOOR = 1.5, 10.0
#: eps multiples and shares of the iterations of the eps schedule.
SCHEDULE = ((3.0, 0.3), (2.0, 0.3), (1.0, 0.4))


@dataclass
class _State:
    """Per-sample tensors of the samples still being attacked (first dim = active)."""

    idx: torch.Tensor       # (A,) positions in the caller's batch
    x0: torch.Tensor
    y: torch.Tensor
    goal: torch.Tensor | None
    x: torch.Tensor         # current iterate
    grad: torch.Tensor
    best_loss: torch.Tensor
    best_x: torch.Tensor
    best_grad: torch.Tensor

    def keep(self, mask: torch.Tensor) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                setattr(self, f.name, value[mask])


def phases(threat: ThreatModel, n_iter: int, eps_schedule: bool) -> list[tuple[ThreatModel, int]]:
    """(threat model, iterations) per phase; the last phase is always at ``threat.eps``."""
    if not eps_schedule:
        return [(threat, n_iter)]
    counts = [math.ceil(share * n_iter) for _, share in SCHEDULE[:-1]]
    counts.append(max(n_iter - sum(counts), 1))
    return [(threat.with_eps(mult * threat.eps), c)
            for (mult, _), c in zip(SCHEDULE, counts, strict=True)]


def sparse_direction(grad: torch.Tensor, x: torch.Tensor, share: torch.Tensor,
                     bounds: tuple[float, float]) -> torch.Tensor:
    """Unit-L1 ascent direction (A, ...): signs of the top ``share`` (A,) of the movable
    coordinates by ``|grad|``, each of size 1 / (number moved)."""
    flat, xf = grad.flatten(1), x.flatten(1)
    blocked = ((xf >= bounds[1]) & (flat > 0)) | ((xf <= bounds[0]) & (flat < 0))
    size = flat.abs().masked_fill(blocked, 0)
    n = flat.shape[1]
    k = (share * n).ceil().clamp(1, n).long()
    level = size.sort(dim=1, descending=True).values.gather(1, (k - 1)[:, None])
    chosen = (size >= level) & (size > 0)
    signs = flat.sign() * chosen
    signs = signs / signs.abs().sum(1, keepdim=True).clamp_min(1)
    return signs.view_as(grad)


def apgd_l1_once(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 goal: torch.Tensor | None, targeted_success: bool, threat: ThreatModel,
                 start: torch.Tensor, idx: torch.Tensor, n_iter: int, loss: str, eot: int,
                 out_x: torch.Tensor, success: torch.Tensor, out_loss: torch.Tensor,
                 passes: Passes, eps_schedule: bool) -> None:
    """APGD-L1 on samples ``idx`` of the batch; arguments and outputs as
    :func:`bastion.attacks._apgd_run.apgd_once`."""
    plan = phases(threat, n_iter, eps_schedule)
    # With the schedule the start already carries its sparsity into k, as in the
    # reference; a single run starts from k = 20% of the coordinates.
    xs, fresh = start[idx], not eps_schedule
    s: _State | None = None
    for number, (phase_threat, iters) in enumerate(plan):
        final = number == len(plan) - 1
        x0 = x[idx] if s is None else s.x0
        xs = phase_threat.project(xs, x0)
        s = _State(idx=idx if s is None else s.idx, x0=x0,
                   y=y[idx] if s is None else s.y,
                   goal=(goal[idx] if goal is not None else None) if s is None else s.goal,
                   x=xs, grad=torch.empty(0), best_loss=torch.empty(0),
                   best_x=xs.clone(), best_grad=torch.empty(0))
        if not _phase(model, s, phase_threat, iters, loss, eot, fresh, final,
                      targeted_success, out_x, success, passes):
            return
        xs, fresh = s.best_x, False
    assert s is not None
    better = s.best_loss > out_loss[s.idx]
    out_x[s.idx[better]] = s.best_x[better]
    out_loss[s.idx[better]] = s.best_loss[better].to(out_loss.dtype)


def _phase(model: nn.Module, s: _State, threat: ThreatModel, iters: int, loss: str, eot: int,
           fresh: bool, record: bool, targeted: bool, out_x: torch.Tensor,
           success: torch.Tensor, passes: Passes) -> bool:
    """Run ``iters`` iterations at ``threat``; with ``record``, fooling points (reaching
    ``s.goal`` if ``targeted``, else leaving ``s.y``) are written out and leave the state.
    False when no sample is left."""
    n = s.x0[0].numel()
    per, logits, s.grad = loss_and_grad(model, s.x, s.y, s.goal, loss, eot)
    passes.forward += s.idx.numel() * eot
    passes.backward += s.idx.numel() * eot
    s.best_loss, s.best_x, s.best_grad = per.clone(), s.x.clone(), s.grad.clone()
    if record and not _record(s, logits, targeted, out_x, success):
        return False
    changed = _changed(s.x, s.x0)
    share = torch.full_like(changed, TOPK_START) if fresh else changed / n / K_SHRINK
    sp_old = torch.full_like(changed, float(n)) if fresh else changed
    step = torch.full_like(changed, threat.eps)
    every = max(int(CHECK_SHARE * iters), 1)
    shape = (-1, *([1] * (s.x.dim() - 1)))
    for it in range(1, iters + 1):
        direction = sparse_direction(s.grad, s.x, share, threat.bounds)
        s.x = threat.project(s.x + step.view(shape) * direction, s.x0)
        per, logits, s.grad = loss_and_grad(model, s.x, s.y, s.goal, loss, eot)
        passes.forward += s.idx.numel() * eot
        passes.backward += s.idx.numel() * eot
        better = per > s.best_loss
        s.best_loss = torch.where(better, per, s.best_loss)
        s.best_x[better] = s.x[better]
        s.best_grad[better] = s.grad[better]
        if record:
            fooled = is_success(logits, s.y, s.goal if targeted else None)
            if bool(fooled.any()):
                keep = ~fooled
                share, sp_old, step = share[keep], sp_old[keep], step[keep]
                if not _record(s, logits, targeted, out_x, success):
                    return False
        if it % every == 0:
            changed = _changed(s.best_x, s.x0)
            reset = changed / sp_old < SPARSER
            share = changed / n / K_SHRINK
            step = torch.where(reset, torch.full_like(step, threat.eps), step / STEP_SHRINK)
            step = step.clamp(threat.eps / STEP_FLOOR, threat.eps)
            sp_old = changed
            s.x[reset] = s.best_x[reset]
            s.grad[reset] = s.best_grad[reset]
    return True


def _changed(x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """(A,) number of coordinates where ``x`` differs from ``x0``, as float."""
    return (x != x0).flatten(1).sum(1).to(x.dtype)


def _record(s: _State, logits: torch.Tensor, targeted: bool,
            out_x: torch.Tensor, success: torch.Tensor) -> bool:
    """Write out the points that fool the model and drop them; False when none is left."""
    fooled = is_success(logits, s.y, s.goal if targeted else None)
    if bool(fooled.any()):
        out_x[s.idx[fooled]] = s.x[fooled]
        success[s.idx[fooled]] = True
        s.keep(~fooled)
    return s.idx.numel() > 0
