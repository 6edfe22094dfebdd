"""Backward specifications carried as rows: one per (sample, neuron, sign), patches on convs.

Full CROWN bounds each unstable neuron of a layer by a backward pass from the unit
vector at that neuron. Held densely, that specification covers the whole layer; after a
convolution it is nonzero only on a small window (the neuron's receptive field). Here a
specification is a *row*: the sample it belongs to, a bias, and its coefficients, either

- a **patch** (C, kh, kw) whose top-left corner sits at (``top``, ``left``) in the current
  tensor (C, H, W), zero outside the tensor, as long as the layers below are
  convolutions, per-channel affine maps and ReLUs (the patches of auto_LiRPA, Xu et al.
  2020, in a row layout), or
- **dense** (1, *shape) once a layer needs the whole tensor (Linear, Flatten, MaxPool):
  the operators' own ``backward`` then runs on rows as N = R, S = 1.

Each row depends only on its own sample, so results do not depend on the batch size,
and rows are processed in chunks to bound memory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from bastion.certify.ops import ChannelAffine, Conv, Identity, Operator, ReLU, relax_relu

Tensor = torch.Tensor
Bounds = tuple[Tensor, Tensor]


@dataclass
class Rows:
    """R specifications: ``coef`` (R, C, kh, kw) patches when ``top`` is set, else dense
    (R, 1, *shape); ``sample`` (R,) long; ``bias`` (R,); ``top``/``left`` (R,) long."""

    sample: Tensor
    coef: Tensor
    bias: Tensor
    top: Tensor | None = None
    left: Tensor | None = None


def unit_rows(sample: Tensor, neuron: Tensor, sign: Tensor, shape: torch.Size,
              dtype: torch.dtype) -> Rows:
    """Rows ``sign * e_neuron`` at a layer of ``shape`` (C, H, W) or (F,): 1x1 patches
    for an image-shaped layer, dense otherwise. neuron indexes the flattened layer."""
    r = sample.numel()
    arange = torch.arange(r, device=sample.device)
    bias = torch.zeros(r, dtype=dtype, device=sample.device)
    if len(shape) == 3:
        channels, height, width = shape
        coef = torch.zeros(r, channels, 1, 1, dtype=dtype, device=sample.device)
        coef[arange, neuron // (height * width), 0, 0] = sign.to(dtype)
        spot = neuron % (height * width)
        return Rows(sample, coef, bias, spot // width, spot % width)
    coef = torch.zeros(r, 1, shape.numel(), dtype=dtype, device=sample.device)
    coef[arange, 0, neuron] = sign.to(dtype)
    return Rows(sample, coef.view(r, 1, *shape), bias)


def _offsets(start: Tensor, size: int) -> Tensor:
    return start[:, None] + torch.arange(size, device=start.device)


def _window(t: Tensor, rows: Rows, sample: Tensor | None = None) -> Tensor:
    """The values of t (N, C, H, W) under each row's patch: (R, C, kh, kw), 0 outside t."""
    assert rows.top is not None and rows.left is not None
    kh, kw = rows.coef.shape[-2:]
    height, width = t.shape[-2:]
    pads = (max(0, -int(rows.left.min())), max(0, int(rows.left.max()) + kw - width),
            max(0, -int(rows.top.min())), max(0, int(rows.top.max()) + kh - height))
    padded = F.pad(t, pads)
    ys = _offsets(rows.top + pads[2], kh)[:, None, :, None]
    xs = _offsets(rows.left + pads[0], kw)[:, None, None, :]
    chans = torch.arange(t.shape[1], device=t.device)[None, :, None, None]
    who = (rows.sample if sample is None else sample)[:, None, None, None]
    return padded[who, chans, ys, xs]


def _inside(start: Tensor, size: int, limit: int) -> Tensor:
    spots = _offsets(start, size)
    return (spots >= 0) & (spots < limit)


