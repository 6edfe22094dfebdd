"""The evaluation runner: clean accuracy, robust accuracy per attack and worst case, per eps.

Work is split into units, one per (eps, batch). Each unit runs every attack on the
batch's correctly classified samples with a random generator seeded from
(seed, eps index, attack index, batch start), so a unit's numbers do not depend on
which units ran before it: resuming from a state file gives exactly the numbers of an
uninterrupted run, and lets processes share the units (:mod:`.shard`) with the numbers
of a single process. Every success an attack claims is re-checked (inside the threat
model, misclassified by the model) before it counts. A cheap probe of the model
(:mod:`.probe`) and the results feed the sanity flags (:mod:`.flags`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bastion.attacks._wrapped import seeded_global_rng
from bastion.attacks.base import Attack, is_success, model_device
from bastion.attacks.pgd import PGD
from bastion.common.state import StateFile, fingerprint, model_digest, tensor_digest
from bastion.data.base import Dataset
from bastion.errors import BastionError, ConfigError, ModelError
from bastion.evaluation.backoff import with_backoff
from bastion.evaluation.checks import check_inputs, check_model, warn_if_training
from bastion.evaluation.layout import channels_last
from bastion.evaluation.probe import probe_model
from bastion.evaluation.progress import progress_bar
from bastion.evaluation.shard import Shard
from bastion.evaluation.summary import Evaluation, summarise
from bastion.threat import ThreatModel


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
    shard: Shard | None = None,
) -> Evaluation:
    """Measure how accurate ``model`` stays under ``attacks`` inside ``threat``.

    Args:
        model: returns logits (N, C) for inputs (N, ...) in ``threat.bounds``.
        data: a :class:`~bastion.data.Dataset` or a pair ``(x, y)``.
        attacks: attacks to run (default: PGD-40); a dict names them.
        eps_sweep: extra radii for the robust-accuracy-vs-eps curve (``threat.eps`` is
            always included).
        state: JSON file where finished units are saved; rerun with the same arguments
            to resume after an interruption. Sharded, each process keeps its own
            file (:meth:`Shard.state_path`).
        shard: run only this process's share of the units, then gather the rest from
            the other processes (:mod:`bastion.evaluation.shard`); every process returns
            the same :class:`Evaluation`, equal to a single-process run's.
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
    asked = batch_size
    try:
        def attempt(size: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            path = _state_path(state, shard, size if size != asked else None)
            return _evaluate_at(model, x, y, threats, threat, named, size, seed, path,
                                progress, shard)

        # Out of memory: start over at half the batch size (bastion.evaluation.backoff).
        (units, params, probe), batch_size = with_backoff(
            attempt, batch_size, allowed=shard is None,
            why_not="several processes share this run and must agree on the batch layout")
    finally:
        if was_training:
            model.train()
    if batch_size != asked:
        params = {**params, "batch_size_asked": asked}
    kinds = {name: type(a).uses_gradients for name, a in named.items()}
    return summarise(units, x.shape[0], threats, threat, kinds, batch_size, params, probe)


def _evaluate_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 threats: list[ThreatModel], threat: ThreatModel, named: dict[str, Attack],
                 batch_size: int, seed: int, state: Path | None, progress: bool,
                 shard: Shard | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The checks, the probe and every unit at one batch size: (units, params, probe).

    Starts from scratch each time it is called (the back-off calls it again).
    """
    # The checks and the probe run the model too: a randomized model's draws there come
    # from the seed as well, and the caller's global RNG state is left untouched.
    checks_rng = torch.Generator(device=model_device(model)).manual_seed(unit_seed(seed, -1))
    with seeded_global_rng(checks_rng):
        check_model(model, x, y)
    params = {
        "threat": threat.to_dict(), "eps_sweep": [t.eps for t in threats],
        "batch_size": batch_size, "seed": seed, "n": int(x.shape[0]),
        "attacks": {k: {"class": type(a).__name__, **a.get_params()}
                    for k, a in named.items()},
    }
    fp = fingerprint({**params, "model": model_digest(model), "data": tensor_digest(x, y)})
    store = StateFile(state, fp)
    with seeded_global_rng(checks_rng):
        probe = probe_model(model, x, y, seed=seed, batch_size=batch_size)
    _refuse_gradient_attacks_without_gradients(probe, named)
    with ExitStack() as stack:
        with seeded_global_rng(checks_rng):
            stack.enter_context(channels_last(model, x[:8].to(model_device(model))))
        _run_units(model, x, y, threats, threat.eps, named, batch_size, seed, store,
                   progress, shard)
    units = store.units
    if shard is not None:
        units = {k: u for part in shard.gather(store.units) for k, u in part.items()}
    return units, params, probe


def _state_path(state: str | Path | None, shard: Shard | None,
                backed_off: int | None) -> Path | None:
    """Where an attempt's finished units go: each process of a shard has its own file,
    and a back-off to batch size ``backed_off`` keeps its own beside the first one, so a
    resumed run finds both."""
    if state is None:
        return None
    path = Path(state)
    if shard is not None:
        path = shard.state_path(path)
    if backed_off is not None:
        path = path.with_name(f"{path.stem}.batch{backed_off}{path.suffix}")
    return path


def _refuse_gradient_attacks_without_gradients(probe: dict[str, Any],
                                               named: dict[str, Attack]) -> None:
    """Fail early, not with autograd's message inside an attack, when no gradient exists."""
    white = [name for name, a in named.items() if type(a).uses_gradients]
    if probe["grad_error"] and white:
        raise ModelError(
            f"the model gives no input gradient ({probe['grad_error']}), so the gradient "
            f"attacks {white} cannot run. If that is on purpose (a non-differentiable "
            "defense), evaluate with black-box attacks (e.g. square) and BPDA; otherwise "
            "remove the detach()/no_grad() from the model's forward")


def _run_units(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threats: list[ThreatModel],
               main_eps: float, named: dict[str, Attack], batch_size: int, seed: int,
               store: StateFile, progress: bool, shard: Shard | None) -> None:
    # The headline eps runs first, so an interrupted run already has its main number.
    main = next(i for i, t in enumerate(threats) if t.eps == main_eps)
    order = sorted(range(len(threats)), key=lambda i: (i != main, i))
    starts = list(range(0, x.shape[0], batch_size))
    units = [(i, s) for i in order for s in starts]
    # Dealt out by position in this fixed order: a rank's share never depends on timing.
    if shard is not None:
        units = [u for k, u in enumerate(units) if shard.owns(k)]
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
    # A randomized model draws from torch's global RNG: seed it from the unit's own
    # coordinates (index -1: no attack has it), so a rerun, a resumed run and every shard
    # layout see the same draws, and the caller's RNG state is left as it was.
    device = model_device(model)
    global_gen = torch.Generator(device=device).manual_seed(unit_seed(seed, eps_i, -1, start))
    with seeded_global_rng(global_gen):
        return _attack_unit(model, x, y, threat, named, seed, eps_i, start)


def _attack_unit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                 named: dict[str, Attack], seed: int, eps_i: int, start: int) -> dict[str, Any]:
    began = time.perf_counter()
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    with torch.inference_mode():
        clean = model(x).argmax(1) == y
    idx = clean.nonzero().squeeze(1)
    robust: dict[str, list[bool]] = {}
    passes: dict[str, dict[str, int]] = {}
    stages: dict[str, dict[str, dict[str, Any]]] = {}
    for j, (name, attack) in enumerate(named.items()):
        gen = torch.Generator(device=device).manual_seed(unit_seed(seed, eps_i, j, start))
        still = clean.clone()
        if idx.numel() > 0:
            res = attack.run(model, x[idx], y[idx], threat, generator=gen)
            broken = res.success & _verified(model, res.x_adv, x[idx], y[idx], threat, name)
            still[idx[broken]] = False
            passes[name] = res.passes.to_dict()
            if res.stages:
                stages[name] = _plain_stages(res.stages)
        else:
            passes[name] = {"forward": 0, "backward": 0}
        robust[name] = still.cpu().tolist()
    return {"clean": clean.cpu().tolist(), "robust": robust, "passes": passes,
            "stages": stages, "seconds": time.perf_counter() - began}


def _plain_stages(stages: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A cascade's stage report as JSON numbers (attacks may hand back tensors)."""
    return {stage: {"broken": int(rep["broken"]), "uses_gradients": bool(rep["uses_gradients"]),
                    "passes": {k: int(v) for k, v in rep.get("passes", {}).items()}}
            for stage, rep in stages.items()}


def _verified(model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
              threat: ThreatModel, name: str) -> torch.Tensor:
    """(N,) bool: x_adv is inside the threat model and misclassified, checked anew."""
    inside = threat.contains(x_adv, x)
    if not bool(inside.all()):
        raise BastionError(f"attack {name!r} returned points outside the threat model; "
                           "this is a bug in the attack, please report it")
    with torch.inference_mode():
        return is_success(model(x_adv), y, None)
