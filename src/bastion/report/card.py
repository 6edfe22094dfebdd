"""The robustness card: what was measured, on what, and how to reproduce it.

A card is one JSON document (``card.json``) and a self-contained page (``card.html``).
Its shape is fixed by ``card.schema.json`` (draft 2020-12)::

    {"schema_version": 1, "kind": "bastion.card", "created": "2025-01-01T12:00:00+00:00",
     "run": {"run_id": str, "seed": int, "versions": {pkg: str}, "command": str},
     "entries": [{"model": {...}, "data": {...}, "evaluation": {...}, ...}, ...],
     "tradeoff": {...},                           # optional: a training sweep's table
     "guard": {...}}                              # optional: the LLM guard (bastion demo)

Versioning: adding optional fields or sections keeps ``schema_version`` 1 (the
evaluation's ``flags``, ``stages`` and ``probe``, and an entry's ``diagnostics`` and
``certified`` sections, came that way: cards without them stay valid); removing or
renaming a field bumps it.
Readers must ignore fields they do not know.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bastion.common.records import new_run_id, now
from bastion.errors import ConfigError, InputError
from bastion.report._schema import check_schema, invalid, to_plain
from bastion.report.guard import check_guard
from bastion.report.html import render_html
from bastion.report.privacy import check_theft_privacy
from bastion.report.redteam import check_redteam, redteam_section

CARD_SCHEMA_VERSION = 1
CARD_KIND = "bastion.card"
_CORE = ("model", "data", "evaluation")
# Accuracies are ratios of counts written as floats; allow for their rounding.
_TOL = 1e-9


@dataclass
class CardEntry:
    """One model evaluated on one data set.

    Attributes:
        model: ``{"name": str, "kind": "bundled"|"package"|"file", "description": str,
            "digest": str}``; ``digest`` identifies the weights (hex of their hash).
        data: ``{"name": str, "split": str, "n": int, "source": str}``; ``n`` is the
            number of samples evaluated and must equal ``evaluation["n"]``.
        evaluation: :meth:`bastion.evaluation.Evaluation.to_dict`: accuracies are
            fractions in [0, 1], eps in input units, ``seconds`` in wall-clock seconds.
        sections: optional further sections written beside the three above
            (e.g. ``{"diagnostics": {...}}``); their names must not clash with them.
    """

    model: dict[str, Any]
    data: dict[str, Any]
    evaluation: dict[str, Any]
    sections: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        clash = sorted(set(self.sections) & set(_CORE))
        if clash:
            raise ConfigError(f"extra sections {clash} would overwrite the entry's own "
                              "fields; give them other names")
        return {"model": self.model, "data": self.data, "evaluation": self.evaluation,
                **self.sections}


def build_card(entries: list[CardEntry], *, run: dict[str, Any],
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Assemble and validate a card.

    Args:
        entries: at least one :class:`CardEntry`.
        run: ``{"run_id": str, "seed": int, "versions": {package: version}, "command": str}``
            where ``command`` is the shell command that reproduces the run.
        extra: optional card-level sections beside ``entries``, e.g. ``{"tradeoff":
            table}`` (a training sweep, :mod:`bastion.train.sweep`) or ``{"guard":
            section}`` (the LLM guard, :func:`bastion.report.guard.guard_card_section`).

    Returns:
        The card as plain JSON data (dicts, lists, str, int, float), already validated.
    """
    if not entries:
        raise InputError("a card needs at least one entry; evaluate a model first")
    for i, entry in enumerate(entries):
        if not isinstance(entry, CardEntry):
            raise InputError(f"entries[{i}] is a {type(entry).__name__}, not a CardEntry")
    clash = sorted(set(extra or {}) & {"schema_version", "kind", "created", "run", "entries"})
    if clash:
        raise ConfigError(f"extra sections {clash} would overwrite the card's own fields")
    card = {"schema_version": CARD_SCHEMA_VERSION, "kind": CARD_KIND, "created": now(),
            "run": run, "entries": [entry.to_dict() for entry in entries], **(extra or {})}
    plain: dict[str, Any] = to_plain(card)
    validate_card(plain)
    return plain


def write_card(out_dir: Path, entries: list[CardEntry], *, run: dict[str, Any],
               extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``out_dir/card.json`` and ``out_dir/card.html``; return their paths.

    Both files are replaced whole (written aside, then renamed), so an interrupted
    write never leaves half a card.
    """
    return _write(Path(out_dir), build_card(entries, run=run, extra=extra))


def _write(out_dir: Path, card: dict[str, Any]) -> tuple[Path, Path]:
    """``out_dir/card.json`` and ``card.html`` of a checked card, each replaced whole."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "card.json", out_dir / "card.html"
    _replace(json_path, json.dumps(card, indent=2, allow_nan=False) + "\n")
    _replace(html_path, render_html(card))
    return json_path, html_path


def write_entry_card(out_dir: Path, entry: CardEntry, *, seed: int, versions: dict[str, str],
                     command: str) -> tuple[Path, Path]:
    """:func:`write_card` for a one-entry card under a new run id (a single command's
    card: ``bastion diagnose``, ``bastion certify``)."""
    run = {"run_id": new_run_id(), "seed": seed, "versions": versions, "command": command}
    return write_card(out_dir, [entry], run=run)


def write_redteam_card(out_dir: Path, summary: dict[str, Any], *, run: dict[str, Any]
                       ) -> tuple[Path, Path]:
    """Write ``out_dir/card.json`` and ``card.html`` for a red-team run: no model entries,
    one ``redteam`` section made from the run's summary
    (:func:`bastion.redteam.summary.summarize`). ``run`` is as for :func:`build_card`."""
    card = to_plain({"schema_version": CARD_SCHEMA_VERSION, "kind": CARD_KIND,
                     "created": now(), "run": run, "entries": [],
                     "redteam": redteam_section(summary)})
    validate_card(card)
    return _write(Path(out_dir), card)


def write_privacy_card(out_dir: Path, section: dict[str, Any], *, run: dict[str, Any]
                       ) -> tuple[Path, Path]:
    """Write ``out_dir/card.json`` and ``card.html`` holding one ``theft_privacy``
    section (:func:`bastion.report.privacy.theft_privacy`) and no model entries."""
    card = to_plain({"schema_version": CARD_SCHEMA_VERSION, "kind": CARD_KIND,
                     "created": now(), "run": run, "entries": [], "theft_privacy": section})
    validate_card(card)
    return _write(Path(out_dir), card)


def validate_card(card: dict[str, Any]) -> None:
    """Raise :class:`~bastion.errors.InputError` naming the first bad field of ``card``.

    Checks the JSON Schema (types, required fields, ranges), then what a schema cannot
    say: the numbers agree with each other (robust <= clean, worst case <= every attack,
    the sweep holds the main eps, ...).
    """
    if not isinstance(card, dict):
        raise InputError(f"a card is a JSON object (dict), not a {type(card).__name__}")
    plain: dict[str, Any] = to_plain(card)
    check_schema(plain)
    try:
        datetime.fromisoformat(plain["created"])
    except ValueError:
        raise invalid("$.created", f"{plain['created']!r} is not an ISO 8601 time") from None
    if not plain["entries"] and "redteam" not in plain and "theft_privacy" not in plain:
        raise invalid("$.entries", "needs at least 1 item(s) (only a red-team or a theft "
                      "and privacy card has none)")
    if isinstance(plain.get("redteam"), dict):
        check_redteam(plain["redteam"])
    if isinstance(plain.get("guard"), dict):
        check_guard(plain["guard"])
    if isinstance(plain.get("theft_privacy"), dict):
        check_theft_privacy(plain["theft_privacy"])
    if isinstance(plain.get("tradeoff"), dict):
        _check_tradeoff(plain["tradeoff"], "$.tradeoff")
    for i, entry in enumerate(plain["entries"]):
        _check_entry(entry, f"$.entries[{i}]")
        if isinstance(entry.get("diagnostics"), dict):
            _check_diagnostics(entry["diagnostics"], f"$.entries[{i}].diagnostics")
        if isinstance(entry.get("certified"), dict):
            _check_certified(entry["certified"], entry["evaluation"]["n"],
                             f"$.entries[{i}].certified")


def _check_tradeoff(table: dict[str, Any], path: str) -> None:
    """Every point of a training sweep holds fractions, robust never above clean."""
    for j, point in enumerate(table.get("points", [])):
        where = f"{path}.points[{j}]"
        clean, robust = point.get("clean_accuracy"), point.get("robust_accuracy")
        if not all(isinstance(v, int | float) and 0 <= v <= 1 for v in (clean, robust)):
            raise invalid(where, f"clean_accuracy {clean} and robust_accuracy {robust} must "
                          "be fractions in [0, 1]")
        if robust > clean + _TOL:
            raise invalid(f"{where}.robust_accuracy", f"{robust} is above clean_accuracy "
                          f"{clean}")


def _check_entry(entry: dict[str, Any], path: str) -> None:
    ev, at = entry["evaluation"], f"{path}.evaluation"
    if entry["data"]["n"] != ev["n"]:
        raise invalid(f"{path}.data.n", f"says {entry['data']['n']} samples but the "
                      f"evaluation counted {ev['n']}")
    low, high = ev["threat"]["bounds"]
    if not low < high:
        raise invalid(f"{at}.threat.bounds", f"lower bound {low} is not below upper {high}")
    attacks = set(ev["per_attack"])
    if set(ev["passes"]) != attacks:
        raise invalid(f"{at}.passes", f"names attacks {sorted(ev['passes'])} but per_attack "
                      f"names {sorted(attacks)}")
    _check_point(ev["clean_accuracy"], ev["robust_accuracy"], ev["per_attack"], at)
    for name, stages in ev.get("stages", {}).items():
        if name not in attacks:
            raise invalid(f"{at}.stages.{name}", f"is not an attack of this evaluation "
                          f"({sorted(attacks)})")
        broken = sum(stage["broken"] for stage in stages.values())
        if broken > ev["n"]:
            raise invalid(f"{at}.stages.{name}", f"its stages broke {broken} samples, more "
                          f"than the {ev['n']} evaluated")
    eps = [point["eps"] for point in ev["sweep"]]
    if any(b <= a for a, b in itertools.pairwise(eps)):
        raise invalid(f"{at}.sweep", f"eps must be strictly ascending, got {eps}")
    if not any(math.isclose(e, ev["threat"]["eps"]) for e in eps):
        raise invalid(f"{at}.sweep", f"has no point at the threat's eps {ev['threat']['eps']}")
    for j, point in enumerate(ev["sweep"]):
        where = f"{at}.sweep[{j}]"
        if set(point["per_attack"]) != attacks:
            raise invalid(f"{where}.per_attack", f"names attacks {sorted(point['per_attack'])} "
                          f"but the evaluation ran {sorted(attacks)}")
        _check_point(ev["clean_accuracy"], point["robust_accuracy"], point["per_attack"], where)


def _check_diagnostics(diag: dict[str, Any], path: str) -> None:
    """``masking_suspected`` is whether some check failed; the security curve ascends."""
    if "checks" in diag and "masking_suspected" in diag:
        failed = any(c["verdict"] == "fail" for c in diag["checks"])
        if diag["masking_suspected"] != failed:
            raise invalid(f"{path}.masking_suspected", f"is {diag['masking_suspected']} but "
                          f"{'some' if failed else 'no'} check failed")
    eps = [p["eps"] for p in diag.get("curves", {}).get("security", [])]
    if any(b <= a for a, b in itertools.pairwise(eps)):
        raise invalid(f"{path}.curves.security", f"eps must be strictly ascending, got {eps}")


def _check_certified(section: dict[str, Any], n: int, path: str) -> None:
    """The curve ascends in eps; a bound certificate is no weaker than the attack allows:
    certified samples the attack did not break are a subset of the robust ones."""
    curve = section.get("curve", [])
    eps = [p["eps"] for p in curve]
    if any(b <= a for a, b in itertools.pairwise(eps)):
        raise invalid(f"{path}.curve", f"eps must be strictly ascending, got {eps}")
    for j, point in enumerate(curve):
        where = f"{path}.curve[{j}]"
        for key in ("certified_accuracy", "empirical_robust_accuracy"):
            if key in point and not 0 <= point[key] <= 1:
                raise invalid(f"{where}.{key}", f"{point[key]} is not a fraction in [0, 1]")
        broken = point.get("certified_but_broken", 0)
        if section.get("method") == "smoothing" or "empirical_robust_accuracy" not in point:
            continue  # smoothing: abstentions after the attack are neither (bastion.certify)
        if point["certified_accuracy"] - broken / n > point["empirical_robust_accuracy"] + _TOL:
            raise invalid(f"{where}.certified_accuracy", f"{point['certified_accuracy']} "
                          f"exceeds the attack's robust accuracy "
                          f"{point['empirical_robust_accuracy']} by more than the "
                          f"{broken} certified-but-broken sample(s) explain")


def _check_point(clean: float, worst: float, per_attack: dict[str, float], path: str) -> None:
    """Robust samples are correctly classified ones that survive every attack."""
    if worst > clean + _TOL:
        raise invalid(f"{path}.robust_accuracy", f"{worst} is above clean_accuracy {clean}")
    for name, accuracy in per_attack.items():
        if accuracy > clean + _TOL:
            raise invalid(f"{path}.per_attack.{name}", f"{accuracy} is above clean_accuracy "
                          f"{clean}")
        if accuracy < worst - _TOL:
            raise invalid(f"{path}.per_attack.{name}", f"{accuracy} is below the worst case "
                          f"robust_accuracy {worst}; a sample robust to every attack "
                          "is robust to each")


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
