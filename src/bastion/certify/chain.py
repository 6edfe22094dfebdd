"""Turn a model into a plain chain of layers that bound propagation can walk.

Bound propagation needs the network as ``f = L_K ∘ ... ∘ L_1``. Two ways of writing a
model give that chain:

- ``nn.Sequential`` (nested Sequentials are flattened), as in the zoo's ``MLP`` and
  ``WongSmall``;
- any other module whose ``forward`` is a straight line of calls, read with
  ``torch.fx`` (the zoo's ``SmallCNN`` and ``LeNet5``): each step must take the previous
  step's output as its only tensor input. ``torch.relu``, ``F.relu``, ``x.relu()``,
  ``torch.flatten(x, 1)`` and ``x.flatten(1)`` become ``nn.ReLU`` / ``nn.Flatten``.

A model that branches (residual connections) or calls something else gets a
:class:`~bastion.errors.CapabilityError` naming the step; randomized smoothing
(``method="smoothing"``) still works on it, since it only needs forward passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from bastion.errors import CapabilityError


class Normalize(nn.Module):
    """Per-channel input normalization ``(x - mean) / std`` as a layer.

    Put it first in an ``nn.Sequential`` so the model still takes inputs in [0, 1] and
    certificates stay in pixel units.

    Args:
        mean: per-channel means, length C.
        std: per-channel standard deviations, length C, all > 0.

    Shapes: (N, C, ...) -> (N, C, ...).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise CapabilityError(f"Normalize needs mean and std of one length with std > 0, "
                                  f"got mean={list(mean)} std={list(std)}")
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)


_RELU_FUNCTIONS: tuple[Any, ...] = (torch.relu, F.relu)
_FLATTEN_FUNCTIONS: tuple[Any, ...] = (torch.flatten,)
_MAXPOOL_FUNCTIONS: tuple[Any, ...] = (torch.max_pool2d, F.max_pool2d)


def layers_of(model: nn.Module) -> list[nn.Module]:
    """The model as a list of leaf layers applied in order.

    Raises:
        CapabilityError: the forward pass is not a plain chain, naming the first step
            that breaks it and what to do.
    """
    if isinstance(model, nn.Sequential):
        out: list[nn.Module] = []
        for child in model:
            out += layers_of(child)
        return out
    from bastion.zoo.formats import ExportedModel  # here: bastion.zoo imports this module

    if isinstance(model, (torch.jit.ScriptModule, ExportedModel)):
        form = "TorchScript" if isinstance(model, torch.jit.ScriptModule) else "torch.export"
        raise CapabilityError(
            f"a {form} model is compiled code, which bound propagation cannot read layer "
            "by layer; "
            "give the same model as FILE.py[:factory] or package.module:factory (with "
            "--checkpoint), or use method='smoothing'")
    if not any(True for _ in model.children()):
        return [model]  # a leaf layer; ops.compile decides whether it is supported
    try:
        graph = fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types; all mean "cannot read the forward"
        raise CapabilityError(
            f"cannot read {type(model).__name__}.forward as a chain of layers ({exc}); write "
            "the model as an nn.Sequential of supported layers, or use method='smoothing'"
        ) from exc
    return _chain_from_graph(graph, type(model).__name__)


def _chain_from_graph(graph: fx.GraphModule, name: str) -> list[nn.Module]:
    layers: list[nn.Module] = []
    previous: fx.Node | None = None
    for node in graph.graph.nodes:
        if node.op == "placeholder":
            if previous is not None:
                raise CapabilityError(f"{name}.forward takes more than one input; bound "
                                      "propagation supports single-input models")
            previous = node
            continue
        if node.op == "output":
            if node.args[0] is not previous:
                raise CapabilityError(f"{name}.forward does not return its last step; "
                                      "write it as a chain of layers")
            break
        tensor_args = [a for a in (*node.args, *node.kwargs.values()) if isinstance(a, fx.Node)]
        if tensor_args != [previous]:
            raise CapabilityError(
                f"{name}.forward is not a plain chain at step {node.format_node()}: it uses "
                "more than the previous step's output (branches, residuals or size look-ups). "
                "Bound propagation supports chains; use x.flatten(1) instead of "
                "x.view(x.size(0), -1), or method='smoothing' for other architectures"
            )
        layers.append(_layer_of(graph, node, name))
        previous = node
    return layers


def _layer_of(graph: fx.GraphModule, node: fx.Node, name: str) -> nn.Module:
    if node.op == "call_module":
        return graph.get_submodule(str(node.target))
    extra = [a for a in node.args[1:]] + list(node.kwargs.values())
    if node.op == "call_function" and node.target in _RELU_FUNCTIONS and not extra:
        return nn.ReLU()
    if node.op == "call_method" and node.target == "relu" and not extra:
        return nn.ReLU()
    is_flatten = ((node.op == "call_function" and node.target in _FLATTEN_FUNCTIONS)
                  or (node.op == "call_method" and node.target == "flatten"))
    if is_flatten and list(node.args[1:]) in ([1], [1, -1]) and not node.kwargs:
        return nn.Flatten()
    if node.op == "call_function" and node.target in _MAXPOOL_FUNCTIONS:
        names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
        options: dict[str, Any] = dict(zip(names, node.args[1:], strict=False))
        options.update(node.kwargs)
        return nn.MaxPool2d(**options)
    target = getattr(node.target, "__name__", str(node.target))
    raise CapabilityError(
        f"{name}.forward calls {target!r}, which bound propagation does not support. "
        "Supported: Linear, Conv2d, ReLU, Flatten, AvgPool2d, MaxPool2d (stride = kernel), "
        "BatchNorm1d/2d (eval mode), Dropout (eval), Identity, bastion.certify.Normalize. "
        "Write it as one of these or use method='smoothing', which needs no layer list"
    )
