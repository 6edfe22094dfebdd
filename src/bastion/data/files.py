"""Data sets as ``.npz`` files: what ``bastion data audit --remove`` writes and
``bastion train --data FILE.npz`` reads.

A file holds ``x`` (N, C, H, W) float32 in [0, 1], ``y`` (N,) int64, ``base`` (the
``bastion.data`` name whose validation and test splits go with it, e.g. ``mnist``) and
``kept`` (N,) int64, the indices of the samples in the set they came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bastion.errors import ConfigError, InputError


def is_file(name: str) -> bool:
    return name.endswith(".npz")


def is_bastion_file(path: str) -> bool:
    """Was the ``.npz`` written by bastion (it records its ``base`` data set)? Other
    ``.npz`` files are the user's own data (:mod:`bastion.data.user`)."""
    try:
        with np.load(path) as f:
            return "base" in f.files
    except (OSError, ValueError):
        return False


def save_npz(path: Path, x: torch.Tensor, y: torch.Tensor, *, base: str,
             kept: torch.Tensor | None = None) -> Path:
    """Write a data set file (atomically: aside, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    if kept is None:
        kept = torch.arange(len(y))
    np.savez_compressed(tmp, x=x.numpy().astype(np.float32), y=y.numpy().astype(np.int64),
                        base=np.array(base), kept=kept.numpy().astype(np.int64))
    tmp.replace(path)
    return path


def load_npz(path: Path | str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(x, y, base)`` of a data set file; checks shapes and the [0, 1] range."""
    try:
        with np.load(path) as f:
            x, y, base = f["x"], f["y"], str(f["base"])
    except FileNotFoundError:
        raise ConfigError(f"data file {path} does not exist") from None
    except KeyError as exc:
        raise InputError(f"{path} lacks array {exc}; it needs x, y and base") from None
    if x.ndim != 4 or y.shape != (len(x),):
        raise InputError(f"{path}: x must be (N, C, H, W) and y (N,), got {x.shape} and "
                         f"{y.shape}")
    if not np.isfinite(x).all():
        raise InputError(f"{path}: {int((~np.isfinite(x)).reshape(len(x), -1).any(1).sum())} "
                         "images hold NaN or infinite values; drop them first")
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64)), base
