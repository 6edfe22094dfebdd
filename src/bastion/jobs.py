"""Jobs behind the command line: load, evaluate, write JSON, records and the card.

Kept apart from :mod:`bastion.cli` so they can be called (and tested) from Python.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bastion.attacks.base import Attack
from bastion.common.records import RecordWriter, new_run_id, versions
from bastion.common.state import model_digest, run_lock
from bastion.errors import ConfigError
from bastion.evaluation import attack_spec
from bastion.evaluation.attack_spec import SHARED_OPTIONS
from bastion.evaluation.runner import Evaluation, evaluate
from bastion.evaluation.shard import Shard, distributed, rank_device, shard_from_env
from bastion.inputs import UserInputs, data_record
from bastion.threat import ThreatModel
from bastion.zoo.user import describe, load_any

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
    amp: bool = False
    inputs: UserInputs = field(default_factory=UserInputs)


def build_attacks(spec: EvalSpec) -> dict[str, Attack]:
    """Attacks named on the command line (``NAME[:key=value,...]``) by display label, with
    --steps/--restarts/--step-size applied where they fit
    (:func:`bastion.evaluation.attack_spec.build_attacks`)."""
    shared = {k: getattr(spec, k) for k in SHARED_OPTIONS if getattr(spec, k) is not None}
    return attack_spec.build_attacks(spec.attacks, shared)


#: what --device accepts, for messages.
DEVICES = "cpu, cuda, cuda:N, mps or auto (cuda when torch sees a GPU, else mps, else cpu)"


def parse_device(name: str) -> torch.device:
    """``--device`` as a torch device that exists here, or a ConfigError saying why not.

    ``auto`` picks ``cuda`` when torch sees a GPU, then ``mps`` (Apple), else ``cpu``.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r} ({exc}); use {DEVICES}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA GPU here "
                              f"(torch {torch.__version__}); use --device cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device {name!r} asked for, but torch sees {count} GPU(s): "
                              f"use cuda:0 to cuda:{count - 1}")
    elif device.type == "mps" and not _mps_available():
        raise ConfigError(f"device {name!r} asked for, but torch has no MPS (Apple GPU) "
                          "backend here; use --device cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device {name!r} is not supported; use {DEVICES}")
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def model_info(spec: EvalSpec, digest: str) -> dict[str, Any]:
    kind, description = describe(spec.model)
    return {"name": spec.model, "kind": kind, "description": description, "digest": digest}


def run_one(spec: EvalSpec, *, state: Path | None, progress: bool,
            shard: Shard | None = None) -> dict[str, Any]:
    """Evaluate one model; returns the JSON-contract dict (evaluation + model + data).

    With ``shard`` this process runs its share of the work and gathers the rest; a
    ``cuda`` device then means ``cuda:LOCAL_RANK``.
    """
    dataset = spec.inputs.load(spec.data, spec.split, spec.n)
    model = spec.inputs.wrap(load_any(spec.model, spec.checkpoint), dataset)
    model = model.to(parse_device(rank_device(spec.device, shard)))
    threat = ThreatModel(norm=spec.norm, eps=spec.eps)
    result: Evaluation = evaluate(model, dataset, threat, build_attacks(spec),
                                  eps_sweep=spec.sweep, batch_size=spec.batch_size,
                                  seed=spec.seed, state=state, progress=progress,
                                  shard=shard, amp=spec.amp)
    return {
        **result.to_dict(),
        "model": {**model_info(spec, model_digest(model)), **spec.inputs.record()},
        "data": data_record(dataset),
    }


def check_outputs(out: Path | None, json_path: Path | None) -> None:
    """Refuse output paths that cannot be written, before any work (not after it)."""
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; --out names a folder (for the card, the "
                          "record and the resume files): pass a folder path")
    if json_path is not None:
        if json_path.is_dir():
            raise ConfigError(f"--json {json_path} is a folder; --json names the file to "
                              f"write, e.g. {json_path / 'results.json'}")
        parent = json_path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise ConfigError(f"--json {json_path}: cannot create files under {parent}; "
                              "pass a writable path")


