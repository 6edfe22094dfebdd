"""The threat matrix: each model's accuracy under each threat model, one table.

Rows are models, columns threats, cells accuracy with a 95% interval:

- ``linf:EPS``, ``l2:EPS``, ``l1:EPS``: robust accuracy under APGD-CE then APGD-T
  (``targets`` target classes) through :func:`bastion.evaluate`; under L1 both run on the
  3 eps / 2 eps / eps schedule. Wilson interval over the n images.
- ``spatial:ADEG-SPX``: worst-case accuracy over a grid of rotations (``angles`` evenly
  spaced in [-A, A]) and integer shifts in [-S, S] per axis (:mod:`.spatial`). Wilson.
- ``corruptions``: mean accuracy over the 7 corruptions × 5 severities of
  :mod:`.corruptions`. Its interval is a percentile bootstrap over images (1,000
  resamples, seeded), since the 35 predictions per image are not independent.

Finished cells are saved to a state file as they finish, and the L-p cells keep the
evaluation runner's own resume files, so an interrupted matrix resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bastion.attacks import APGD, APGDT
from bastion.common.intervals import wilson_interval
from bastion.data.base import Dataset
from bastion.errors import ConfigError, StateError
from bastion.evaluation.runner import Evaluation, evaluate
from bastion.threat import ThreatModel
from bastion.threats.corruptions import corrupted_datasets
from bastion.threats.spatial import SpatialThreat, grid_attack

_NORMS = {"linf": "Linf", "l2": "L2", "l1": "L1"}
#: bootstrap resamples for the corruption column's interval.
BOOTSTRAP = 1000


@dataclass(frozen=True)
class MatrixThreat:
    """One column: an L-p ball (``threat``), a spatial budget (``spatial``) or the
    corruption suite (neither)."""

    label: str
    threat: ThreatModel | None = None
    spatial: SpatialThreat | None = None


def parse_threats(text: str) -> list[MatrixThreat]:
    """``"linf:0.3,l2:2,l1:10,spatial:30deg-3px,corruptions"`` -> columns, in order."""
    columns = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        kind, _, value = part.partition(":")
        kind = kind.lower()
        if kind in _NORMS:
            try:
                eps = float(value)
            except ValueError:
                raise ConfigError(f"{part!r}: the radius after {kind}: must be a number, "
                                  "e.g. linf:0.3") from None
            threat = ThreatModel(norm=_NORMS[kind], eps=eps)
            columns.append(MatrixThreat(f"{threat.norm} {eps:g}", threat=threat))
        elif kind == "spatial":
            spatial = SpatialThreat.parse(value)
            columns.append(MatrixThreat(spatial.label(), spatial=spatial))
        elif kind == "corruptions" and not value:
            columns.append(MatrixThreat("corruptions"))
        else:
            raise ConfigError(f"unknown threat {part!r}; use linf:EPS, l2:EPS, l1:EPS, "
                              "spatial:30deg-3px or corruptions")
    if not columns:
        raise ConfigError("--threats is empty; e.g. linf:0.3,l1:10,spatial:30deg-3px")
    labels = [c.label for c in columns]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--threats names a threat twice: {labels}")
    return columns


def wilson_cell(k: int, n: int) -> dict[str, Any]:
    """Accuracy ``k / n`` with its Wilson 95% interval."""
    low, high = wilson_interval(k, n) or (0.0, 1.0)
    return {"accuracy": k / n, "correct": k, "n": n, "interval": [low, high],
            "interval_kind": "wilson"}


def lp_attacks(threat: ThreatModel, steps: int, targets: int) -> dict[str, Any]:
    """APGD-CE then APGD-T, on the eps schedule under L1."""
    schedule = threat.norm == "L1"
    return {"apgd-ce": APGD(steps=steps, eps_schedule=schedule),
            "apgd-t": APGDT(n_target_classes=targets, steps=steps, eps_schedule=schedule)}


def lp_cell(model: nn.Module, ds: Dataset, threat: ThreatModel, *, steps: int, targets: int,
            seed: int, batch_size: int, state: Path | None) -> tuple[dict[str, Any], Evaluation]:
    res = evaluate(model, ds, threat, lp_attacks(threat, steps, targets),
                   batch_size=batch_size, seed=seed, state=state)
    cell = wilson_cell(round(res.robust_accuracy * res.n), res.n)
    cell["method"] = f"apgd-ce + apgd-t ({targets} targets), {steps} steps"
    return cell, res


def spatial_cell(model: nn.Module, ds: Dataset, spatial: SpatialThreat, *,
                 angles: int) -> dict[str, Any]:
    with torch.no_grad():
        right = model(ds.x).argmax(1) == ds.y
    fooled, _ = grid_attack(model, ds.x[right], ds.y[right], spatial, angles=angles)
    cell = wilson_cell(int((~fooled).sum()), len(ds))
    shifts = 2 * int(spatial.max_shift) + 1
    cell["method"] = f"grid: {angles} angles x {shifts}x{shifts} shifts"
    return cell


def corruption_cell(model: nn.Module, ds: Dataset, *, seed: int) -> dict[str, Any]:
    sets = corrupted_datasets(ds, seed=seed)
    with torch.no_grad():
        hits = torch.stack([(model(c.x).argmax(1) == c.y).float() for c in sets.values()])
    per_image = hits.mean(0)  # (N,) share of the corrupted copies classified right
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, len(ds), (BOOTSTRAP, len(ds)), generator=gen)
    means = per_image[picks].mean(1)
    return {"accuracy": float(per_image.mean()), "n": len(ds),
            "interval": [float(means.quantile(0.025)), float(means.quantile(0.975))],
            "interval_kind": "bootstrap", "method": f"mean over {len(sets)} corrupted sets",
            "per_corruption": {f"{k[0]}-{k[1]}": float(h.mean())
                               for k, h in zip(sets, hits, strict=True)}}


def run_matrix(models: dict[str, nn.Module], ds: Dataset, columns: Sequence[MatrixThreat], *,
               steps: int = 100, targets: int = 9, angles: int = 13, seed: int = 0,
               batch_size: int = 250, state_dir: Path | None = None,
               log: Callable[[str], None] = print
               ) -> tuple[dict[str, Any], dict[str, Evaluation]]:
    """Fill the matrix; returns (the card's ``threat_matrix`` section, each model's
    evaluation under the first L-p column, for the card's entries).

    ``state_dir``: where finished cells are kept (``matrix.json``) with the L-p cells'
    resume files; a rerun with the same settings resumes, other settings are refused.
    """
    settings = {"data": [ds.name, ds.split, len(ds)], "steps": steps, "targets": targets,
                "angles": angles, "seed": seed}
    done = _load(state_dir, settings)
    evaluations: dict[str, Evaluation] = {}
    rows = []
    for name, model in models.items():
        model.eval()
        with torch.no_grad():
            clean = int((model(ds.x).argmax(1) == ds.y).sum())
        cells = []
        for column in columns:
            key = f"{name}\t{column.label}"
            is_first_lp = column.threat is not None and name not in evaluations
            if key not in done or is_first_lp:
                began = time.perf_counter()
                cell = _cell(model, name, ds, column, evaluations, steps=steps,
                             targets=targets, angles=angles, seed=seed,
                             batch_size=batch_size, state_dir=state_dir)
                if key not in done:
                    cell["seconds"] = round(time.perf_counter() - began, 2)
                    done[key] = cell
                    _save(state_dir, settings, done)
            log(f"{name} | {column.label}: {done[key]['accuracy']:.1%}")
            cells.append({"threat": column.label, **done[key]})
        rows.append({"model": name, "clean_accuracy": clean / len(ds), "cells": cells})
    section = {"data": {"name": ds.name, "split": ds.split, "n": len(ds)},
               "threats": [c.label for c in columns], "rows": rows}
    return section, evaluations


def _cell(model: nn.Module, name: str, ds: Dataset, column: MatrixThreat,
          evaluations: dict[str, Evaluation], *, steps: int, targets: int, angles: int,
          seed: int, batch_size: int, state_dir: Path | None) -> dict[str, Any]:
    if column.threat is not None:
        slug = "".join(ch if ch.isalnum() else "_" for ch in f"{name}-{column.label}")
        state = state_dir / f"{slug}.json" if state_dir is not None else None
        cell, res = lp_cell(model, ds, column.threat, steps=steps, targets=targets,
                            seed=seed, batch_size=batch_size, state=state)
        evaluations.setdefault(name, res)
        return cell
    if column.spatial is not None:
        return spatial_cell(model, ds, column.spatial, angles=angles)
    return corruption_cell(model, ds, seed=seed)


def _load(state_dir: Path | None, settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    path = state_dir / "matrix.json" if state_dir is not None else None
    if path is None or not path.exists():
        return {}
    saved = json.loads(path.read_text())
    if saved.get("settings") != settings:
        raise StateError(f"{path} holds a matrix made with other settings "
                         f"({saved.get('settings')}, now {settings}); rerun with those "
                         "settings to resume, or delete the file to start over")
    cells: dict[str, dict[str, Any]] = saved["cells"]
    return cells


def _save(state_dir: Path | None, settings: dict[str, Any],
          done: dict[str, dict[str, Any]]) -> None:
    if state_dir is None:
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / "matrix.json.tmp"
    tmp.write_text(json.dumps({"settings": settings, "cells": done}, indent=1) + "\n")
    tmp.replace(state_dir / "matrix.json")
