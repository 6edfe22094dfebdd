"""The card's ``redteam`` section: what got through an LLM application, per target.

The section is the red-team run's summary (:func:`bastion.redteam.summary.summarize`)
with empty values dropped::

    {"app": str, "wall_s": float, "queries": int, "leaks": {label: int},
     "targets": {label: {"attempts", "judged", "asr", "per_family", "per_converter",
                         "per_probe", "blocked", "throttled", "errors", "leaks",
                         "queries", "latency_s", ...}},
     "drop": {family: {"unguarded": rate, "guarded": rate, "drop": float}}}

where a ``rate`` is ``{"n", "successes", "rate", "interval"}`` (``rate`` and the 95%
Wilson ``interval`` are fractions, absent when ``n`` is 0). :func:`check_redteam` checks
what the schema cannot: counts add up. :func:`redteam_view` lays the numbers out for the
HTML table: one row per family, converter or probe, one cell per target.
"""

from __future__ import annotations

from typing import Any

from bastion.report._schema import invalid

#: the tables of the section, in the order the page shows them.
DIMENSIONS = (("per_family", "probe family"), ("per_converter", "converter"),
              ("per_probe", "probe"))


def redteam_section(summary: dict[str, Any]) -> dict[str, Any]:
    """A run summary as a card section: ``None`` values dropped (JSON Schema types stay
    single), everything else as it is."""
    section: dict[str, Any] = _drop_none(summary)
    return section


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _check_rate(r: dict[str, Any], path: str) -> None:
    if r["successes"] > r["n"]:
        raise invalid(f"{path}.successes", f"{r['successes']} is more than n = {r['n']}")
    if r["n"] and "rate" in r and abs(r["rate"] - r["successes"] / r["n"]) > 1e-9:
        raise invalid(f"{path}.rate", f"{r['rate']} is not successes / n")
    interval = r.get("interval")
    if interval and "rate" in r and not interval[0] - 1e-9 <= r["rate"] <= interval[1] + 1e-9:
        raise invalid(f"{path}.interval", f"{interval} does not hold the rate {r['rate']}")


def check_redteam(section: dict[str, Any], path: str = "$.redteam") -> None:
    """Raise InputError when the section's numbers disagree: a rate that is not
    successes / n or lies outside its interval, per-family or per-converter counts that
    do not add up to the judged attempts, more judged, blocked or leaking attempts than
    were sent."""
    for label, target in section["targets"].items():
        where = f"{path}.targets.{label}"
        _check_rate(target["asr"], f"{where}.asr")
        if target["asr"]["n"] != target["judged"]:
            raise invalid(f"{where}.asr.n", f"{target['asr']['n']} is not the "
                          f"{target['judged']} judged attempts")
        for key in ("judged", "blocked", "leaks"):
            if target[key] > target["attempts"]:
                raise invalid(f"{where}.{key}", f"{target[key]} is more than the "
                              f"{target['attempts']} attempts")
        for key, _ in DIMENSIONS:
            total = sum(r["n"] for r in target[key].values())
            if total != target["judged"]:
                raise invalid(f"{where}.{key}", f"counts {total} attempts, not the "
                              f"{target['judged']} judged")
            for name, r in target[key].items():
                _check_rate(r, f"{where}.{key}.{name}")
    for family, row in section.get("drop", {}).items():
        for side in ("unguarded", "guarded"):
            _check_rate(row[side], f"{path}.drop.{family}.{side}")


def redteam_view(section: dict[str, Any]) -> dict[str, Any]:
    """Rows for the page: per dimension, ``{"title", "rows": [{"name", "cells": [rate or
    None per target]}]}``; plus the target labels, in the section's order."""
    labels = list(section["targets"])
    tables = []
    for key, title in DIMENSIONS:
        names = sorted({n for t in section["targets"].values() for n in t[key]})
        rows = [{"name": name,
                 "cells": [section["targets"][label][key].get(name) for label in labels],
                 "drop": section.get("drop", {}).get(name, {}).get("drop")
                 if key == "per_family" else None}
                for name in names]
        tables.append({"title": title, "rows": rows, "drop": key == "per_family"
                       and "drop" in section})
    return {"labels": labels, "tables": tables}
