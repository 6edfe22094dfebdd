"""A faster input gradient for single-channel CPU convolutions (grayscale first layers).

A white-box attack needs the gradient of its loss with respect to the *input* only. For a
Conv2d that gradient is a transposed convolution, and PyTorch's CPU kernel for it is slow
when the layer reads a single channel: on the first layer of Wong et al.'s MNIST net
(1 -> 16 channels, 4x4, stride 2), one thread, 170 images, the whole forward+backward
pass took 11.4 ms channels-last and 13.3 ms in the default layout; computing that one
layer's input gradient as a batched matrix product (the weights against the output
gradient) followed by col2im (``F.fold``) brought it to 9.3 ms and 10.4 ms. On the next
layer (16 -> 32 channels) the matrix product was slower than PyTorch's kernel, so only
single-channel layers take this path: a fixed rule, not a timed choice, so the same
model always gets the same gradients.

:func:`input_grad_kernels` routes such layers, for the length of a block, through a
convolution whose backward uses the matrix product (weight and bias gradients, if
anything asks for them, still come from PyTorch's kernel). The forward pass is PyTorch's
own; input gradients agree up to float rounding. Only plain Conv2d layers on the CPU
(no groups, zero padding given as numbers) qualify. Set ``BASTION_FOLD_GRAD=0`` to turn
it off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import MethodType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class _FoldConv(torch.autograd.Function):
    """conv2d whose input gradient is a batched matrix product followed by col2im."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                conv: nn.Conv2d) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.conv = conv
        return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        conv: nn.Conv2d = ctx.conv
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = fold_input_grad(grad, weight, x.shape, conv).to(x.dtype)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            bias_sizes = [weight.shape[0]] if conv.bias is not None else None
            mask = [False, ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
            _, grad_w, grad_b = torch.ops.aten.convolution_backward(
                grad, x, weight, bias_sizes, list(conv.stride), list(conv.padding),
                list(conv.dilation), False, [0, 0], 1, mask)
        return grad_x, grad_w, grad_b, None


def fold_input_grad(grad: torch.Tensor, weight: torch.Tensor, shape: torch.Size,
                    conv: nn.Conv2d) -> torch.Tensor:
    """Input gradient (N, C_in, H, W) of ``conv`` from its output gradient (N, C_out, H',
    W'): each output position spreads ``weight`` times its gradient over its window."""
    flat = grad.flatten(2)  # (N, C_out, H'W')
    taps = weight.flatten(1).t().to(flat.dtype)  # (C_in*kh*kw, C_out)
    cols = torch.bmm(taps.expand(flat.shape[0], -1, -1), flat)  # (N, C_in*kh*kw, H'W')
    padding = conv.padding
    if isinstance(padding, str):  # refused by qualifies(); here for the type checker
        raise ValueError(f"padding {padding!r} needs PyTorch's own kernel")
    return F.fold(cols, tuple(shape[-2:]), conv.kernel_size, dilation=conv.dilation,
                  padding=padding, stride=conv.stride)


def _fold_forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 4:  # an unbatched (C, H, W) input: PyTorch's own path
        return self._conv_forward(x, self.weight, self.bias)
    out: torch.Tensor = _FoldConv.apply(x, self.weight, self.bias, self)
    return out


def qualifies(layer: nn.Module) -> bool:
    """Whether ``layer`` takes the matrix-product path: a plain single-channel Conv2d."""
    return (type(layer) is nn.Conv2d and layer.in_channels == 1 and layer.groups == 1
            and layer.padding_mode == "zeros" and not isinstance(layer.padding, str)
            and "forward" not in layer.__dict__ and layer.weight.device.type == "cpu")


@contextmanager
def input_grad_kernels(model: nn.Module) -> Iterator[None]:
    """Within the block, gradients through ``model``'s single-channel Conv2d layers use
    the matrix-product kernel (see the module docstring)."""
    if os.environ.get("BASTION_FOLD_GRAD", "1") == "0":
        yield
        return
    layers = [m for m in model.modules() if qualifies(m)]
    for layer in layers:
        # An instance attribute shadows Conv2d.forward; deleting it restores the class's.
        layer.forward = MethodType(_fold_forward, layer)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward
