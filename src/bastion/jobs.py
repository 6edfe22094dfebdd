"""Jobs behind the command line: load, evaluate, write JSON, records and the card.

Kept apart from :mod:`bastion.cli` so they can be called (and tested) from Python.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bastion import attacks as attack_registry
from bastion import data as data_registry
from bastion.attacks.base import Attack
from bastion.attacks.pgd import PGD
from bastion.errors import ConfigError
from bastion.evaluation.runner import Evaluation, evaluate
from bastion.evaluation.state import model_digest
from bastion.record import RecordWriter, new_run_id, versions
from bastion.threat import ThreatModel
from bastion.zoo.registry import resolve
from bastion.zoo.user import is_path_spec, load_any

#: the main job: a bundled robust model, a bundled standard one, and advertorch's pair.
DEMO_MODELS = ("mnist-lenet5-pgd", "mnist-smallcnn-std",
               "advertorch-lenet5-std", "advertorch-lenet5-adv")
DEMO_SWEEP = (0.05, 0.1, 0.2, 0.3)


@dataclass(frozen=True)
class EvalSpec:
    """Everything one ``bastion evaluate`` run needs, as given on the command line."""

    model: str
    data: str = "mnist"
    split: str = "test"
    n: int | None = 1000
    norm: str = "Linf"
    eps: float = 0.3
    attacks: tuple[str, ...] = ("pgd",)
    steps: int | None = None
    restarts: int | None = None
    step_size: float | None = None
    sweep: tuple[float, ...] = ()
    seed: int = 0
    batch_size: int = 250
    checkpoint: Path | None = None
    device: str = "cpu"


def build_attacks(spec: EvalSpec) -> dict[str, Attack]:
    """Attacks named on the command line, with --steps/--restarts/--step-size applied."""
    built: dict[str, Attack] = {}
    for name in spec.attacks:
        params: dict[str, Any] = {}
        if name == "pgd":
            for key in ("steps", "restarts", "step_size"):
                if getattr(spec, key) is not None:
                    params[key] = getattr(spec, key)
        attack = attack_registry.make(name, **params)
        label = f"pgd-{attack.steps}" if isinstance(attack, PGD) else name
        built[label] = attack
    return built


def parse_device(name: str) -> torch.device:
    """A torch device that exists on this machine, or a ConfigError saying why not."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r} ({exc}); use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA GPU here; "
                          "use --device cpu")
    return device


def model_info(spec: EvalSpec, digest: str) -> dict[str, Any]:
    if is_path_spec(spec.model):
        return {"name": spec.model, "kind": "file", "description": "user model file",
                "digest": digest}
    entry = resolve(spec.model)
    return {"name": spec.model, "kind": entry.kind, "description": entry.description,
            "digest": digest}


def run_one(spec: EvalSpec, *, state: Path | None, progress: bool) -> dict[str, Any]:
    """Evaluate one model; returns the JSON-contract dict (evaluation + model + data)."""
    model = load_any(spec.model, spec.checkpoint).to(parse_device(spec.device))
    dataset = data_registry.load(spec.data, spec.split, spec.n)
    threat = ThreatModel(norm=spec.norm, eps=spec.eps)
    result: Evaluation = evaluate(model, dataset, threat, build_attacks(spec),
                                  eps_sweep=spec.sweep, batch_size=spec.batch_size,
                                  seed=spec.seed, state=state, progress=progress)
    return {
        **result.to_dict(),
        "model": model_info(spec, model_digest(model)),
        "data": {"name": dataset.name, "split": dataset.split, "n": len(dataset),
                 "source": dataset.source},
    }


def run_job(specs: Sequence[EvalSpec], *, out: Path | None, json_path: Path | None,
            state: Path | None, progress: bool, command: str,
            log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Evaluate each spec; write --json, and with --out the record and the card."""
    run_id = new_run_id()
    record = RecordWriter(out / "record.jsonl", run_id) if out is not None else None
    run = {"run_id": run_id, "seed": specs[0].seed, "versions": versions(), "command": command}
    if record is not None:
        record.write("run", seed=specs[0].seed, versions=run["versions"], command=command,
                     params=[_jsonable(s) for s in specs])
    results = []
    for i, spec in enumerate(specs):
        unit_state = state
        if unit_state is None and out is not None:
            unit_state = out / "state" / f"{i:02d}-{_slug(spec.model)}.json"
        log(f"evaluating {spec.model} on {spec.n} {spec.data}/{spec.split} images, "
            f"{spec.norm} eps={spec.eps}, attacks {', '.join(spec.attacks)}")
        res = run_one(spec, state=unit_state, progress=progress)
        results.append(res)
        if record is not None:
            record.write("evaluation", params=_jsonable(spec), result=res)
    payload: dict[str, Any] = results[0] if len(results) == 1 else {"evaluations": results}
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(payload, indent=2) + "\n")
    if out is not None:
        from bastion.report import CardEntry, write_card

        entries = [CardEntry(model=r["model"], data=r["data"],
                             evaluation={k: v for k, v in r.items() if k not in ("model", "data")})
                   for r in results]
        json_card, html_card = write_card(out, entries, run=run)
        log(f"card written: {html_card.resolve()} (data: {json_card.resolve()})")
    return results


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[-60:]


def _jsonable(spec: EvalSpec) -> dict[str, Any]:
    out = {k: getattr(spec, k) for k in spec.__dataclass_fields__}
    out["checkpoint"] = str(spec.checkpoint) if spec.checkpoint else None
    out["attacks"] = list(spec.attacks)
    out["sweep"] = list(spec.sweep)
    return out
