"""The registry of layers bound propagation supports: layer type -> its operator.

Each builder checks the layer's options and raises a CapabilityError that says what to
change when an option is outside what the operator bounds soundly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bastion.certify.chain import Normalize
from bastion.certify.ops import (
    ChannelAffine,
    Conv,
    Flatten,
    Identity,
    Linear,
    MaxPool,
    Operator,
    ReLU,
)
from bastion.errors import CapabilityError


def _maxpool(layer: nn.MaxPool2d) -> Operator:
    kernel = _pair(layer.kernel_size)
    stride = _pair(layer.stride) if layer.stride is not None else kernel
    if (stride != kernel or any(_pair(layer.padding)) or _pair(layer.dilation) != (1, 1)
            or layer.ceil_mode):
        raise CapabilityError(f"{layer}: bound propagation supports MaxPool2d with stride = "
                              "kernel size, no padding, dilation or ceil_mode; use AvgPool2d "
                              "or a strided Conv2d instead")
    return MaxPool(kernel)


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv(layer: nn.Conv2d) -> Operator:
    if isinstance(layer.padding, str) or layer.padding_mode != "zeros":
        raise CapabilityError(f"{layer} uses padding {layer.padding!r} / mode "
                              f"{layer.padding_mode!r}; bound propagation supports integer "
                              "zero padding. Rebuild the layer with padding=<int>")
    return Conv(layer.weight, layer.bias, _pair(layer.stride), _pair(layer.padding),
                _pair(layer.dilation), layer.groups)


def _avgpool(layer: nn.AvgPool2d) -> Operator:
    padding = _pair(layer.padding)
    if layer.ceil_mode or layer.divisor_override is not None or (
            any(padding) and not layer.count_include_pad):
        raise CapabilityError(f"{layer}: bound propagation supports AvgPool2d without ceil_mode "
                              "or divisor_override, counting zero padding; change these options")
    kernel = _pair(layer.kernel_size)
    stride = _pair(layer.stride) if layer.stride is not None else kernel
    return Conv(None, None, stride, padding, (1, 1), 1, pool=kernel)


def _batchnorm(layer: nn.BatchNorm1d | nn.BatchNorm2d) -> Operator:
    if layer.training or layer.running_mean is None or layer.running_var is None:
        raise CapabilityError(f"{layer} normalizes with batch statistics (train mode or no "
                              "running stats); call model.eval() and use running statistics")
    scale = 1.0 / torch.sqrt(layer.running_var + layer.eps)
    if layer.weight is not None:
        scale = scale * layer.weight
    shift = -layer.running_mean * scale
    if layer.bias is not None:
        shift = shift + layer.bias
    return ChannelAffine(scale, shift)


def _normalize(layer: Normalize) -> Operator:
    return ChannelAffine(1.0 / layer.std, -layer.mean / layer.std)


def _dropout(layer: nn.Module) -> Operator:
    if layer.training:
        raise CapabilityError(f"{layer} is in train mode (random); call model.eval()")
    return Identity()


def _flatten(layer: nn.Flatten) -> Operator:
    if layer.start_dim != 1 or layer.end_dim != -1:
        raise CapabilityError(f"{layer}: only Flatten(start_dim=1, end_dim=-1) is supported")
    return Flatten()


#: layer type -> builder of its operator. Exact types: a subclass may change forward.
OPERATORS: dict[type[nn.Module], Callable[..., Operator]] = {
    nn.Linear: Linear,
    nn.Conv2d: _conv,
    nn.AvgPool2d: _avgpool,
    nn.MaxPool2d: _maxpool,
    nn.BatchNorm1d: _batchnorm,
    nn.BatchNorm2d: _batchnorm,
    Normalize: _normalize,
    nn.ReLU: lambda layer: ReLU(),
    nn.Flatten: _flatten,
    nn.Dropout: _dropout,
    nn.Identity: lambda layer: Identity(),
}


def operator_for(layer: nn.Module) -> Operator:
    """The operator of ``layer``, or a CapabilityError naming its type and what to do."""
    build = OPERATORS.get(type(layer))
    if build is None:
        names = ", ".join(sorted(t.__name__ for t in OPERATORS))
        raise CapabilityError(
            f"layer {type(layer).__name__} ({layer}) is not supported by bound propagation; "
            f"supported layers: {names}. Replace it "
            "(e.g. by a strided Conv2d) or use method='smoothing', which works on any model"
        )
    return build(layer)
