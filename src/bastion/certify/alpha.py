"""alpha-CROWN: the ReLU lower slopes of the margin bound, optimised by gradient ascent.

CROWN's lower line ``z >= alpha h`` on an unstable ReLU is sound for every alpha in
[0, 1]; CROWN picks 0 or 1 by a rule. alpha-CROWN (Xu et al., "Fast and complete",
ICLR 2021) treats the slopes as variables and maximises the margin lower bound over
them with Adam, projecting back to [0, 1] after each step. Every iterate is a sound
bound, so the best one per margin is kept: the result is never looser than CROWN with
the same intermediate bounds (the first iterate is CROWN's adaptive slopes).

Here the intermediate bounds are full CROWN's (:func:`crown.crown_intermediate`) and
stay fixed; the slopes are per sample and per neuron, shared by the K-1 margins.

Shapes: x (N, *in); y (N,); margin lower bounds (N, K-1).
"""

from __future__ import annotations

import torch

from bastion.certify.bounds import Bounds, Network, concretize, interval_bounds, margin_spec
from bastion.certify.crown import CHUNK_FLOATS, crown_intermediate
from bastion.certify.ops import ReLU, relax_relu
from bastion.errors import ConfigError
from bastion.threat import ThreatModel

Tensor = torch.Tensor


def _lower(net: Network, spec: Tensor, pre: list[Bounds], slopes: dict[int, Tensor],
           x: Tensor, threat: ThreatModel) -> Tensor:
    """Lower bounds (N, S) of ``spec`` (N, S, K) on the output, with the given slopes
    (N, 1, *in) on the ReLUs that have them."""
    a, bias = spec, spec.new_zeros(spec.shape[:2])
    for i in range(len(net.ops) - 1, -1, -1):
        op, (lo, up) = net.ops[i], pre[i]
        if i in slopes:
            a, shift = relax_relu(a, lo.unsqueeze(1), up.unsqueeze(1), slopes[i])
            b = shift.flatten(2).sum(2)
        else:
            a, b = op.backward(a, lo, up)
        bias = bias + b
    return concretize(a, bias, x, threat)


def alpha_crown_margins(net: Network, x: Tensor, y: Tensor, threat: ThreatModel, *,
                        iterations: int = 20, lr: float = 0.1,
                        bounds: list[Bounds] | None = None,
                        chunk_floats: int = CHUNK_FLOATS) -> Tensor:
    """alpha-CROWN lower bounds (N, K-1) on the margins, the best of ``iterations`` + 1
    slope settings (the first is CROWN's)."""
    if iterations < 0 or lr <= 0:
        raise ConfigError(f"alpha-CROWN needs iterations >= 0 and lr > 0, got "
                          f"{iterations} and {lr}")
    with torch.no_grad():
        pre = list(bounds if bounds is not None else interval_bounds(net, x, threat))
        pre = crown_intermediate(net, x, threat, pre, chunk_floats)
    spec = margin_spec(y, pre[-1][0].shape[1], x.dtype)
    slopes = {i: (pre[i][1] >= -pre[i][0]).to(x.dtype).unsqueeze(1).requires_grad_()
              for i, op in enumerate(net.ops) if isinstance(op, ReLU)
              and bool(((pre[i][0] < 0) & (pre[i][1] > 0)).any())}
    with torch.no_grad():
        best = _lower(net, spec, pre, slopes, x, threat)
    if not slopes:
        return best
    optimizer = torch.optim.Adam(list(slopes.values()), lr=lr)
    with torch.enable_grad():
        for _ in range(iterations):
            lower = _lower(net, spec, pre, slopes, x, threat)
            # Gradients for the slopes only: the model's parameters are left untouched.
            grads = torch.autograd.grad(-lower.sum(), list(slopes.values()))
            for slope, grad in zip(slopes.values(), grads, strict=True):
                slope.grad = grad
            optimizer.step()
            with torch.no_grad():
                for slope in slopes.values():
                    slope.clamp_(0, 1)
                best = torch.maximum(best, lower.detach())
    with torch.no_grad():
        return torch.maximum(best, _lower(net, spec, pre, slopes, x, threat))
