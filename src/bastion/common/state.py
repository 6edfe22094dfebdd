"""Resume files: finished work units of a long run (an evaluation, a guard attack, a
certification), saved after each one.

The file is JSON: ``{"fingerprint": ..., "units": {"<eps index>/<batch start>": {...}}}``,
rewritten atomically (write to a temporary file, then rename), so a kill at any moment
leaves either the old or the new file, never a torn one. The fingerprint hashes
everything that decides the numbers (model weights, data, threat, attacks, seed, batch
size); resuming with anything else changed is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.errors import StateError

if TYPE_CHECKING:  # digests read tensors through their methods: no torch import needed
    import torch
    from torch import nn


def tensor_digest(*tensors: torch.Tensor) -> str:
    """First 16 hex digits of the SHA-256 of the tensors' shapes and bytes."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def model_digest(model: nn.Module) -> str:
    """:func:`tensor_digest` of a model's state dict, in key order."""
    return tensor_digest(*[t for _, t in sorted(model.state_dict().items())])


def fingerprint(params: dict[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of ``params`` as sorted JSON."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


class StateFile:
    """Finished units of one run, keyed by ``"eps_index/batch_start"`` for an evaluation
    (any string for other jobs); ``settings`` names what the fingerprint covers, for the
    refusal message."""

    def __init__(self, path: Path | None, fp: str,
                 settings: str = "model, data, threat, attacks, seed or batch size") -> None:
        self.path = path
        self.fingerprint = fp
        self.units: dict[str, dict[str, Any]] = {}
        if path is not None and path.exists():
            try:
                saved = json.loads(path.read_text())
            except (json.JSONDecodeError, OSError) as exc:
                raise StateError(f"cannot read state file {path} ({exc}); delete it to "
                                 "start over") from exc
            if saved.get("fingerprint") != fp:
                raise StateError(
                    f"state file {path} belongs to a different run ({settings} "
                    "changed); delete it to start over or pass another --state path"
                )
            self.units = saved["units"]

    def done(self, key: str) -> dict[str, Any] | None:
        return self.units.get(key)

    def save(self, key: str, unit: dict[str, Any]) -> None:
        self.units[key] = unit
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"fingerprint": self.fingerprint, "units": self.units}))
        os.replace(tmp, self.path)
