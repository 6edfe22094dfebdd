"""Features at a named layer of a classifier, taken in the same forward pass as its logits.

``layer="penultimate"`` (the default) is the input of the model's last ``nn.Linear``: the
representation the classifier head reads, which Mahalanobis, kNN and ViM are defined on.
Any other name is a module name of ``model.named_modules()``; its output is used, with
convolutional maps (N, C, H, W) averaged over space to (N, C) (as Lee et al. 2018 do).

Hooks are attached only for the duration of one call, so the model is left unchanged and
gradients flow through the features (the adaptive attacks need them).
"""

from __future__ import annotations

import torch
from torch import nn

from bastion.errors import ConfigError, ModelError

PENULTIMATE = "penultimate"


def last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """Name and module of the last ``nn.Linear`` in ``model`` (registration order)."""
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ConfigError(
            f"{type(model).__name__} has no nn.Linear layer, so it has no 'penultimate' layer; "
            "pass layer=NAME, one of: " + ", ".join(layer_names(model))
        )
    return found[-1]


def layer_names(model: nn.Module) -> list[str]:
    """Names that ``layer`` accepts for ``model``."""
    return [PENULTIMATE, *(n for n, _ in model.named_modules() if n)]


def check_layer(model: nn.Module, layer: str) -> None:
    """Raise ConfigError when ``layer`` names no layer of ``model``."""
    if layer == PENULTIMATE:
        last_linear(model)
        return
    if layer not in dict(model.named_modules()) or not layer:
        names = layer_names(model)
        raise ConfigError(
            f"layer {layer!r} does not exist in {type(model).__name__}; use one of: "
            + ", ".join(names[:40]) + (" ..." if len(names) > 40 else "")
        )


def logits_and_features(model: nn.Module, x: torch.Tensor,
                        layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` once on ``x``: logits (N, K) and features (N, D) at ``layer``."""
    captured: list[torch.Tensor] = []
    if layer == PENULTIMATE:
        _, module = last_linear(model)
        handle = module.register_forward_pre_hook(
            lambda _m, args: captured.append(args[0]))
    else:
        module = dict(model.named_modules())[layer]
        handle = module.register_forward_hook(
            lambda _m, _args, out: captured.append(out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    if not captured:
        raise ModelError(f"layer {layer!r} was not used in the forward pass of "
                         f"{type(model).__name__}; pick a layer the model calls")
    feats = captured[-1]
    if not isinstance(feats, torch.Tensor):
        raise ModelError(f"layer {layer!r} does not output a tensor; pick another layer")
    if feats.dim() > 2:
        feats = feats.flatten(2).mean(dim=2) if feats.dim() == 4 else feats.flatten(1)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ModelError(f"the model must return logits of shape (N, K); got "
                         f"{getattr(logits, 'shape', type(logits))}")
    return logits, feats