def run_job(specs: Sequence[EvalSpec], *, out: Path | None, json_path: Path | None,
            state: Path | None, progress: bool, command: str,
            log: Callable[[str], None] = print,
            card_extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Evaluate each spec; write --json, and with --out the record and the card.

    ``card_extra`` holds card-level sections written beside the entries (``bastion
    demo`` puts its ``guard`` section there; see :func:`bastion.report.build_card`).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process evaluates its share and
    gathers the rest; only rank 0 writes the JSON, the record and the card, and every
    process keeps its own resume files.
    """
    check_outputs(out, json_path)
    shard = shard_from_env()
    main = shard is None or shard.is_main
    if shard is not None:
        inner, where = log, f"rank {shard.rank}/{shard.world_size}: "

        def log(text: str) -> None:
            inner(where + text)

    lock = run_lock(out) if out is not None and main else nullcontext()
    with lock, distributed(shard):
        results = _evaluate_all(specs, out=out if main else None, state=state,
                                state_dir=out, progress=progress and main, command=command,
                                shard=shard, log=log, card_extra=card_extra)
    if not main:
        return results
    payload: dict[str, Any] = results[0] if len(results) == 1 else {"evaluations": results}
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(payload, indent=2) + "\n")
    return results


def _evaluate_all(specs: Sequence[EvalSpec], *, out: Path | None, state: Path | None,
                  state_dir: Path | None, progress: bool, command: str,
                  shard: Shard | None, log: Callable[[str], None],
                  card_extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run every spec; with ``out`` also write the record and the card."""
    run_id = new_run_id()
    record = RecordWriter(out / "record.jsonl", run_id) if out is not None else None
    run = {"run_id": run_id, "seed": specs[0].seed, "versions": versions(), "command": command}
    if record is not None:
        record.write("run", seed=specs[0].seed, versions=run["versions"], command=command,
                     params=[_jsonable(s) for s in specs])
    results = []
    for i, spec in enumerate(specs):
        unit_state = state
        if unit_state is None and state_dir is not None:
            unit_state = state_dir / "state" / f"{i:02d}-{_slug(spec.model)}.json"
        log(f"evaluating {spec.model} on {spec.n} {spec.data}/{spec.split} images, "
            f"{spec.norm} eps={spec.eps}, attacks {', '.join(spec.attacks)}")
        res = run_one(spec, state=unit_state, progress=progress, shard=shard)
        results.append(res)
        for f in res["flags"]:
            log(f"sanity check {f['severity'].upper()}: {f['title']} ({f['id']}); "
                "see the card or the JSON 'flags' for evidence and advice")
        if record is not None:
            record.write("evaluation", params=_jsonable(spec), result=res)
    if out is not None:
        from bastion.report import CardEntry, write_card

        entries = [CardEntry(model=r["model"], data=r["data"],
                             evaluation={k: v for k, v in r.items() if k not in ("model", "data")})
                   for r in results]
        json_card, html_card = write_card(out, entries, run=run, extra=card_extra)
        log(f"card written: {html_card.resolve()} (data: {json_card.resolve()})")
    return results


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[-60:]


def _jsonable(spec: EvalSpec) -> dict[str, Any]:
    out = {k: getattr(spec, k) for k in spec.__dataclass_fields__}
    out["checkpoint"] = str(spec.checkpoint) if spec.checkpoint else None
    out["attacks"] = list(spec.attacks)
    out["sweep"] = list(spec.sweep)
    inputs = spec.inputs
    out["inputs"] = {"resize": list(inputs.resize) if inputs.resize else None,
                     "classes": inputs.classes,
                     "data_root": str(inputs.data_root) if inputs.data_root else None,
                     "mean": list(inputs.mean), "std": list(inputs.std)}
    return out
