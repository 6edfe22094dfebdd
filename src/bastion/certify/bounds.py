"""IBP and CROWN bounds on the classification margins ``z_y - z_j`` of a chain network.

A sample is certified at a threat model when the lower bound of every margin is > 0:
no input in the ball (intersected with the box ``bounds``) can change the prediction.

- IBP (Gowal et al., "On the effectiveness of interval bound propagation", 2018): push a
  box through the layers. The margin specification C is folded into the last affine
  layer (bounds of C W h instead of C applied to bounds of W h), which is tighter.
- CROWN (Zhang et al., "Efficient neural network robustness certification with general
  activation functions", NeurIPS 2018): a backward pass that carries a linear function of
  the layer's output down to the input, relaxing each ReLU by two lines; the input set is
  then handled exactly (box) or by the dual norm (L2 ball). This module holds the
  backward pass and the concretization; :mod:`bastion.certify.crown` the CROWN bounds.

Shapes: x (N, *in); y (N,); margin bounds (N, K-1) for K classes, in the order of the
classes with the true one left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bastion.certify.chain import layers_of
from bastion.certify.ops import Operator
from bastion.certify.registry import operator_for
from bastion.errors import CapabilityError
from bastion.threat import ThreatModel

Tensor = torch.Tensor
Bounds = tuple[Tensor, Tensor]

@dataclass
class Network:
    """A model read as a chain of operators (see :func:`compile_network`)."""

    ops: list[Operator]

    def forward(self, x: Tensor) -> Tensor:
        for op in self.ops:
            x = op.forward(x)
        return x


def compile_network(model: nn.Module) -> Network:
    """The operators of ``model``'s layers, in order; CapabilityError if unsupported."""
    ops = [operator_for(layer) for layer in layers_of(model)]
    if not ops:
        raise CapabilityError("the model has no layers to bound")
    return Network(ops)


def input_box(x: Tensor, threat: ThreatModel) -> Bounds:
    """The Linf box of radius eps around x clipped to bounds; for L2 and L1 the box holds
    the ball."""
    low, high = threat.bounds
    return (x - threat.eps).clamp(low, high), (x + threat.eps).clamp(low, high)


def margin_spec(y: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """C (N, K-1, K) with rows e_y - e_j for every j != y, so that C z = margins."""
    n = y.shape[0]
    eye = torch.eye(num_classes, dtype=dtype, device=y.device)
    others = torch.arange(num_classes, device=y.device).expand(n, -1)
    others = others[others != y[:, None]].view(n, num_classes - 1)
    return eye[y][:, None, :] - eye[others]


def _affine_interval(a: Tensor, bias: Tensor, lower: Tensor, upper: Tensor) -> Bounds:
    """Exact bounds (N, S) of ``a h + bias`` over the box [lower, upper] (N, *in)."""
    mid, rad = ((upper + lower) / 2).flatten(1), ((upper - lower) / 2).flatten(1)
    flat = a.flatten(2)
    center = torch.einsum("nsi,ni->ns", flat, mid) + bias
    radius = torch.einsum("nsi,ni->ns", flat.abs(), rad)
    return center - radius, center + radius


def interval_bounds(net: Network, x: Tensor, threat: ThreatModel) -> list[Bounds]:
    """IBP bounds on the input of every operator plus the output: K+1 pairs (N, *shape)."""
    bounds = [input_box(x, threat)]
    for op in net.ops:
        bounds.append(op.interval(*bounds[-1]))
    return bounds


def ibp_margins(net: Network, x: Tensor, y: Tensor, threat: ThreatModel,
                bounds: list[Bounds] | None = None) -> Bounds:
    """IBP lower and upper bounds (N, K-1) on the margins, last layer folded with C."""
    bounds = bounds if bounds is not None else interval_bounds(net, x, threat)
    spec = margin_spec(y, bounds[-1][0].shape[1], x.dtype)
    last = net.ops[-1]
    if last.affine:
        a, bias = last.backward(spec, *bounds[-2])
        return _affine_interval(a, bias, *bounds[-2])
    return _affine_interval(spec, spec.new_zeros(spec.shape[:2]), *bounds[-1])


def backward_to_input(net: Network, upto: int, a: Tensor,
                      pre: list[Bounds]) -> tuple[Tensor, Tensor]:
    """Carry ``a`` (N, S, *shape of ops[upto]'s input) down to the network input.

    Returns A_in (N, S, *in) and bias (N, S) with ``a z >= A_in x + bias`` for every x in
    the input set, where z is the input of ``ops[upto]`` (``upto = len(ops)``: the output).
    ``pre[i]`` bounds the input of ``ops[i]``; only ReLU inputs are read.
    """
    bias = a.new_zeros(a.shape[:2])
    for i in range(upto - 1, -1, -1):
        a, b = net.ops[i].backward(a, *pre[i])
        bias = bias + b
    return a, bias


def concretize(a: Tensor, bias: Tensor, x: Tensor, threat: ThreatModel) -> Tensor:
    """Lower bound (N, S) of ``a x' + bias`` over x' in the ball around x ∩ the box.

    Linf: the set is a box and the bound is exact. L2 (L1): the better of the dual-norm
    bound over the ball, ``a x - eps ||a||_2`` (``||a||_inf``), and the exact bound over
    the Linf box that holds ball ∩ bounds; both sets contain ball ∩ bounds, so both bounds
    are sound.
    """
    box_lower, _ = _affine_interval(a, bias, *input_box(x, threat))
    if threat.norm == "Linf":
        return box_lower
    flat = a.flatten(2)
    # Hölder: the worst case of a.d over ||d||_p <= eps is eps times the dual norm of a
    # (L2 for L2, Linf for L1).
    dual = flat.norm(dim=2) if threat.norm == "L2" else flat.abs().amax(dim=2)
    ball = torch.einsum("nsi,ni->ns", flat, x.flatten(1)) + bias - threat.eps * dual
    return torch.maximum(box_lower, ball)
