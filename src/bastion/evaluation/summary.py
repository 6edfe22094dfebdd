"""From finished work units to an :class:`Evaluation`: accuracies, passes, stages, flags."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.evaluation.flags import black_box_flags, black_box_only, monotone_flags, probe_flags
from bastion.threat import ThreatModel


@dataclass
class Evaluation:
    """Result of :func:`bastion.evaluate`. Accuracies are fractions in [0, 1].

    Attributes:
        robust_accuracy: at ``threat.eps``, samples robust to *every* attack (worst case).
        per_attack: at ``threat.eps``, attack name -> robust accuracy under that attack.
        sweep: one entry per eps (ascending): eps, robust_accuracy, per_attack.
        passes: attack name -> {"forward": n, "backward": n}, per-sample passes summed
            over all eps and batches.
        seconds: compute time summed over all units (resumed units included).
        stages: for cascade attacks, at ``threat.eps``: attack name -> stage name ->
            {"broken": samples that stage broke first, "uses_gradients": bool,
            "passes": {"forward": n, "backward": n}}, summed over batches, in run order.
        flags: sanity flags (:mod:`bastion.evaluation.flags`), each {"id", "severity",
            "title", "evidence", "advice"}; empty when nothing looked wrong.
        probe: the numbers the model probe measured (:mod:`bastion.evaluation.probe`).
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
    stages: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    flags: list[dict[str, Any]] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)

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
            "stages": self.stages,
            "flags": self.flags,
            "probe": self.probe,
        }


def summarise(units: Mapping[str, Mapping[str, Any]], n: int, threats: list[ThreatModel],
              threat: ThreatModel, uses_gradients: Mapping[str, bool],
              params: dict[str, Any], probe: dict[str, Any]) -> Evaluation:
    """Add up ``units`` (key ``"eps_index/start:stop"``, tiling [0, n) for every eps) into
    an :class:`Evaluation`.

    Args:
        uses_gradients: attack name -> whether it is a gradient attack, in run order.
        probe: :func:`bastion.evaluation.probe.probe_model`'s numbers ({} to skip its flags).
    """
    sweep: list[dict[str, Any]] = []
    passes = {name: {"forward": 0, "backward": 0} for name in uses_gradients}
    stages_by_eps: dict[float, dict[str, dict[str, dict[str, Any]]]] = {}
    only: dict[float, int] = {}
    seconds = 0.0
    clean_total = 0
    for i, t in enumerate(threats):
        batch = _tiles(units, i, n)
        clean_total = sum(c for u in batch for c in u["clean"])
        robust = {name: [r for u in batch for r in u["robust"][name]] for name in uses_gradients}
        worst = [all(flags) for flags in zip(*robust.values(), strict=True)]
        for u in batch:
            for name in uses_gradients:
                for k in ("forward", "backward"):
                    passes[name][k] += u["passes"][name][k]
        seconds += sum(u["seconds"] for u in batch)
        stages_by_eps[t.eps] = sum_stages(u.get("stages", {}) for u in batch)
        count = black_box_only(robust, uses_gradients)
        if count is not None:
            only[t.eps] = count
        sweep.append({"eps": t.eps, "robust_accuracy": sum(worst) / n,
                      "per_attack": {k: sum(v) / n for k, v in robust.items()}})
    main = next(s for s in sweep if s["eps"] == threat.eps)
    flags = [*(probe_flags(probe) if probe else []),
             *black_box_flags(only, n, stages_by_eps), *monotone_flags(sweep, n)]
    return Evaluation(n=n, clean_accuracy=clean_total / n, robust_accuracy=main["robust_accuracy"],
                      per_attack=main["per_attack"], sweep=sweep, passes=passes,
                      seconds=seconds, threat=threat, params=params,
                      stages=stages_by_eps[threat.eps], flags=flags, probe=probe)


def sum_stages(reports: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """Add per-batch stage reports (attack -> stage -> report) into one, keeping the
    stages in the order they first appear (their run order)."""
    total: dict[str, dict[str, dict[str, Any]]] = {}
    for report in reports:
        for attack, stages in report.items():
            into = total.setdefault(attack, {})
            for stage, rep in stages.items():
                acc = into.setdefault(stage, {"broken": 0, "uses_gradients": rep["uses_gradients"],
                                              "passes": {"forward": 0, "backward": 0}})
                acc["broken"] += int(rep["broken"])
                for k in ("forward", "backward"):
                    acc["passes"][k] += int(rep.get("passes", {}).get(k, 0))
    return total


def parse_key(key: str) -> tuple[int, int, int]:
    """A unit key ``"eps_index/start:stop"`` as (eps index, start, stop)."""
    head, _, span = key.partition("/")
    start, _, stop = span.partition(":")
    return int(head), int(start), int(stop)


def _tiles(units: Mapping[str, Mapping[str, Any]], eps_i: int, n: int) -> list[Mapping[str, Any]]:
    """The units of eps index ``eps_i``, in sample order; they must cover [0, n) once."""
    spans = sorted((a, b, key) for key in units for e, a, b in [parse_key(key)] if e == eps_i)
    edge = 0
    for a, b, key in spans:
        if a != edge:
            raise ValueError(f"evaluation units do not tile the samples: {key} after {edge}")
        edge = b
    if edge != n:
        raise ValueError(f"evaluation units cover samples [0, {edge}), not [0, {n})")
    return [units[key] for _, _, key in spans]


def plain_stages(stages: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A cascade's stage report as JSON numbers (attacks may hand back tensors)."""
    return {stage: {"broken": int(rep["broken"]), "uses_gradients": bool(rep["uses_gradients"]),
                    "passes": {k: int(v) for k, v in rep.get("passes", {}).items()}}
            for stage, rep in stages.items()}
