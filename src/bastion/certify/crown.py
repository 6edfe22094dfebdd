"""CROWN bounds on the margins: full CROWN and CROWN-IBP.

CROWN (Zhang et al., NeurIPS 2018) needs bounds on every ReLU's input. CROWN-IBP (Zhang
et al., ICLR 2020) takes them from IBP: one backward pass in all. Full CROWN computes
them with CROWN itself, layer by layer, one backward pass per unstable neuron: here per
sample, only for the neurons that sample leaves unstable, as rows with patches on the
convolutions (:mod:`bastion.certify.patches`), by chunks of at most ``chunk_floats``
floats (:mod:`bastion.certify.budget`); the margins' backward pass takes the samples in
chunks under the same budget. The dense reference (``dense=True``: identity
specifications over every neuron any sample leaves unstable) computes the same bounds
more slowly; tests compare them.

Shapes: x (N, *in); y (N,); margin bounds (N, K-1) for K classes, in the order of the
classes with the true one left out.
"""

from __future__ import annotations

import torch

from bastion.certify.bounds import (
    Bounds,
    Network,
    backward_to_input,
    concretize,
    input_box,
    interval_bounds,
    margin_spec,
)
from bastion.certify.budget import DEFAULT_MAX_MEMORY_MB, budget_floats
from bastion.certify.ops import Conv, Linear
from bastion.certify.patches import Rows, concretize_rows, step, unit_rows
from bastion.errors import ConfigError
from bastion.threat import ThreatModel

Tensor = torch.Tensor

#: default memory budget of one chunk of backward specifications, in float32 numbers:
#: the rows of a chunk and their working copies.
CHUNK_FLOATS = budget_floats(DEFAULT_MAX_MEMORY_MB)
#: numbers held per coefficient of a chunk's widest step, for the chunk sizes: the
#: coefficients, the bounds gathered under them, the relaxation's slopes and masks, the
#: result and the allocator's slack. Measured: peak resident memory of full CROWN on a
#: four-conv net stayed within the budget with this factor (docs/certify.md).
COPIES = 24


def exact_by_ibp(net: Network, k: int, threat: ThreatModel) -> bool:
    """True when IBP's bounds on the input of ``ops[k]`` are exact, so CROWN cannot
    tighten them: the input set is a box (Linf), every op below is affine and at most one
    mixes neurons (per-neuron affine maps take a box to a box, and one mixing affine map
    is bounded exactly). Under L2 CROWN's dual-norm bound can beat IBP's box."""
    ops = net.ops[:k]
    return (threat.norm == "Linf" and all(op.affine for op in ops)
            and sum(isinstance(op, Linear | Conv) for op in ops) <= 1)


def _walk(net: Network, k: int, rows: Rows, pre: list[Bounds]) -> tuple[Rows, int, int]:
    """Rows at the input of ops[k] carried to the network input; also the most floats
    one row held on the way and their sum over the steps."""
    peak = total = rows.coef[0].numel()
    for i in range(k - 1, -1, -1):
        rows = step(net.ops[i], rows, pre[i], pre[i + 1][0].shape[1:])
        peak, total = max(peak, rows.coef[0].numel()), total + rows.coef[0].numel()
    return rows, peak, total


def row_floats(net: Network, k: int, pre: list[Bounds], dtype: torch.dtype) -> tuple[int, int]:
    """The most floats one unit row from ops[k]'s input holds at a step of its backward
    pass, and their sum over the steps: a dry run of one row (every row at a layer has
    the same patch sizes)."""
    shape = pre[k][0].shape[1:]
    one = torch.zeros(1, dtype=torch.long, device=pre[0][0].device)
    _, peak, total = _walk(net, k, unit_rows(one, one, one + 1, shape, dtype), pre)
    return peak, total


