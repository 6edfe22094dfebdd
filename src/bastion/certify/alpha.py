"""alpha-CROWN: ReLU lower slopes optimised by gradient ascent, at every layer's bounds.

CROWN's lower line ``z >= alpha h`` on an unstable ReLU is sound for every alpha in
[0, 1]; CROWN picks 0 or 1 by a rule. alpha-CROWN (Xu et al., "Fast and complete",
ICLR 2021) treats the slopes as variables and maximises the margin lower bound over
them with Adam, projecting back to [0, 1] after each step. Every iterate is a sound
bound, so the best one per margin is kept.

The slopes are optimised for the intermediate bounds too, not only for the margins:
each backward pass that bounds an unstable neuron (a row of full CROWN, see
:mod:`bastion.certify.crown`) has its own slopes on every ReLU below it, and the
margins have their own per margin. Tighter intermediate bounds tighten the relaxation
of the layers above (their upper lines, which neurons are unstable), so the gradient of
the margin bound reaches those slopes through them. Each iterate's intermediate bound
is the better of its own and full CROWN's (both sound), so the first iterate uses
CROWN's adaptive slopes on full CROWN's bounds; with full CROWN's second chain (see
:func:`crown.crown_margins`) it gives exactly full CROWN.

Per-sample work only: every slope belongs to one sample and Adam is elementwise, so the
result does not depend on the batch. Memory grows with the rows: one per unstable
neuron per sample, kept with their autograd copies for the backward pass. The samples
are therefore optimised in groups whose rows fit a budget
(:mod:`bastion.certify.budget`), with the same result as all at once.

Shapes: x (N, *in); y (N,); margin lower bounds (N, K-1).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from bastion.certify.bounds import (
    Bounds,
    Network,
    concretize,
    input_box,
    interval_bounds,
    margin_spec,
)
from bastion.certify.budget import sample_groups
from bastion.certify.crown import (
    CHUNK_FLOATS,
    crown_intermediate,
    exact_by_ibp,
    margin_lower,
    row_floats,
)
from bastion.certify.ops import ReLU, relax_relu
from bastion.certify.patches import Rows, _window, concretize_rows, step, unit_rows
from bastion.errors import ConfigError
from bastion.threat import ThreatModel

Tensor = torch.Tensor
#: slopes of one backward pass: ReLU index -> (R, *coefficient shape at that ReLU).
Slopes = dict[int, Tensor]
#: tensors the size of a row's coefficients that one step keeps alive for the gradient
#: (coefficients, their positive and negative parts, slopes, windows of the bounds,
#: Adam's two moments of the slopes).
SAVED_COPIES = 10


def _relu_step(rows: Rows, bounds: Bounds, slopes: Slopes, i: int) -> Rows:
    """Rows through ReLU ``i`` with their own lower slopes (made from CROWN's adaptive
    rule on the first visit)."""
    lower, upper = bounds
    if rows.top is not None:
        lo, up = _window(lower, rows), _window(upper, rows)
    else:
        lo, up = lower[rows.sample].unsqueeze(1), upper[rows.sample].unsqueeze(1)
    if i not in slopes:
        slopes[i] = (up >= -lo).to(rows.coef.dtype).expand_as(rows.coef).detach().clone()
    coef, shift = relax_relu(rows.coef, lo, up, slopes[i])
    return replace(rows, coef=coef, bias=rows.bias + shift.flatten(1).sum(1))


def _unstable_relus(net: Network, pre: list[Bounds]) -> set[int]:
    return {i for i, op in enumerate(net.ops)
            if isinstance(op, ReLU) and bool(((pre[i][0] < 0) & (pre[i][1] > 0)).any())}


def _walk(net: Network, k: int, rows: Rows, pre: list[Bounds], slopes: Slopes,
          relus: set[int]) -> Rows:
    """Rows at the input of ops[k] carried to the network input, with slopes on the
    ReLUs in ``relus`` (the others have no unstable neuron and relax exactly)."""
    for i in range(k - 1, -1, -1):
        if i in relus:
            rows = _relu_step(rows, pre[i], slopes, i)
        else:
            rows = step(net.ops[i], rows, pre[i], pre[i + 1][0].shape[1:])
    return rows


class _Problem:
    """The fixed parts of one alpha-CROWN run: reference bounds, the rows of every
    refined layer, and the slopes being optimised."""

    def __init__(self, net: Network, x: Tensor, y: Tensor, threat: ThreatModel,
                 ref: list[Bounds]) -> None:
        self.net, self.x, self.threat, self.ref = net, x, threat, ref
        self.box = input_box(x, threat)
        self.relus = _unstable_relus(net, ref)
        self.spec = margin_spec(y, ref[-1][0].shape[1], x.dtype)
        self.rows: dict[int, Rows] = {}
        self.picked: dict[int, tuple[Tensor, Tensor]] = {}
        for k in range(len(net.ops)):
            if _refined(net, k, threat, self.relus):
                low, up = ref[k][0].flatten(1), ref[k][1].flatten(1)
                sample, neuron = ((low < 0) & (up > 0)).nonzero(as_tuple=True)
                sign = torch.cat([torch.ones_like(sample), -torch.ones_like(sample)])
                self.picked[k] = (sample, neuron)
                self.rows[k] = unit_rows(sample.repeat(2), neuron.repeat(2), sign,
                                         ref[k][0].shape[1:], x.dtype)
        self.slopes: dict[int, Slopes] = {k: {} for k in [*self.rows, len(net.ops)]}

    def _layer(self, k: int, pre: list[Bounds]) -> Bounds:
        """Bounds on the input of ops[k]: the better of this iterate's and the reference."""
        rows = _walk(self.net, k, self.rows[k], pre, self.slopes[k], self.relus)
        found = concretize_rows(rows, self.x, self.box, self.threat.eps, self.threat.norm)
        sample, neuron = self.picked[k]
        count = sample.numel()
        ref_low, ref_up = self.ref[k][0].flatten(1), self.ref[k][1].flatten(1)
        low = ref_low.index_put((sample, neuron),
                                torch.maximum(found[:count], ref_low[sample, neuron]))
        up = ref_up.index_put((sample, neuron),
                              torch.minimum(-found[count:], ref_up[sample, neuron]))
        return low.view_as(self.ref[k][0]), up.view_as(self.ref[k][1])

    def margins(self) -> Tensor:
        """Margin lower bounds (N, K-1) at the current slopes, every layer recomputed."""
        # The reference holds full CROWN's bounds on layers without rows too (where they
        # left no neuron unstable): IBP's there would relax stable neurons as unstable.
        pre = list(self.ref)
        for k in self.rows:  # ascending: each layer's bounds use those below it
            pre[k] = self._layer(k, pre)
        n, s = self.spec.shape[:2]
        sample = torch.arange(n, device=self.x.device).repeat_interleave(s)
        rows = Rows(sample, self.spec.reshape(n * s, 1, -1), self.spec.new_zeros(n * s))
        rows = _walk(self.net, len(self.net.ops), rows, pre, self.slopes[len(self.net.ops)],
                     self.relus)
        a = rows.coef.reshape(n, s, *self.x.shape[1:])
        return concretize(a, rows.bias.view(n, s), self.x, self.threat)

    def parameters(self) -> list[Tensor]:
        return [t for slopes in self.slopes.values() for t in slopes.values()]


