"""Resumable training state: one file, ``DIR/state.pt``, replaced atomically.

Holds the model, optimiser and scheduler states, the position (epoch, next batch), the
run id, the validation history and best scores, the DP accountant, and the random
states (torch CPU and CUDA, Python ``random``, NumPy). The data order needs no saved
state: it is a function of (seed, epoch) (see :mod:`bastion.train.data`), and the
randomness of each batch is reseeded from (seed, epoch, batch, rank).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bastion.errors import StateError

STATE_FILE = "state.pt"


def rng_state() -> dict[str, Any]:
    """Random states as tensors and plain lists (loadable with ``weights_only=True``)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos),
                  int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(out: Path, state: dict[str, Any]) -> Path:
    """Write ``out/state.pt`` atomically (aside, then renamed): a kill at any moment
    leaves the previous checkpoint or the new one, never a torn file."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / STATE_FILE
    tmp = out / (STATE_FILE + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load(out: Path, fingerprint: str) -> dict[str, Any] | None:
    """The saved state of this run, None if there is none; refuses another run's state."""
    path = out / STATE_FILE
    if not path.exists():
        return None
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file: say how to start over
        raise StateError(f"cannot read checkpoint {path} ({exc}); delete it to start "
                         "over") from exc
    if state.get("fingerprint") != fingerprint:
        raise StateError(
            f"{path} belongs to a different training run (method, model, data, eps, "
            "schedule or seed changed); pass another --out or delete the folder to start over"
        )
    return state
