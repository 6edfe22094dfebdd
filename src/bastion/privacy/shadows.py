"""Train the models of a membership audit (target and shadows) in a process pool,
resumable from a folder.

    out = train_models(x, y, masks, recipe, seed=0, folder=Path("mi-state"), workers=2)
    out.logits      # (M, N, K): model i's logits on every pool sample

Model ``i`` trains on ``x[masks[i]]`` with seed ``seed + i``, so its weights do not depend
on how many workers there are or in which order they finish. Each finished model is one
file, ``folder/model-<i>.pt`` (its logits, weights and accounted epsilon), written whole
(aside, then renamed): an interrupted run loses at most the models in flight, and a
rerun with the same folder trains only the missing ones. ``folder/run.json`` holds the
fingerprint of the run (pool, masks, recipe, seed); another run's folder is refused.

On a GPU (``device="cuda"``) the worker processes share it: they are started with the
``spawn`` method (a forked child cannot use CUDA once the parent has touched it), each
opens its own CUDA context (a few hundred MiB of GPU memory) and trains its models on
the device, and only CPU tensors (logits, weights) come back. The device is not part of
the fingerprint: a run begun on the CPU may be finished on a GPU.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bastion.common.state import fingerprint, tensor_digest
from bastion.errors import ConfigError, StateError
from bastion.privacy._fit import predict
from bastion.privacy._train import Recipe, train


@dataclass
class TrainedModels:
    """``logits`` (M, N, K) float32 on the pool; ``states[i]`` model i's state_dict
    (CPU tensors); ``epsilons[i]`` its accounted epsilon (None unless DP)."""

    logits: torch.Tensor
    states: list[dict[str, torch.Tensor]]
    epsilons: list[float | None]


def _train_one(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, recipe: Recipe,
               seed: int, path: Path | None, fp: str, device: str) -> dict[str, Any]:
    """One model (run in a worker): train on ``device``, predict on the pool, save, and
    return the unit (CPU tensors)."""
    # one thread per worker: the pool, not intra-op threads, uses the cores
    torch.set_num_threads(1)
    model, info = train(x[mask], y[mask], recipe, seed=seed, device=device)
    unit = {"fingerprint": fp, "logits": predict(model, x).float(),
            "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "epsilon": info["epsilon"]}
    if path is not None:
        _atomic_save(unit, path)
    return unit


def _atomic_save(unit: dict[str, Any], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(unit, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _open_folder(folder: Path, fp: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "run.json"
    if meta.exists():
        saved = json.loads(meta.read_text())
        if saved.get("fingerprint") != fp:
            raise StateError(f"{folder} holds the models of another run (pool, masks, recipe "
                             "or seed changed); delete it or pass another --state folder")
    else:
        meta.write_text(json.dumps({"fingerprint": fp}) + "\n")


def _load_done(path: Path, fp: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    unit: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    if unit.get("fingerprint") != fp:
        raise StateError(f"{path} belongs to another run; delete its folder to start over")
    return unit


def train_models(x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor, recipe: Recipe, *,
                 seed: int = 0, folder: Path | None = None, workers: int = 2,
                 device: torch.device | str = "cpu",
                 log: Callable[[str], None] = lambda _: None) -> TrainedModels:
    """Train one model per row of ``masks`` (M, N) bool on the (N, C, H, W) pool ``x``
    with (N,) labels ``y`` (CPU tensors); ``workers`` processes (1 runs in this
    process), each training on ``device``."""
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    fp = fingerprint({"pool": tensor_digest(x, y), "masks": tensor_digest(masks.to(torch.uint8)),
                      "recipe": recipe.to_dict(), "seed": seed})
    if folder is not None:
        _open_folder(folder, fp)
    path = (lambda i: folder / f"model-{i:03d}.pt") if folder is not None else (lambda i: None)
    units: dict[int, dict[str, Any]] = {}
    for i in range(len(masks)):
        p = path(i)
        done = _load_done(p, fp) if p is not None else None
        if done is not None:
            units[i] = done
    todo = [i for i in range(len(masks)) if i not in units]
    where = str(torch.device(device))  # a string crosses to a spawned worker as is
    if units:
        log(f"{len(units)}/{len(masks)} models found in {folder}; training {len(todo)}")
    if workers == 1 or len(todo) <= 1:
        for i in todo:
            units[i] = _train_one(x, y, masks[i], recipe, seed + i, path(i), fp, where)
            log(f"model {len(units)}/{len(masks)} done")
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(_train_one, x, y, masks[i], recipe, seed + i, path(i), fp,
                                   where): i for i in todo}
            for future in as_completed(futures):
                units[futures[future]] = future.result()
                log(f"model {len(units)}/{len(masks)} done")
    ordered = [units[i] for i in range(len(masks))]
    return TrainedModels(logits=torch.stack([u["logits"] for u in ordered]),
                         states=[u["state"] for u in ordered],
                         epsilons=[u["epsilon"] for u in ordered])
