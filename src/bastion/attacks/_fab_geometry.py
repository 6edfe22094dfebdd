"""Geometry for FAB: linearize a decision boundary, project onto it inside the box.

FAB (Croce & Hein, "Minimally distorted adversarial examples with a fast adaptive
boundary attack", ICML 2020) replaces the boundary between the current class ``y`` and
a class ``j`` by its first-order approximation at the current iterate ``z``:

    {v : g + w . (v - z) = 0},   g = f_j(z) - f_y(z),   w = grad_z (f_j - f_y)

and moves toward the nearest point of that hyperplane that is also inside the input box.
:func:`project_onto_hyperplane` computes that nearest point exactly, for Linf and L2.
"""

from __future__ import annotations

import torch
from torch import nn

from bastion.attacks._input_grad import input_grad_kernels
from bastion.common import draws
from bastion.threat import ThreatModel


def project_onto_hyperplane(
    p: torch.Tensor,
    w: torch.Tensor,
    c: torch.Tensor,
    bounds: tuple[float, float],
    norm: str,
) -> torch.Tensor:
    """Smallest step ``d`` (N, D) with ``w . d = c`` and ``p + d`` inside ``bounds``.

    Args:
        p: (N, D) points, inside the box.
        w: (N, D) normal of each hyperplane.
        c: (N,) the value ``w . d`` must reach (the hyperplane is ``w . v = w . p + c``).
        bounds: ``(low, high)`` box every coordinate of ``p + d`` must stay in.
        norm: ``"Linf"`` or ``"L2"``: which size of ``d`` is minimized.

    Returns:
        (N, D) the step. Where no point of the box lies on the hyperplane, the step that
        gets closest to it (every coordinate pushed to the bound along ``sign(w)``).

    Both norms have the same solution shape (from the KKT conditions): coordinate ``i``
    moves along ``sign(w_i)`` by ``min(lam * a_i, room_i)`` where ``room_i`` is the
    distance to the bound in that direction and ``a_i`` is 1 (Linf: a common radius
    ``lam``) or ``|w_i|`` (L2: a Lagrange multiplier ``lam``). The reached value
    ``sum_i |w_i| min(lam a_i, room_i)`` is piecewise linear and increasing in ``lam``,
    so sorting the kinks ``room_i / a_i`` finds the exact ``lam`` in O(D log D) (L2);
    for Linf a few Newton steps find it exactly at less cost (:func:`_linf_radius`).
    """
    # Work on the side where c >= 0: flipping w and c together leaves the plane alone.
    side = torch.where(c >= 0, 1.0, -1.0).to(w.dtype)
    w = w * side[:, None]
    need = c.abs()
    low, high = bounds
    room = torch.where(w > 0, high - p, p - low).clamp_min(0.0)
    room = torch.where(w != 0, room, torch.zeros_like(room))
    size = w.abs()
    if norm == "Linf":
        lam = _linf_radius(room, size, need)
        return torch.minimum(lam[:, None], room) * w.sign()
    rate = size
    kink = torch.where(rate > 0, room / rate.clamp_min(1e-30), torch.zeros_like(room))
    kink, order = kink.sort(dim=1)
    size_s, room_s, rate_s = size.gather(1, order), room.gather(1, order), rate.gather(1, order)
    capped = size_s * room_s
    # Before kink k: the coordinates sorted before k sit at their bound (their sum is
    # `reached_capped`), those from k on still grow linearly with lam (slope `slope`).
    reached_capped = capped.cumsum(dim=1) - capped
    slope = (size_s * rate_s).flip(1).cumsum(dim=1).flip(1)
    value_at_kink = reached_capped + kink * slope
    k = (value_at_kink < need[:, None]).sum(dim=1)
    feasible = k < p.shape[1]
    k_safe = k.clamp(max=p.shape[1] - 1)[:, None]
    lam = (need - reached_capped.gather(1, k_safe).squeeze(1)) / slope.gather(
        1, k_safe).squeeze(1).clamp_min(1e-30)
    lam = torch.where(feasible, lam.clamp_min(0.0), torch.full_like(lam, float("inf")))
    step = torch.minimum(lam[:, None] * rate, room)
    return step * w.sign()


#: Newton steps tried before the exact sort-based solve takes over (rarely needed: each
#: step passes at least one kink, and the radius usually lies within a few).
NEWTON_STEPS = 12


