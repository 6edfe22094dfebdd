"""``--mean/--std``: the user's input normalisation, put inside the model.

A model trained on normalised inputs expects ``(x - mean) / std``. bastion prepends
that as a layer, so the wrapped model takes pixels in [0, 1] and every epsilon, attack
and certificate stays in pixel units rather than in normalised units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from bastion.certify.chain import Normalize
from bastion.errors import ConfigError


def parse_floats(text: str | None, option: str) -> tuple[float, ...]:
    """``"0.49,0.48,0.45"`` -> (0.49, 0.48, 0.45); ``()`` when None."""
    if text is None:
        return ()
    try:
        return tuple(float(p) for p in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated numbers, one per channel "
                          f"(e.g. 0.4914,0.4822,0.4465), got {text!r}") from None


def with_normalization(model: nn.Module, mean: Sequence[float], std: Sequence[float], *,
                       channels: int) -> nn.Module:
    """``Sequential(Normalize(mean, std), model)``, or ``model`` when both are empty.

    One value broadcasts over all ``channels``; otherwise give one per channel.
    """
    if not mean and not std:
        return model
    if not mean or not std:
        raise ConfigError("give --mean and --std together (the per-channel values your "
                          "model was trained with), or neither")
    mean = list(mean) * channels if len(mean) == 1 else list(mean)
    std = list(std) * channels if len(std) == 1 else list(std)
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(f"the data has {channels} channels but --mean has {len(mean)} and "
                          f"--std {len(std)} values; give one value or {channels}")
    if any(s <= 0 for s in std):
        raise ConfigError(f"--std values must be > 0, got {std}")
    return nn.Sequential(Normalize(mean, std), model).eval()


def normalization_record(mean: Sequence[float], std: Sequence[float]) -> dict[str, Any]:
    """The ``normalization`` entry of a model's record; empty when none was applied."""
    if not mean and not std:
        return {}
    return {"normalization": {"mean": list(mean), "std": list(std), "applied": "inside the "
                              "model; inputs and eps in [0, 1] pixel units"}}
