"""The evaluation runner: clean accuracy, robust accuracy per attack and worst case, per eps.

Work is split into units, one per (eps, batch). Each unit runs every attack on the
batch's correctly classified samples with a random generator seeded from
(seed, eps index, attack index, batch start), so a unit's numbers do not depend on
which units ran before it: resuming from a state file gives exactly the numbers of an
uninterrupted run. Every success an attack claims is re-checked (inside the threat
model, misclassified by the model) before it counts.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bastion.attacks.base import Attack, is_success, model_device
from bastion.attacks.pgd import PGD
from bastion.data.base import Dataset
from bastion.errors import BastionError, ConfigError
from bastion.evaluation.checks import check_inputs, check_model, warn_if_training
from bastion.evaluation.progress import progress_bar
from bastion.evaluation.state import StateFile, fingerprint, model_digest, tensor_digest
from bastion.threat import ThreatModel


@dataclass
class Evaluation:
    """Result of :func:`evaluate`. Accuracies are fractions in [0, 1].

    Attributes:
        robust_accuracy: at ``threat.eps``, samples robust to *every* attack (worst case).
        per_attack: at ``threat.eps``, attack name -> robust accuracy under that attack.
        sweep: one entry per eps (ascending): eps, robust_accuracy, per_attack.
        passes: attack name -> {"forward": n, "backward": n}, per-sample passes summed
            over all eps and batches.
        seconds: compute time summed over all units (resumed units included).
    """

    n: int
    clean_accuracy: float
    robust_accuracy: float
    per_attack: dict[str, float]
    sweep: list[dict[str, Any]]
    passes: dict[str, dict[str, int]]
    seconds: float
    threat: ThreatModel
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": self.robust_accuracy,
            "per_attack": self.per_attack,
            "sweep": self.sweep,
            "passes": self.passes,
            "seconds": round(self.seconds, 3),
            "threat": self.threat.to_dict(),
            "params": self.params,
        }


def name_attacks(attacks: Sequence[Attack] | dict[str, Attack] | None) -> dict[str, Attack]:
    """Give each attack a unique display name (``pgd``, ``pgd-2``, ...)."""
    if attacks is None:
        return {"pgd": PGD()}
    if isinstance(attacks, dict):
        named = dict(attacks)
    else:
        named = {}
        for attack in attacks:
            name, k = attack.name, 2
            while name in named:
                name, k = f"{attack.name}-{k}", k + 1
            named[name] = attack
    if not named:
        raise ConfigError("give at least one attack")
    for name, attack in named.items():
        if not isinstance(attack, Attack):
            raise ConfigError(f"attack {name!r} is a {type(attack).__name__}, not an Attack")
    return named


def unit_seed(seed: int, *parts: int) -> int:
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def evaluate(
    model: nn.Module,
    data: Dataset | tuple[torch.Tensor, torch.Tensor],
    threat: ThreatModel,
    attacks: Sequence[Attack] | dict[str, Attack] | None = None,
    *,
    eps_sweep: Sequence[float] = (),
    batch_size: int = 250,
    seed: int = 0,
    state: str | Path | None = None,
    progress: bool = False,
) -> Evaluation:
    """Measure how accurate ``model`` stays under ``attacks`` inside ``threat``.

    Args:
        model: returns logits (N, C) for inputs (N, ...) in ``threat.bounds``.
        data: a :class:`~bastion.data.Dataset` or a pair ``(x, y)``.
        attacks: attacks to run (default: PGD-40); a dict names them.
        eps_sweep: extra radii for the robust-accuracy-vs-eps curve (``threat.eps`` is
            always included).
        state: JSON file where finished units are saved; rerun with the same arguments
            to resume after an interruption.
    """
    x, y = (data.x, data.y) if isinstance(data, Dataset) else data
    named = name_attacks(attacks)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    eps_list = sorted({float(threat.eps), *(float(e) for e in eps_sweep)})
    threats = [threat.with_eps(e) for e in eps_list]  # validates every eps
    for name, attack in named.items():
        if threat.norm not in attack.norms:
            raise ConfigError(f"attack {name!r} supports {attack.norms}, not {threat.norm}")
    check_inputs(x, y, threat)
    was_training = warn_if_training(model)
    model.eval()
    try:
        check_model(model, x, y)
        params = {
            "threat": threat.to_dict(), "eps_sweep": eps_list, "batch_size": batch_size,
            "seed": seed, "n": int(x.shape[0]),
            "attacks": {k: {"class": type(a).__name__, **a.get_params()}
                        for k, a in named.items()},
        }
        fp = fingerprint({**params, "model": model_digest(model), "data": tensor_digest(x, y)})
        store = StateFile(Path(state) if state is not None else None, fp)
        _run_units(model, x, y, threats, threat.eps, named, batch_size, seed, store, progress)
    finally:
        if was_training:
            model.train()
    return _summarise(store, x.shape[0], threats, threat, named, batch_size, params)


def _run_units(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threats: list[ThreatModel],
               main_eps: float, named: dict[str, Attack], batch_size: int, seed: int,
               store: StateFile, progress: bool) -> None:
    # The headline eps runs first, so an interrupted run already has its main number.
    main = next(i for i, t in enumerate(threats) if t.eps == main_eps)
    order = sorted(range(len(threats)), key=lambda i: (i != main, i))
    starts = list(range(0, x.shape[0], batch_size))
    units = [(i, s) for i in order for s in starts]
    with progress_bar(progress, total=len(units), label="evaluating") as advance:
        for eps_i, start in units:
            key = f"{eps_i}/{start}"
            if store.done(key) is None:
                xb, yb = x[start:start + batch_size], y[start:start + batch_size]
                unit = _run_unit(model, xb, yb, threats[eps_i], named, seed, eps_i, start)
                store.save(key, unit)
            advance(f"eps={threats[eps_i].eps:g} samples {start}+")


def _run_unit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
              named: dict[str, Attack], seed: int, eps_i: int, start: int) -> dict[str, Any]:
    began = time.perf_counter()
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    with torch.inference_mode():
        clean = model(x).argmax(1) == y
    idx = clean.nonzero().squeeze(1)
    robust: dict[str, list[bool]] = {}
    passes: dict[str, dict[str, int]] = {}
    for j, (name, attack) in enumerate(named.items()):
        gen = torch.Generator(device=device).manual_seed(unit_seed(seed, eps_i, j, start))
        still = clean.clone()
        if idx.numel() > 0:
            res = attack.run(model, x[idx], y[idx], threat, generator=gen)
            broken = res.success & _verified(model, res.x_adv, x[idx], y[idx], threat, name)
            still[idx[broken]] = False
            passes[name] = res.passes.to_dict()
        else:
            passes[name] = {"forward": 0, "backward": 0}
        robust[name] = still.cpu().tolist()
    return {"clean": clean.cpu().tolist(), "robust": robust, "passes": passes,
            "seconds": time.perf_counter() - began}


def _verified(model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
              threat: ThreatModel, name: str) -> torch.Tensor:
    """(N,) bool: x_adv is inside the threat model and misclassified, checked anew."""
    inside = threat.contains(x_adv, x)
    if not bool(inside.all()):
        raise BastionError(f"attack {name!r} returned points outside the threat model; "
                           "this is a bug in the attack, please report it")
    with torch.inference_mode():
        return is_success(model(x_adv), y, None)


def _summarise(store: StateFile, n: int, threats: list[ThreatModel], threat: ThreatModel,
               named: dict[str, Attack], batch_size: int, params: dict[str, Any]) -> Evaluation:
    starts = list(range(0, n, batch_size))
    sweep: list[dict[str, Any]] = []
    passes = {name: {"forward": 0, "backward": 0} for name in named}
    seconds = 0.0
    clean_total = 0
    for i, t in enumerate(threats):
        units = [store.units[f"{i}/{s}"] for s in starts]
        clean = [c for u in units for c in u["clean"]]
        clean_total = sum(clean)
        per_attack = {}
        worst = [True] * n
        for name in named:
            flags = [r for u in units for r in u["robust"][name]]
            per_attack[name] = sum(flags) / n
            worst = [w and f for w, f in zip(worst, flags, strict=True)]
            for u in units:
                for k in ("forward", "backward"):
                    passes[name][k] += u["passes"][name][k]
        seconds += sum(u["seconds"] for u in units)
        sweep.append({"eps": t.eps, "robust_accuracy": sum(worst) / n, "per_attack": per_attack})
    main = next(s for s in sweep if s["eps"] == threat.eps)
    return Evaluation(n=n, clean_accuracy=clean_total / n, robust_accuracy=main["robust_accuracy"],
                      per_attack=main["per_attack"], sweep=sweep, passes=passes,
                      seconds=seconds, threat=threat, params=params)
