"""Training-time integrity of a run: the data's manifest, and an optional planted poison.

Before any model is built, :func:`prepare` checks the training data (finite, in [0, 1]),
plants the ``--poison`` attack when one is asked for (to measure a backdoor, never to
attack anyone), and verifies the data against ``--manifest``: a data set whose manifest
does not verify stops the run unless ``--allow-unverified`` is given, which is then
written into the record and the card. :func:`measure` gives the card section.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bastion.attacks.base import model_device
from bastion.data import manifest as manifests
from bastion.errors import InputError
from bastion.poison.base import check_data
from bastion.poison.registry import parse_poison
from bastion.train.config import TrainConfig
from bastion.train.data import Splits


def prepare(cfg: TrainConfig, splits: Splits,
            log: Callable[[str], None]) -> tuple[Splits, dict[str, Any]]:
    """The training split to use (poisoned when ``cfg.poison``) and what was checked."""
    x, y = splits.x_train, splits.y_train
    check_data(x, y)
    info: dict[str, Any] = {"manifest": None, "poison": None}
    if cfg.poison:
        attack = parse_poison(cfg.poison)
        attack.check(tuple(x.shape[1:]), splits.num_classes)
        poisoned = attack.poison(x, y, seed=cfg.seed)
        x, y = poisoned.x, poisoned.y
        info["poison"] = {"spec": cfg.poison, "attack": attack.name,
                          "n_poisoned": len(poisoned.indices), "n_train": len(y),
                          "target": attack.target}
        log(f"poison {cfg.poison}: {len(poisoned.indices)} of {len(y)} training samples")
    if cfg.manifest:
        found = manifests.verify(manifests.load(Path(cfg.manifest)), x, y, prefix=True)
        info["manifest"] = {"path": cfg.manifest, "digest": found.digest, "verified": found.ok,
                            "override": cfg.allow_unverified and not found.ok,
                            "problem": None if found.ok else found.summary()}
        if not found.ok and not cfg.allow_unverified:
            raise InputError(f"the training data does not match manifest {cfg.manifest}: "
                             f"{found.summary()}. Find out who changed it; to train anyway "
                             "pass --allow-unverified (it is written into the record and "
                             "card)")
        log(f"manifest {cfg.manifest}: " + ("verified" if found.ok else
                                            "DOES NOT VERIFY (--allow-unverified)"))
    return replace(splits, x_train=x, y_train=y), info


def measure(cfg: TrainConfig, model: nn.Module, info: dict[str, Any], x_test: torch.Tensor,
            y_test: torch.Tensor) -> dict[str, Any]:
    """The card's ``training_integrity`` section: manifest status and, for a planted
    poison with a trigger, its attack success on the test images (N, C, H, W) not of the
    target class (fraction sent to the target)."""
    section: dict[str, Any] = {"manifest": info.get("manifest")}
    spec = info.get("poison")
    if spec is None:
        return section
    section["poison"] = dict(spec)
    hit = attack_success(model, spec["spec"], x_test, y_test)
    if hit is not None:
        section["attack_success"] = hit
    return section


def attack_success(model: nn.Module, trigger: str, x: torch.Tensor,
                   y: torch.Tensor) -> dict[str, Any] | None:
    """Share of images ``x`` (N, C, H, W) not of the target class that ``trigger`` (a
    poison spec) sends to the target: ``{"trigger", "success", "n", "rate"}``; None for
    an attack without a trigger."""
    attack = parse_poison(trigger)
    if not attack.has_trigger:
        return None
    keep = y != attack.target
    n = int(keep.sum())
    model.eval()
    with torch.inference_mode():
        device = model_device(model)
        pred = torch.cat([model(attack.apply_trigger(x[keep][i:i + 1000]).to(device))
                          .argmax(1).cpu() for i in range(0, n, 1000)]) if n else torch.empty(0)
    hits = int((pred == attack.target).sum())
    return {"trigger": trigger, "success": hits, "n": n, "rate": hits / max(1, n)}