def _refined(net: Network, k: int, threat: ThreatModel, relus: set[int]) -> bool:
    """Whether alpha-CROWN bounds the input of ops[k] with rows of its own."""
    return k in relus and k > 0 and not exact_by_ibp(net, k, threat)


def sample_cost(net: Network, threat: ThreatModel, ref: list[Bounds], margins: int,
                dtype: torch.dtype) -> Tensor:
    """Floats (N,) each sample's rows hold during one iterate with their autograd copies:
    two rows per unstable neuron of a refined layer and one per margin, each the sum of
    its coefficients over the steps of its backward pass."""
    relus = _unstable_relus(net, ref)
    cost = margins * row_floats(net, len(net.ops), ref, dtype)[1] * torch.ones(
        ref[0][0].shape[0], dtype=torch.long, device=ref[0][0].device)
    for k in range(len(net.ops)):
        if _refined(net, k, threat, relus):
            low, up = ref[k][0].flatten(1), ref[k][1].flatten(1)
            cost = cost + 2 * ((low < 0) & (up > 0)).sum(1) * row_floats(net, k, ref, dtype)[1]
    return cost * SAVED_COPIES


def _optimise(problem: _Problem, best: Tensor, iterations: int, lr: float) -> Tensor:
    """The best margin lower bounds (N, K-1) over ``best`` and the slope settings of
    ``iterations`` Adam steps from CROWN's adaptive slopes."""
    with torch.no_grad():
        best = torch.maximum(best, problem.margins())  # the first iterate makes the slopes
    params = problem.parameters()
    if not params or iterations == 0:
        return best
    for p in params:
        p.requires_grad_()
    optimizer = torch.optim.Adam(params, lr=lr)
    with torch.enable_grad():
        for _ in range(iterations):
            lower = problem.margins()
            # Gradients for the slopes only: the model's parameters are left untouched.
            grads = torch.autograd.grad(-lower.sum(), params, allow_unused=True)
            for p, grad in zip(params, grads, strict=True):
                p.grad = grad
            optimizer.step()
            with torch.no_grad():
                for p in params:
                    p.clamp_(0, 1)
                best = torch.maximum(best, lower.detach())
    with torch.no_grad():
        return torch.maximum(best, problem.margins())