def layer_bounds(net: Network, k: int, x: Tensor, threat: ThreatModel, pre: list[Bounds],
                 chunk_floats: int = CHUNK_FLOATS) -> Bounds:
    """Full-CROWN bounds (N, *shape) on the input of ``ops[k]``.

    Only (sample, neuron) pairs the current bounds leave unstable (lower < 0 < upper) are
    refined: a stable ReLU is relaxed exactly whatever its bounds. Each pair gives two
    rows, +e_i for the lower bound and -e_i for minus the upper bound.
    """
    shape = pre[k][0].shape[1:]
    low, up = pre[k][0].flatten(1).clone(), pre[k][1].flatten(1).clone()
    sample, neuron = ((low < 0) & (up > 0)).nonzero(as_tuple=True)
    if sample.numel() == 0:
        return pre[k]
    count = sample.numel()
    sample, neuron = sample.repeat(2), neuron.repeat(2)
    sign = torch.ones(2 * count, device=x.device)
    sign[count:] = -1
    size = max(1, chunk_floats // (COPIES * row_floats(net, k, pre, x.dtype)[0]))
    box, found = input_box(x, threat), low.new_empty(2 * count)
    for start in range(0, 2 * count, size):
        part = slice(start, start + size)
        rows, _, _ = _walk(net, k, unit_rows(sample[part], neuron[part], sign[part], shape,
                                             x.dtype), pre)
        found[part] = concretize_rows(rows, x, box, threat.eps, threat.norm)
    low[sample[:count], neuron[:count]] = found[:count]
    up[sample[:count], neuron[:count]] = -found[count:]
    return low.view(-1, *shape), up.view(-1, *shape)


def dense_layer_bounds(net: Network, k: int, x: Tensor, threat: ThreatModel,
                       pre: list[Bounds], chunk_floats: int = CHUNK_FLOATS) -> Bounds:
    """The reference for :func:`layer_bounds`: identity specifications over every neuron
    any sample leaves unstable, carried densely; the same bounds, more work."""
    shape = pre[k][0].shape[1:]
    low, up = pre[k][0].flatten(1).clone(), pre[k][1].flatten(1).clone()
    todo = ((low < 0) & (up > 0)).any(0).nonzero().squeeze(1)
    widest = max(b[0][0].numel() for b in pre[:k + 1])
    rows = max(1, chunk_floats // max(1, 2 * x.shape[0] * widest))
    for start in range(0, todo.numel(), rows):
        which = todo[start:start + rows]
        block = x.new_zeros(which.numel(), shape.numel())
        block[torch.arange(which.numel(), device=x.device), which] = 1.0
        block = block.view(-1, *shape)
        # Lower bounds of +e_i and of -e_i (= minus the upper bound) in one pass.
        spec = torch.cat([block, -block]).unsqueeze(0).expand(x.shape[0], *[-1] * (1 + len(shape)))
        a, bias = backward_to_input(net, k, spec, pre)
        lower = concretize(a, bias, x, threat)
        low[:, which] = lower[:, :which.numel()]
        up[:, which] = -lower[:, which.numel():]
    return low.view(-1, *shape), up.view(-1, *shape)


def margin_lower(net: Network, x: Tensor, spec: Tensor, pre: list[Bounds],
                 threat: ThreatModel, chunk_floats: int = CHUNK_FLOATS) -> Tensor:
    """Lower bounds (N, S) of ``spec`` (N, S, K) applied to the output, by a dense backward
    pass over chunks of samples whose coefficients fit ``chunk_floats``."""
    widest = max(b[0][0].numel() for b in pre)
    size = max(1, chunk_floats // (COPIES * spec.shape[1] * widest))
    parts = []
    for start in range(0, x.shape[0], size):
        part = slice(start, start + size)
        a, bias = backward_to_input(net, len(net.ops), spec[part],
                                    [(low[part], up[part]) for low, up in pre])
        parts.append(concretize(a, bias, x[part], threat))
    return torch.cat(parts)


def crown_intermediate(net: Network, x: Tensor, threat: ThreatModel, pre: list[Bounds],
                       chunk_floats: int = CHUNK_FLOATS, dense: bool = False,
                       intersect: bool = True) -> list[Bounds]:
    """``pre`` (IBP bounds on every op's input) with each non-affine op's input bounds
    replaced, layer by layer, by the tighter of CROWN's and IBP's (``intersect``) or by
    CROWN's alone (IBP's still decide which neurons CROWN refines)."""
    ibp = pre
    pre = list(pre)
    refine = dense_layer_bounds if dense else layer_bounds
    for k, op in enumerate(net.ops):
        if not op.affine and k > 0 and (dense or not exact_by_ibp(net, k, threat)):
            low, up = refine(net, k, x, threat, pre, chunk_floats)
            if intersect:
                pre[k] = (torch.maximum(low, ibp[k][0]), torch.minimum(up, ibp[k][1]))
            else:
                pre[k] = (low, up)
    return pre


def crown_margins(net: Network, x: Tensor, y: Tensor, threat: ThreatModel, *,
                  intermediate: str = "crown", bounds: list[Bounds] | None = None,
                  chunk_floats: int = CHUNK_FLOATS, dense: bool = False,
                  upper: bool = True) -> Bounds:
    """CROWN lower and upper bounds (N, K-1) on the margins.

    Args:
        intermediate: ``"crown"`` computes every ReLU's input bounds with CROWN (tighter,
            one backward pass per unstable neuron), twice: keeping the tighter of CROWN
            and IBP per neuron, and CROWN's alone; each margin takes the better of the
            two (all are sound). ``"ibp"`` uses IBP's (CROWN-IBP, one backward pass in
            all).
        bounds: precomputed :func:`interval_bounds` to reuse.
        chunk_floats: memory budget of one chunk of specifications, in floats (> 0).
        dense: use the dense reference path for the intermediate bounds.
        upper: also bound the margins from above (a second backward pass per margin);
            without it the upper bounds returned are +inf.
    """
    if intermediate not in ("crown", "ibp"):
        raise ConfigError(f"intermediate must be 'crown' or 'ibp', got {intermediate!r}")
    if chunk_floats < 1:
        raise ConfigError(f"chunk_floats must be >= 1, got {chunk_floats}")
    ibp = list(bounds if bounds is not None else interval_bounds(net, x, threat))
    chains = [ibp]
    if intermediate == "crown":
        # With adaptive slopes the margin bound is not monotone in the intermediate
        # bounds: intersecting CROWN's with IBP's tightens every layer yet can loosen
        # some margins. Both chains are sound; each margin keeps the better.
        chains = [crown_intermediate(net, x, threat, ibp, chunk_floats, dense, intersect)
                  for intersect in (True, False)]
    spec = margin_spec(y, ibp[-1][0].shape[1], x.dtype)
    half = spec.shape[1]
    if upper:
        spec = torch.cat([spec, -spec], 1)
    lower = torch.stack([margin_lower(net, x, spec, pre, threat, chunk_floats)
                         for pre in chains]).amax(0)
    if not upper:
        return lower, torch.full_like(lower, float("inf"))
    return lower[:, :half], -lower[:, half:]