def _linf_radius(room: torch.Tensor, size: torch.Tensor, need: torch.Tensor) -> torch.Tensor:
    """The Linf radius ``lam`` (N,) with ``sum_i size_i min(lam, room_i) = need`` (inf
    where even ``lam = inf`` falls short); ``room``, ``size`` (N, D) >= 0.

    ``f(lam) = sum_i size_i min(lam, room_i)`` is concave, increasing and piecewise
    linear, so Newton's method from ``lam = 0`` climbs monotonically and stops exactly on
    the root once no kink is left between iterate and root: the root is then the closed
    form on that piece, ``(need - sum_capped size room) / sum_free size``. That costs a
    few elementwise passes over (N, D) instead of sorting every row; rows still moving
    after :data:`NEWTON_STEPS` steps get the sort-based solve.
    """
    weighted = size * room
    total, total_size = weighted.sum(1), size.sum(1)
    capped = (room <= 0).to(room.dtype)  # 1 where the coordinate sits at its bound
    for _ in range(NEWTON_STEPS):
        slope = total_size - (capped * size).sum(1)
        lam = (need - (capped * weighted).sum(1)) / slope.clamp_min(1e-30)
        now = (room <= lam[:, None]).to(room.dtype)
        if torch.equal(now, capped):
            break
        capped = now
    else:
        moving = (now != capped).any(1)
        lam[moving] = _linf_radius_sorted(room[moving], size[moving], need[moving])
    return torch.where(need > total, torch.full_like(lam, float("inf")), lam.clamp_min(0.0))


def _linf_radius_sorted(room: torch.Tensor, size: torch.Tensor,
                        need: torch.Tensor) -> torch.Tensor:
    """:func:`_linf_radius` by sorting the kinks ``room`` of each row (exact, O(D log D))."""
    kink, order = room.sort(dim=1)
    size_s = size.gather(1, order)
    capped = size_s * kink
    reached_capped = capped.cumsum(dim=1) - capped
    slope = size_s.flip(1).cumsum(dim=1).flip(1)
    k = (reached_capped + kink * slope < need[:, None]).sum(dim=1)
    k_safe = k.clamp(max=room.shape[1] - 1)[:, None]
    return (need - reached_capped.gather(1, k_safe).squeeze(1)) / slope.gather(
        1, k_safe).squeeze(1).clamp_min(1e-30)


def boundary_toward(
    model: nn.Module, z: torch.Tensor, y: torch.Tensor, j: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linearize the boundary between ``y`` and ``j`` at ``z`` (N, ...).

    Returns ``(logits (N, C), g (N,), w (N, D))`` with ``g = f_j(z) - f_y(z)`` and
    ``w`` its input gradient, flattened. Cost: 1 forward + 1 backward per sample.
    """
    with torch.enable_grad(), input_grad_kernels(model):
        z = z.detach().requires_grad_(True)
        logits = model(z)
        gap = logits.gather(1, j[:, None]).squeeze(1) - logits.gather(1, y[:, None]).squeeze(1)
        (grad,) = torch.autograd.grad(gap.sum(), z)
    return logits.detach(), gap.detach(), grad.flatten(1)


def closest_boundary(
    model: nn.Module, z: torch.Tensor, y: torch.Tensor, classes: int, norm: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Linearize every boundary of ``y`` at ``z`` (N, ...) among ``classes`` logits and
    keep the nearest one.

    The distance from ``z`` to the linearized boundary with class ``j`` is
    ``|g_j| / ||w_j||_*`` (``||.||_*`` the dual norm: L1 for Linf, L2 for L2).
    Returns ``(logits (N, C), g (N,), w (N, D))`` for that class.

    The full Jacobian comes from one batched pass over C copies of each input (the
    i-th copy backpropagates logit i), so the cost is C forwards + C backwards per
    sample, counted as such by the caller.
    """
    n = z.shape[0]
    copies = z.detach().unsqueeze(1).expand(n, classes, *z.shape[1:]).reshape(
        n * classes, *z.shape[1:])
    with torch.enable_grad(), input_grad_kernels(model):
        copies = copies.clone().requires_grad_(True)
        out = model(copies).view(n, classes, classes)
        (jac,) = torch.autograd.grad(out.diagonal(dim1=1, dim2=2).sum(), copies)
    logits = out[:, 0].detach()
    jac = jac.view(n, classes, -1)
    rows = torch.arange(n, device=z.device)
    gaps = logits - logits[rows, y][:, None]
    grads = jac - jac[rows, y][:, None]
    dual = grads.abs().sum(2) if norm == "Linf" else grads.norm(dim=2)
    dist = gaps.abs() / (dual + 1e-12)
    dist[rows, y] = float("inf")
    j = dist.argmin(dim=1)
    return logits, gaps[rows, j], grads[rows, j]


def random_start_point(
    x: torch.Tensor, threat: ThreatModel, generator: draws.Source
) -> torch.Tensor:
    """A random point at distance eps/2 from each sample (N, ...), clipped to the box.

    The reference FAB restarts from ``x + (eps / 2) * t / ||t||`` with ``t`` uniform in
    [-1, 1]^D (Linf) or standard normal (L2).
    """
    if threat.norm == "Linf":
        t = 2 * draws.rand(generator, x.shape, device=x.device, dtype=x.dtype) - 1
    else:
        t = draws.randn(generator, x.shape, device=x.device, dtype=x.dtype)
    size = threat.norm_of(t).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
    return threat.clip(x + 0.5 * threat.eps * t / size)
