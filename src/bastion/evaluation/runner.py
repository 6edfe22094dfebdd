"""The evaluation runner: clean accuracy, robust accuracy per attack and worst case, per eps.

Work is split into units, one per (eps, batch). Each unit runs every attack on the
batch's correctly classified samples with per-sample random streams keyed by
(seed, eps index, attack index, the sample's position in the data set)
(:mod:`bastion.common.draws`), so a sample's result depends neither on which units ran
before nor on the batch size: resuming from a state file (at any batch size), sharing
the units between processes (:mod:`.shard`) and halving the batch after an
out-of-memory error (:mod:`.backoff`) all give the numbers of one uninterrupted run.
Every success an attack claims is re-checked (inside the threat model, misclassified by
the model) before it counts. A cheap probe of the model
(:mod:`.probe`) and the results feed the sanity flags (:mod:`.flags`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bastion.attacks._seeding import seed_for_rows
from bastion.attacks._wrapped import seeded_global_rng
from bastion.attacks.base import Attack, is_success, model_device
from bastion.attacks.pgd import PGD
from bastion.common.state import StateFile, fingerprint, model_digest, tensor_digest
from bastion.data.base import Dataset
from bastion.errors import BastionError, ConfigError, ModelError
from bastion.evaluation.amp import Autocast, amp_dtype, amp_flag, check_amp
from bastion.evaluation.backoff import halve, is_out_of_memory, run_in_batches, with_backoff
from bastion.evaluation.checks import check_inputs, check_model, warn_if_training
from bastion.evaluation.layout import channels_last
from bastion.evaluation.probe import probe_model
from bastion.evaluation.progress import progress_bar
from bastion.evaluation.shard import Shard
from bastion.evaluation.summary import Evaluation, parse_key, plain_stages, summarise
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
    amp: bool = False,
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
        amp: run the attacks under mixed precision if a check on a probe set finds it
            does not weaken them (:mod:`bastion.evaluation.amp`); the decision and the
            check's numbers are in ``params["amp"]``.
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
        units, params, probe, used = _evaluate_at(model, x, y, threats, threat, named,
                                                  batch_size, seed, state, progress, shard,
                                                  amp)
    finally:
        if was_training:
            model.train()
    if used != batch_size:
        params = {**params, "batch_size": used, "batch_size_asked": batch_size}
    kinds = {name: type(a).uses_gradients for name, a in named.items()}
    result = summarise(units, x.shape[0], threats, threat, kinds, params, probe)
    flag = amp_flag(params["amp"]) if isinstance(params.get("amp"), dict) else None
    if flag is not None:
        result.flags.append(flag)
    return result


#: why a sharded run cannot back off on its own.
_SHARD_WHY = "several processes share this run and must agree on the batch layout"


def _evaluate_at(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 threats: list[ThreatModel], threat: ThreatModel, named: dict[str, Attack],
                 batch_size: int, seed: int, state: str | Path | None, progress: bool,
                 shard: Shard | None, amp: bool
                 ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], int]:
    """The checks, the probe and every unit: (units, params, probe, batch size at the end)."""
    # The checks and the probe run the model too: a randomized model's draws there come
    # from the seed as well, and the caller's global RNG state is left untouched.
    checks_rng = torch.Generator(device=model_device(model)).manual_seed(unit_seed(seed, -1))
    with seeded_global_rng(checks_rng):
        check_model(model, x, y)
    params = {
        "threat": threat.to_dict(), "eps_sweep": [t.eps for t in threats],
        "batch_size": batch_size, "seed": seed, "n": int(x.shape[0]), "amp": amp,
        "attacks": {k: {"class": type(a).__name__, **a.get_params()}
                    for k, a in named.items()},
    }
    # The batch size is left out: results do not depend on it, so a run resumes at any.
    same_run = {k: v for k, v in params.items() if k != "batch_size"}
    fp = fingerprint({**same_run, "units": "per-sample draws", "model": model_digest(model),
                      "data": tensor_digest(x, y)})
    path = shard.state_path(Path(state)) if state is not None and shard is not None else state
    store = StateFile(Path(path) if path is not None else None, fp,
                      settings="model, data, threat, attacks or seed")

    def probe_at(size: int) -> dict[str, Any]:
        with seeded_global_rng(checks_rng):
            return probe_model(model, x, y, seed=seed, batch_size=size)

    # Out of memory: halve the batch and go on (bastion.evaluation.backoff).
    probe, size = with_backoff(probe_at, batch_size, allowed=shard is None, why_not=_SHARD_WHY)
    _refuse_gradient_attacks_without_gradients(probe, named)
    attacker = model
    if amp:
        with seeded_global_rng(checks_rng):
            record = check_amp(model, x, y, threat, unit_seed(seed, -2))
        params["amp"] = record
        if record["used"]:
            attacker = Autocast(model, amp_dtype(model_device(model)))
    with ExitStack() as stack:
        with seeded_global_rng(checks_rng):
            stack.enter_context(channels_last(model, x[:8].to(model_device(model))))
        keys, size = _run_units((model, attacker), x, y, threats, threat.eps, named, size,
                                seed, store, progress, shard)
    units = store.units
    if shard is not None:
        units = {k: u for part in shard.gather(store.units) for k, u in part.items()}
    return {k: units[k] for k in keys}, params, probe, size


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


def _run_units(models: tuple[nn.Module, nn.Module], x: torch.Tensor, y: torch.Tensor,
               threats: list[ThreatModel], main_eps: float, named: dict[str, Attack],
               batch_size: int, seed: int, store: StateFile, progress: bool, shard: Shard | None
               ) -> tuple[list[str], int]:
    """Every (eps, batch) unit, keyed ``"eps_index/start:stop"``: (keys in order, the
    batch size at the end, smaller than asked after an out-of-memory back-off)."""
    # The headline eps runs first, so an interrupted run already has its main number.
    main = next(i for i, t in enumerate(threats) if t.eps == main_eps)
    order = sorted(range(len(threats)), key=lambda i: (i != main, i))
    n = x.shape[0]
    keys: list[str] = []
    total = len(order) * -(-n // batch_size)
    if shard is not None:  # this rank's share only
        total = sum(shard.owns(k) for k in range(total))
    with progress_bar(progress, total=total, label="evaluating") as advance:
        def step(eps_i: int, start: int, stop: int) -> None:
            key = f"{eps_i}/{start}:{stop}"
            if store.done(key) is None:
                unit = _run_unit(models, x[start:stop], y[start:stop], threats[eps_i], named,
                                 seed, eps_i, start)
                store.save(key, unit)
            keys.append(key)
            advance(f"eps={threats[eps_i].eps:g} samples {start}+")

        if shard is not None:
            # Dealt out by position in a fixed order: a rank's share never depends on
            # timing, and every rank must use the same layout (no back-off).
            units = [(i, s) for i in order for s in range(0, n, batch_size)]
            for k, (eps_i, start) in enumerate(units):
                stop = min(n, start + batch_size)
                if not shard.owns(k):
                    keys.append(f"{eps_i}/{start}:{stop}")
                    continue
                try:
                    step(eps_i, start, stop)
                except Exception as exc:  # out of memory: say what to do; others re-raised
                    if not is_out_of_memory(exc):
                        raise
                    halve(batch_size, exc, allowed=False, why_not=_SHARD_WHY)
            return keys, batch_size
        finished = {(e, a): b for e, a, b in map(parse_key, store.units)}
        for eps_i in order:
            batch_size = run_in_batches(partial(step, eps_i), n, batch_size,
                                        known_stop=partial(_stop_of, finished, eps_i))
    return keys, batch_size


def _stop_of(finished: dict[tuple[int, int], int], eps_i: int, start: int) -> int | None:
    return finished.get((eps_i, start))


def _run_unit(models: tuple[nn.Module, nn.Module], x: torch.Tensor, y: torch.Tensor,
              threat: ThreatModel, named: dict[str, Attack], seed: int, eps_i: int,
              start: int) -> dict[str, Any]:
    # A randomized model draws from torch's global RNG: seed it from the unit's own
    # coordinates (index -1: no attack has it), so a rerun, a resumed run and every shard
    # layout see the same draws, and the caller's RNG state is left as it was.
    device = model_device(models[0])
    global_gen = torch.Generator(device=device).manual_seed(unit_seed(seed, eps_i, -1, start))
    with seeded_global_rng(global_gen):
        return _attack_unit(models, x, y, threat, named, seed, eps_i, start)


def _attack_unit(models: tuple[nn.Module, nn.Module], x: torch.Tensor, y: torch.Tensor,
                 threat: ThreatModel, named: dict[str, Attack], seed: int, eps_i: int,
                 start: int) -> dict[str, Any]:
    """``models``: (the model, what the attacks run on: itself or its autocast copy);
    clean accuracy and every success are judged on the model itself."""
    model, attacker = models
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
        # Streams keyed by each sample's place in the data set, not in this batch.
        gen = seed_for_rows(unit_seed(seed, eps_i, j), start + idx, device)
        still = clean.clone()
        if idx.numel() > 0:
            res = attack.run(attacker, x[idx], y[idx], threat, generator=gen)
            broken = res.success & _verified(model, res.x_adv, x[idx], y[idx], threat, name)
            still[idx[broken]] = False
            passes[name] = res.passes.to_dict()
            if res.stages:
                stages[name] = plain_stages(res.stages)
        else:
            passes[name] = {"forward": 0, "backward": 0}
        robust[name] = still.cpu().tolist()
    return {"clean": clean.cpu().tolist(), "robust": robust, "passes": passes,
            "stages": stages, "seconds": time.perf_counter() - began}


def _verified(model: nn.Module, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
              threat: ThreatModel, name: str) -> torch.Tensor:
    """(N,) bool: x_adv is inside the threat model and misclassified, checked anew."""
    inside = threat.contains(x_adv, x)
    if not bool(inside.all()):
        raise BastionError(f"attack {name!r} returned points outside the threat model; "
                           "this is a bug in the attack, please report it")
    with torch.inference_mode():
        return is_success(model(x_adv), y, None)
