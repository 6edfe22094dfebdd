"""The job behind ``bastion diagnose``: load, diagnose, write JSON and the card.

Kept apart from the command line so it can be called and tested from Python.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.common.records import versions
from bastion.common.state import model_digest
from bastion.diagnostics.api import Diagnosis, diagnose
from bastion.inputs import UserInputs, data_record
from bastion.jobs import EvalSpec, model_info, parse_device
from bastion.threat import ThreatModel
from bastion.zoo.user import load_any

#: the transfer check's surrogate per data set: a model trained without adversarial
#: training, whose adversarial examples are easy to make.
DEFAULT_SURROGATES = {"mnist": "mnist-smallcnn-std"}


@dataclass(frozen=True)
class DiagnoseSpec:
    """One ``bastion diagnose`` run, as given on the command line.

    ``surrogate``: a zoo name or FILE.py; None picks the data set's default
    (:data:`DEFAULT_SURROGATES`), ``"none"`` skips the transfer check.
    """

    model: str
    data: str = "mnist"
    split: str = "test"
    n: int = 200
    norm: str = "Linf"
    eps: float = 0.3
    steps: int = 40
    restarts: int = 1
    square_queries: int = 1000
    black_box_points: int = 100
    surrogate: str | None = None
    seed: int = 0
    checkpoint: Path | None = None
    device: str = "cpu"
    inputs: UserInputs = field(default_factory=UserInputs)

    def surrogate_name(self) -> str | None:
        if self.surrogate is not None:
            return None if self.surrogate.lower() == "none" else self.surrogate
        return DEFAULT_SURROGATES.get(self.data)


def run_diagnose(spec: DiagnoseSpec, *, log: Callable[[str], None] = print,
                 on_check: Callable[[dict[str, Any]], None] | None = None
                 ) -> tuple[Diagnosis, dict[str, Any]]:
    """Diagnose ``spec.model``; returns the :class:`Diagnosis` and the JSON-contract dict
    (the diagnosis plus ``model``, ``data`` and ``versions``)."""
    device = parse_device(spec.device)
    dataset = spec.inputs.load(spec.data, spec.split, spec.n)
    model = spec.inputs.wrap(load_any(spec.model, spec.checkpoint), dataset).to(device).eval()
    name = spec.surrogate_name()
    surrogate = load_any(name).to(device) if name is not None else None
    threat = ThreatModel(norm=spec.norm, eps=spec.eps)
    log(f"diagnosing {spec.model} on {len(dataset)} {spec.data}/{spec.split} images, "
        f"{spec.norm} eps={spec.eps:g}, pgd-{spec.steps}")
    result = diagnose(model, dataset, threat, steps=spec.steps, restarts=spec.restarts,
                      square_queries=spec.square_queries,
                      black_box_points=spec.black_box_points, surrogate=surrogate,
                      surrogate_name=name or "surrogate", seed=spec.seed, log=log,
                      on_check=on_check)
    payload = {**result.to_dict(), "complete": True,
               "model": {**model_info(EvalSpec(model=spec.model), model_digest(model)),
                  **spec.inputs.record()},
               "data": data_record(dataset),
               "versions": versions()}
    return result, payload


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def write_diagnosis_card(out: Path, result: Diagnosis, payload: dict[str, Any], *,
                         seed: int, command: str) -> tuple[Path, Path]:
    """``out/card.json`` and ``out/card.html`` with a ``diagnostics`` section; the
    evaluation part is the security curve (:func:`card_evaluation`)."""
    from bastion.report import CardEntry, write_entry_card

    entry = CardEntry(model=payload["model"], data=payload["data"],
                      evaluation=card_evaluation(result),
                      sections={"diagnostics": diagnostics_section(result)})
    return write_entry_card(out, entry, seed=seed, versions=payload["versions"],
                            command=command)


def diagnostics_section(result: Diagnosis) -> dict[str, Any]:
    """The card's ``diagnostics`` section: checks, verdict, curves (docs/card.md)."""
    return {"checks": result.checks, "masking_suspected": result.masking_suspected,
            "curves": result.curves, "params": result.params}


def card_evaluation(result: Diagnosis) -> dict[str, Any]:
    """The card's ``evaluation``: the base PGD's robust accuracy along the security
    curve (its sweep), shaped like :meth:`bastion.Evaluation.to_dict`."""
    label = result.curves["loss"]["attack"]
    sweep = [{"eps": p["eps"], "robust_accuracy": p["robust_accuracy"],
              "per_attack": {label: p["robust_accuracy"]}} for p in result.curves["security"]]
    main = next(p for p in sweep if math.isclose(p["eps"], result.threat.eps))
    return {"n": result.n, "clean_accuracy": result.clean_accuracy,
            "robust_accuracy": main["robust_accuracy"], "per_attack": dict(main["per_attack"]),
            "sweep": sweep, "passes": {label: result.passes[label]},
            "seconds": round(result.seconds, 3), "threat": result.threat.to_dict(),
            "params": {"source": "bastion diagnose", **result.params}}
