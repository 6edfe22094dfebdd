"""Penultimate-layer features: what the curation detectors look at.

The features of a sample are the input of the model's last ``nn.Linear`` layer (the
representation the classifier reads), captured with a forward hook. Reading the layer by
its place in the network, not by name, is what keeps it right on any PyTorch model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bastion.attacks.base import model_device
from bastion.errors import CapabilityError


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's last ``nn.Linear`` module in registration order."""
    found = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not found:
        raise CapabilityError(f"{type(model).__name__} has no nn.Linear layer, so there is "
                              "no penultimate representation to audit; pass features "
                              "directly instead")
    return found[-1]


def penultimate(model: nn.Module, x: Tensor, *, batch_size: int = 1000) -> Tensor:
    """Features (N, D) of inputs ``x`` (N, C, H, W): the input of the last linear layer."""
    captured: list[Tensor] = []

    def keep(_: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        captured.append(inputs[0].detach().flatten(1).float().cpu())

    handle = last_linear(model).register_forward_pre_hook(keep)
    model.eval()
    try:
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                model(x[i:i + batch_size].to(model_device(model)))
    finally:
        handle.remove()
    return torch.cat(captured) if captured else torch.empty(0, 0)