def alpha_crown_margins(net: Network, x: Tensor, y: Tensor, threat: ThreatModel, *,
                        iterations: int = 20, lr: float = 0.1,
                        bounds: list[Bounds] | None = None,
                        chunk_floats: int = CHUNK_FLOATS) -> Tensor:
    """alpha-CROWN lower bounds (N, K-1) on the margins, the best of ``iterations`` + 1
    slope settings (the first is full CROWN's).

    Args:
        iterations: Adam steps (>= 0). lr: Adam's step size (> 0), in slope units.
        bounds: precomputed :func:`interval_bounds` to reuse.
        chunk_floats: memory budget, in floats, of one chunk of full CROWN's rows and of
            one group of samples optimised together (see :func:`sample_cost`).
    """
    if iterations < 0 or lr <= 0:
        raise ConfigError(f"alpha-CROWN needs iterations >= 0 and lr > 0, got "
                          f"{iterations} and {lr}")
    if chunk_floats < 1:
        raise ConfigError(f"chunk_floats must be >= 1, got {chunk_floats}")
    with torch.no_grad():
        ibp = list(bounds if bounds is not None else interval_bounds(net, x, threat))
        ref = crown_intermediate(net, x, threat, ibp, chunk_floats)
        # Full CROWN's other chain, whose intermediate bounds are CROWN's alone.
        raw = crown_intermediate(net, x, threat, ibp, chunk_floats, intersect=False)
        spec = margin_spec(y, ibp[-1][0].shape[1], x.dtype)
        best = margin_lower(net, x, spec, raw, threat, chunk_floats)
        cost = sample_cost(net, threat, ref, spec.shape[1], x.dtype)
    parts = []
    for group in sample_groups(cost, chunk_floats):
        with torch.no_grad():
            problem = _Problem(net, x[group], y[group], threat,
                               [(low[group], up[group]) for low, up in ref])
        parts.append(_optimise(problem, best[group], iterations, lr))
    return torch.cat(parts)