def _conv(op: Conv, rows: Rows, lower: Tensor) -> Rows:
    """Through ``z = conv(h) + b``: the patch grows by the kernel (transposed conv)."""
    assert rows.top is not None and rows.left is not None
    w = op._weight(lower.shape[1], lower)
    bias = rows.bias
    if op.bias is not None:  # the patch is zero outside the output, so no padding is counted
        bias = bias + torch.einsum("rchw,c->r", rows.coef, op.bias)
    coef = F.conv_transpose2d(rows.coef, w, None, op.stride, 0, 0, op.groups, op.dilation)
    top = rows.top * op.stride[0] - op.padding[0]
    left = rows.left * op.stride[1] - op.padding[1]
    # Zero what falls in the padding: the invariant every later step relies on.
    keep = (_inside(top, coef.shape[-2], lower.shape[-2])[:, None, :, None]
            & _inside(left, coef.shape[-1], lower.shape[-1])[:, None, None, :])
    return Rows(rows.sample, coef * keep, bias, top, left)


def _to_dense(rows: Rows, shape: torch.Size) -> Rows:
    """Patches -> dense (R, 1, C, H, W) rows at a tensor of ``shape`` (C, H, W)."""
    assert rows.top is not None and rows.left is not None
    r, channels, kh, kw = rows.coef.shape
    height, width = shape[-2:]
    pad_top, pad_left = max(0, -int(rows.top.min())), max(0, -int(rows.left.min()))
    full = rows.coef.new_zeros(r, channels, height + pad_top + kh, width + pad_left + kw)
    ys = _offsets(rows.top + pad_top, kh)[:, None, :, None]
    xs = _offsets(rows.left + pad_left, kw)[:, None, None, :]
    who = torch.arange(r, device=full.device)[:, None, None, None]
    chans = torch.arange(channels, device=full.device)[None, :, None, None]
    full[who, chans, ys, xs] = rows.coef
    dense = full[:, :, pad_top:pad_top + height, pad_left:pad_left + width]
    return Rows(rows.sample, dense.unsqueeze(1), rows.bias)


def step(op: Operator, rows: Rows, bounds: Bounds, out_shape: torch.Size) -> Rows:
    """Carry rows over op's output (``out_shape``, without N) back to its input, which
    ``bounds`` (N, *in) bound."""
    lower, upper = bounds
    if rows.top is not None:
        if isinstance(op, Conv):
            return _conv(op, rows, lower)
        if isinstance(op, ReLU):
            coef, shift = relax_relu(rows.coef, _window(lower, rows), _window(upper, rows))
            return replace(rows, coef=coef, bias=rows.bias + shift.flatten(1).sum(1))
        if isinstance(op, ChannelAffine):
            scale, shift = op.scale.view(1, -1, 1, 1), op.shift.view(1, -1, 1, 1)
            return replace(rows, coef=rows.coef * scale,
                           bias=rows.bias + (rows.coef * shift).flatten(1).sum(1))
        if isinstance(op, Identity):
            return rows
        rows = _to_dense(rows, out_shape)
    a, bias = op.backward(rows.coef, lower[rows.sample], upper[rows.sample])
    return Rows(rows.sample, a, rows.bias + bias[:, 0])


def concretize_rows(rows: Rows, x: Tensor, box: Bounds, eps: float, norm: str) -> Tensor:
    """Lower bound (R,) of each row's linear function of the input over the input set:
    exact over the box (N, *in); for L2 also the dual-norm bound over the ball around x,
    keeping the better (both sets hold ball ∩ bounds)."""
    mid, rad = (box[1] + box[0]) / 2, (box[1] - box[0]) / 2
    if rows.top is not None:
        coef = rows.coef.flatten(1)
        at_mid, at_rad = _window(mid, rows).flatten(1), _window(rad, rows).flatten(1)
        at_x = _window(x, rows).flatten(1) if norm == "L2" else None
    else:
        coef = rows.coef.flatten(1)
        at_mid, at_rad = mid[rows.sample].flatten(1), rad[rows.sample].flatten(1)
        at_x = x[rows.sample].flatten(1) if norm == "L2" else None
    lower = rows.bias + (coef * at_mid).sum(1) - (coef.abs() * at_rad).sum(1)
    if at_x is None:
        return lower
    ball = rows.bias + (coef * at_x).sum(1) - eps * coef.norm(dim=1)
    return torch.maximum(lower, ball)
