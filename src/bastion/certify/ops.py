"""The bound contract each layer type implements, one class per kind of layer.

Every operator answers two questions about its layer ``z = L(h)``:

- ``interval(lower, upper)``: given elementwise bounds (N, *in) on ``h``, bounds
  (N, *out) on ``z`` (interval bound propagation, Gowal et al. 2018);
- ``backward(A, lower, upper)``: given a linear function ``A z`` with A (N, S, *out),
  a matrix A_in (N, S, *in) and bias (N, S) with ``A z >= A_in h + bias`` for every h in
  [lower, upper] (the backward step of CROWN, Zhang et al. 2018). Affine layers are exact
  (equality) and ignore the bounds except for their shape; ReLU relaxes.

:data:`bastion.certify.registry.OPERATORS` maps a layer type to the function that builds
its operator. Adding a layer type means writing one class here and one entry there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


class Operator:
    """The contract every layer's operator implements (each subclass below defines all
    three methods). ``affine`` is True when ``backward`` is exact and ignores the bounds.
    """

    affine = True

    def forward(self, h: Tensor) -> Tensor:
        """The layer itself, to check the chain reproduces the model's logits."""
        raise NotImplementedError  # pragma: no cover - every operator implements it

    def interval(self, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        """IBP: elementwise bounds on the output from bounds on the input."""
        raise NotImplementedError  # pragma: no cover - every operator implements it

    def backward(self, a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        """CROWN: (A_in, bias) with ``A z >= A_in h + bias`` over the input box."""
        raise NotImplementedError  # pragma: no cover - every operator implements it


def _flat_rows(a: Tensor, lead: int) -> Tensor:
    """(N, S, *shape) -> (N*S, *shape) for ops that work on a single batch axis."""
    return a.reshape(a.shape[0] * a.shape[1], *a.shape[lead:])


class Linear(Operator):
    """``z = W h + b``; W (out, in)."""

    def __init__(self, layer: nn.Linear) -> None:
        self.weight, self.bias = layer.weight, layer.bias

    def forward(self, h: Tensor) -> Tensor:
        return F.linear(h, self.weight, self.bias)

    def interval(self, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        mid, rad = (upper + lower) / 2, (upper - lower) / 2
        center = F.linear(mid, self.weight, self.bias)
        radius = F.linear(rad, self.weight.abs())
        return center - radius, center + radius

    def backward(self, a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        a_in = a @ self.weight
        bias = a @ self.bias if self.bias is not None else a.new_zeros(a.shape[:2])
        return a_in, bias


class Conv(Operator):
    """``z = conv2d(h, W) + b``; backward is the transposed convolution of A.

    Average pooling (zero padding counted, no ceil mode) is the same operator with a
    fixed depthwise weight 1/(kh*kw), built lazily once the channel count is known.
    """

    def __init__(self, weight: Tensor | None, bias: Tensor | None, stride: tuple[int, int],
                 padding: tuple[int, int], dilation: tuple[int, int], groups: int,
                 pool: tuple[int, int] | None = None) -> None:
        self.weight, self.bias = weight, bias
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.pool = groups, pool

    def _weight(self, channels: int, like: Tensor) -> Tensor:
        if self.weight is not None:
            return self.weight
        kh, kw = self.pool or (1, 1)
        self.groups = channels
        return like.new_full((channels, 1, kh, kw), 1.0 / (kh * kw))

    def forward(self, h: Tensor) -> Tensor:
        w = self._weight(h.shape[1], h)
        return F.conv2d(h, w, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def interval(self, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        w = self._weight(lower.shape[1], lower)
        mid, rad = (upper + lower) / 2, (upper - lower) / 2
        center = F.conv2d(mid, w, self.bias, self.stride, self.padding, self.dilation,
                          self.groups)
        radius = F.conv2d(rad, w.abs(), None, self.stride, self.padding, self.dilation,
                          self.groups)
        return center - radius, center + radius

    def backward(self, a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        w = self._weight(lower.shape[1], lower)
        n, s = a.shape[:2]
        out_h, out_w = a.shape[-2:]
        in_h, in_w = lower.shape[-2:]
        kh, kw = w.shape[-2:]
        # Rows of the input that the forward conv never reads come back as output padding.
        pad = tuple(size - ((o - 1) * st - 2 * p + d * (k - 1) + 1) for size, o, st, p, d, k in
                    ((in_h, out_h, self.stride[0], self.padding[0], self.dilation[0], kh),
                     (in_w, out_w, self.stride[1], self.padding[1], self.dilation[1], kw)))
        a_in = self._transpose(_flat_rows(a, 2), w, pad, (in_h, in_w))
        a_in = a_in.reshape(n, s, *lower.shape[1:])
        if self.bias is None:
            return a_in, a.new_zeros(n, s)
        return a_in, torch.einsum("nschw,c->ns", a, self.bias)

    def _transpose(self, a: Tensor, w: Tensor, pad: tuple[int, ...],
                   size: tuple[int, int]) -> Tensor:
        """The transposed convolution of rows a (R, C_out, Ho, Wo) -> (R, C_in, *size).

        Two routes to the same numbers, picked for speed on CPU: with few input channels
        (the first layer) one matrix product into columns and ``fold``; otherwise the
        transposed convolution on channels-last rows.
        """
        if self.groups == 1 and w.shape[1] <= 4:
            cols = w.flatten(1).t() @ a.flatten(2)  # (R, C_in*kh*kw, Ho*Wo)
            return F.fold(cols, size, w.shape[-2:], self.dilation, self.padding, self.stride)
        rows = a.contiguous(memory_format=torch.channels_last)
        return F.conv_transpose2d(rows, w, None, self.stride, self.padding, pad,
                                  self.groups, self.dilation)


class ChannelAffine(Operator):
    """``z = scale[c] * h + shift[c]`` per channel (dim 1): eval-mode batch norm, Normalize."""

    def __init__(self, scale: Tensor, shift: Tensor) -> None:
        self.scale, self.shift = scale, shift

    def _view(self, t: Tensor, dims: int) -> Tensor:
        return t.view(-1, *([1] * (dims - 2)))

    def forward(self, h: Tensor) -> Tensor:
        return h * self._view(self.scale, h.dim()) + self._view(self.shift, h.dim())

    def interval(self, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        mid, rad = (upper + lower) / 2, (upper - lower) / 2
        center = self.forward(mid)
        radius = rad * self._view(self.scale.abs(), rad.dim())
        return center - radius, center + radius

    def backward(self, a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        dims = a.dim() - 1  # the view helper counts dims as if S were the batch axis
        a_in = a * self._view(self.scale, dims)
        bias = (a * self._view(self.shift, dims)).flatten(2).sum(2)
        return a_in, bias


class Flatten(Operator):
    """(N, C, H, W) -> (N, C*H*W)."""

    def forward(self, h: Tensor) -> Tensor:
        return h.flatten(1)

    def interval(self, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        return lower.flatten(1), upper.flatten(1)

    def backward(self, a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        return a.reshape(*a.shape[:2], *lower.shape[1:]), a.new_zeros(a.shape[:2])


class Identity(Operator):
    """Dropout in eval mode and nn.Identity."""

    def forward(self, h: Tensor) -> Tensor:
        return h

    def interval(self, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        return lower, upper

    def backward(self, a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        return a, a.new_zeros(a.shape[:2])


class ReLU(Operator):
    """``z = max(h, 0)``, relaxed on unstable neurons (l < 0 < u).

    Upper line: ``z <= u (h - l) / (u - l)``. Lower line: ``z >= alpha h`` with the
    adaptive slope of CROWN (Zhang et al. 2018): alpha = 1 if u >= -l else 0, which gives
    the smaller area between the two lines.
    """

    affine = False

    def forward(self, h: Tensor) -> Tensor:
        return h.clamp_min(0)

    def interval(self, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        return lower.clamp_min(0), upper.clamp_min(0)

    def backward(self, a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        n, s = a.shape[:2]
        a_in, bias = _relax_pairs(a.reshape(n, s, -1), lower.flatten(1), upper.flatten(1))
        return a_in.view_as(a), bias


def _relax_pairs(a: Tensor, lo: Tensor, up: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`relax_relu` with the adaptive slopes for A (N, S, F) and bounds (N, F):
    (a_in (N, S, F), bias (N, S)). One pass scales A by each neuron's upper slope (the
    exact slope of a stable neuron); only the unstable (sample, neuron) pairs, usually a
    few percent, are then corrected to the lower slope where A > 0 and give a bias."""
    unstable = (lo < 0) & (up > 0)
    width = (up - lo).clamp_min(1e-12)
    up_slope = torch.where(unstable, up / width, (lo >= 0).to(a.dtype))
    a_in = a * up_slope.unsqueeze(1)
    sample, neuron = unstable.nonzero(as_tuple=True)
    lo_u, up_u = lo[sample, neuron], up[sample, neuron]
    part = a[sample, :, neuron]  # (P, S)
    low_slope = (up_u >= -lo_u).to(a.dtype)
    a_in[sample, :, neuron] = torch.where(part >= 0, part * low_slope[:, None],
                                          part * up_slope[sample, neuron][:, None])
    shift = part.clamp_max(0) * (-lo_u * up_u / width[sample, neuron])[:, None]
    bias = a.new_zeros(a.shape[:2]).index_add_(0, sample, shift)
    return a_in, bias


def relax_relu(a: Tensor, lo: Tensor, up: Tensor,
               alpha: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """CROWN's step through a ReLU for coefficients ``a`` and input bounds broadcastable
    to it: (a_in, shift) with ``a relu(h) >= a_in h + shift`` elementwise (sum ``shift``
    over the neurons for the bias). Shared by the dense and the patch representations.

    ``alpha`` (broadcastable, in [0, 1]): the lower line's slope on unstable neurons in
    place of the adaptive one; every slope in [0, 1] gives a sound lower line.
    """
    active, unstable = lo >= 0, (lo < 0) & (up > 0)
    width = (up - lo).clamp_min(1e-12)
    up_slope = torch.where(unstable, up / width, active.to(a.dtype))
    up_shift = torch.where(unstable, -lo * up / width, torch.zeros_like(lo))
    slope = (up >= -lo).to(a.dtype) if alpha is None else alpha
    low_slope = torch.where(unstable, slope, active.to(a.dtype))
    # A lower bound on A z takes the lower line where A > 0, the upper one where A < 0.
    pos, neg = a.clamp_min(0), a.clamp_max(0)
    return pos * low_slope + neg * up_slope, neg * up_shift


class MaxPool(Operator):
    """Max pooling over non-overlapping windows (stride = kernel, no padding).

    Per window with inputs h_i in [l_i, u_i], let j be the input with the largest lower
    bound. Lower line: ``z >= h_j`` (the max is at least any input). Upper: ``z <= h_j``
    when l_j >= u_i for every other i (then the max is h_j exactly), else the constant
    ``z <= max_i u_i``. Simple and sound; tighter upper lines exist.
    """

    affine = False

    def __init__(self, kernel: tuple[int, int]) -> None:
        self.kernel = kernel

    def forward(self, h: Tensor) -> Tensor:
        return F.max_pool2d(h, self.kernel, self.kernel)

    def interval(self, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        return self.forward(lower), self.forward(upper)

    def backward(self, a: Tensor, lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
        best_low, idx = F.max_pool2d(lower, self.kernel, self.kernel, return_indices=True)
        flat_idx = idx.flatten(2)  # (N, C, Ho*Wo) positions in H*W, one per window
        others = upper.flatten(2).scatter(2, flat_idx, float("-inf")).view_as(upper)
        exact = best_low >= self.forward(others)  # (N, C, Ho, Wo)
        top = self.forward(upper)
        exact_, top_ = exact.unsqueeze(1), top.unsqueeze(1)
        coef = torch.where(exact_, a, a.clamp_min(0))
        bias = torch.where(exact_, torch.zeros_like(a), a.clamp_max(0) * top_).flatten(2).sum(2)
        n, s, c = a.shape[:3]
        a_in = a.new_zeros(n, s, c, lower.shape[-2] * lower.shape[-1])
        a_in.scatter_(3, flat_idx.unsqueeze(1).expand(n, s, -1, -1), coef.flatten(3))
        return a_in.view(n, s, *lower.shape[1:]), bias
