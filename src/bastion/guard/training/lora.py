"""The transformer member's trainable network: MiniLM's first layers with low-rank
updates (LoRA, Hu et al. 2021) on every linear map, retrained layer norms and a fresh
linear head; :func:`export` writes only what training changed, in the weights format
that :func:`bastion.guard.scanners.input.minilm.load` reads.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bastion.guard.scanners.input.minilm import (
    HIDDEN,
    LINEARS,
    NORMS,
    Network,
    base_encoder,
    child,
    encoder_layers,
)


class LoRALinear(nn.Module):
    """``base(x) + scale * x @ a.T @ b.T`` with ``base`` frozen; ``a`` is (rank, in),
    ``b`` (out, rank), ``b`` starting at zero so that training starts from MiniLM."""

    def __init__(self, base: nn.Linear, rank: int, scale: float,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.base, self.scale = base, scale
        self.a = nn.Parameter(torch.randn(rank, base.in_features, generator=generator)
                              / base.in_features ** 0.5)
        self.b = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.base(x) + (x @ self.a.t() @ self.b.t()) * self.scale
        return out


def _set_child(module: nn.Module, path: str, new: nn.Module) -> None:
    *parents, last = path.split(".")
    setattr(child(module, ".".join(parents)) if parents else module, last, new)


def trainable(layers: int, rank: int, scale: float, seed: int) -> Network:
    """A network to train: base weights frozen, LoRA factors, norms and head free."""
    encoder = base_encoder(layers)
    for p in encoder.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    for layer in encoder_layers(encoder):
        for name in LINEARS:
            _set_child(layer, name, LoRALinear(child(layer, name), rank, scale, gen))
        for name in NORMS:
            for p in child(layer, name).parameters():
                p.requires_grad_(True)
    head = nn.Linear(HIDDEN, 1)
    with torch.no_grad():
        head.weight.normal_(0.0, 0.02, generator=gen)
        head.bias.zero_()
    return Network(encoder, head)


def export(network: Network, rank: int, scale: float) -> dict[str, np.ndarray]:
    """What training changed, as arrays for an ``.npz`` (the format of
    :mod:`bastion.guard.scanners.input.minilm`): factors as float16, norms and head as
    float32."""
    layers = encoder_layers(network.encoder)
    out: dict[str, np.ndarray] = {"layers": np.array(len(layers)), "rank": np.array(rank),
                                  "scale": np.array(scale, dtype=np.float32)}
    for i, layer in enumerate(layers):
        for name in LINEARS:
            lora = child(layer, name)
            out[f"{i}.{name}.a"] = lora.a.detach().numpy().astype(np.float16)
            out[f"{i}.{name}.b"] = lora.b.detach().numpy().astype(np.float16)
        for name in NORMS:
            norm = child(layer, name)
            out[f"{i}.{name}.weight"] = norm.weight.detach().numpy().astype(np.float32)
            out[f"{i}.{name}.bias"] = norm.bias.detach().numpy().astype(np.float32)
    out["head.weight"] = network.head.weight.detach().numpy().reshape(-1).astype(np.float32)
    out["head.bias"] = network.head.bias.detach().numpy().reshape(-1).astype(np.float32)
    return out
