"""Resume files: finished work units of a long run (an evaluation, a guard attack, a
certification), saved after each one.

The file is JSON: ``{"fingerprint": ..., "units": {"<eps index>/<start>:<stop>": {...}},
"digest": ...}``, rewritten atomically (write to a temporary file of a unique name, then
rename), so a kill at any moment leaves either the old or the new file, never a torn one,
and concurrent writers never share a temporary file. The fingerprint hashes everything
that decides the numbers (model weights, data, threat, attacks, seed; the batch size
where it matters: an evaluation's numbers do not depend on it); resuming with anything
else changed is refused. The digest hashes the units: a file
that was cut or edited (still valid JSON, but not what the run wrote) is refused too,
rather than resumed into a wrong number.

:func:`run_lock` holds a folder for one run at a time (an advisory ``flock``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


def units_digest(units: dict[str, Any]) -> str:
    """SHA-256 of the units as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(units, sort_keys=True).encode()).hexdigest()


LOCK_NAME = ".bastion-run.lock"


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder`` for this run; :class:`StateError` if another run holds it.

    The lock is ``flock`` on ``folder/.bastion-run.lock``: the operating system drops it
    when the process ends, however it ends, so a killed run never leaves a stale lock.
    Where ``fcntl`` does not exist (Windows) no lock is taken.
    """
    try:
        import fcntl
    except ImportError:  # Windows: unique temporary names still keep files whole
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StateError(f"another run is using {folder} (it holds {path}); wait for "
                             "it to finish, or pass another --out or --state") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class StateFile:
    """Finished units of one run, keyed by ``"eps_index/start:stop"`` for an evaluation
    (any string for other jobs); ``settings`` names what the fingerprint covers, for the
    refusal message."""

    def __init__(self, path: Path | None, fp: str,
                 settings: str = "model, data, threat, attacks, seed or batch size") -> None:
        self.path = path
        self.fingerprint = fp
        self.units: dict[str, dict[str, Any]] = {}
        if path is not None and path.exists():
            saved = _read(path)
            if saved["fingerprint"] != fp:
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
        data = json.dumps({"fingerprint": self.fingerprint, "units": self.units,
                           "digest": units_digest(self.units)})
        # a unique name: two writers of one file must not rename each other's temp file
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".",
                                   suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _read(path: Path) -> dict[str, Any]:
    """A state file's content, checked: its shape and its digest; StateError otherwise."""
    fix = "delete it to start over"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:  # JSON errors and undecodable bytes alike
        raise StateError(f"cannot read state file {path} ({exc}); {fix}") from None
    if not (isinstance(saved, dict) and isinstance(saved.get("fingerprint"), str)
            and isinstance(saved.get("units"), dict)
            and all(isinstance(u, dict) for u in saved["units"].values())):
        raise StateError(f"{path} is not a bastion state file (expected an object with a "
                         f"fingerprint and units); {fix}")
    if saved.get("digest") != units_digest(saved["units"]):
        raise StateError(f"state file {path} does not match its digest: it was cut or "
                         f"edited after the run wrote it (or written by an older bastion); "
                         f"{fix}")
    return saved
