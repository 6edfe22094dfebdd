"""The card as one self-contained HTML page.

Jinja2 renders ``templates/card.html.j2`` with autoescaping on, so model names,
descriptions and commands are shown as text, never run as markup. Plots are embedded
as base64 PNG data URIs and the CSS is inline: the page needs no network, no other
file and no JavaScript.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from bastion.report.guard import guard_view
from bastion.report.plots import (
    attack_bars,
    certified_plot,
    convergence_plot,
    security_curve_plot,
    sweep_plot,
    tradeoff_plot,
)
from bastion.report.privacy import privacy_view
from bastion.report.redteam import redteam_view

_CORE = ("model", "data", "evaluation")


def percent(fraction: float) -> str:
    """0.9234 -> ``"92.3%"`` (one decimal)."""
    return f"{100 * fraction:.1f}%"


def data_uri(png: bytes) -> str:
    """PNG bytes -> ``data:image/png;base64,...`` for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bastion.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,  # a misspelt field fails loudly, not as a blank cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["pct"] = percent
    env.filters["eps"] = lambda value: f"{value:g}"
    env.filters["thousands"] = lambda value: f"{value:,}"
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True)
    return env


def render_html(card: Mapping[str, Any]) -> str:
    """Render a card (as built by :func:`bastion.report.build_card`) to HTML text.

    The card should be valid (:func:`bastion.report.validate_card`). A ``diagnostics``
    section with checks and a ``certified`` section with a curve get their own tables
    and plots; other sections of an entry beyond
    model/data/evaluation are shown as formatted JSON.
    """
    items = []
    for entry in card["entries"]:
        evaluation, name = entry["evaluation"], entry["model"]["name"]
        diagnostics = _diagnostics(entry, name)
        certified = _certified(entry, name)
        shown = {"diagnostics": diagnostics, "certified": certified}
        items.append({
            "entry": entry,
            "sweep_png": data_uri(sweep_plot(evaluation, model_name=name)),
            "bars_png": data_uri(attack_bars(evaluation, model_name=name)),
            "diagnostics": diagnostics,
            "certified": certified,
            # Sections with their own layout are not repeated as JSON.
            "sections": {k: v for k, v in entry.items() if k not in _CORE and not shown.get(k)},
        })
    tradeoff = card.get("tradeoff")
    tradeoff_png = (data_uri(tradeoff_plot(tradeoff))
                    if isinstance(tradeoff, Mapping) and tradeoff.get("points") else None)
    section = card.get("redteam")
    redteam = redteam_view(dict(section)) if isinstance(section, Mapping) else None
    guard_section = card.get("guard")
    guard = guard_view(dict(guard_section)) if isinstance(guard_section, Mapping) else None
    theft = card.get("theft_privacy")
    privacy = None
    if isinstance(theft, Mapping):
        privacy = privacy_view(theft)
        if privacy["roc_png"] is not None:
            privacy["roc_png"] = data_uri(privacy["roc_png"])
    return _environment().get_template("card.html.j2").render(
        card=card, items=items, tradeoff_png=tradeoff_png, redteam=redteam, guard=guard,
        privacy=privacy)


def _certified(entry: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The certified section with its plot; None when the entry has none with a curve."""
    section = entry.get("certified")
    if not isinstance(section, Mapping) or not section.get("curve"):
        return None
    return {**section, "plot_png": data_uri(certified_plot(section, model_name=name))}


def _diagnostics(entry: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The diagnostics section with its plots as data URIs; None when the entry has no
    checks to show (then any ``diagnostics`` field is shown as plain JSON)."""
    diag = entry.get("diagnostics")
    if not isinstance(diag, Mapping) or "checks" not in diag:
        return None
    curves = diag.get("curves", {})
    threat = entry["evaluation"]["threat"]
    return {
        "checks": diag["checks"],
        "masking_suspected": diag.get("masking_suspected"),
        "security_png": data_uri(security_curve_plot(curves, threat, model_name=name))
        if curves.get("security") else None,
        "convergence_png": data_uri(convergence_plot(curves, model_name=name))
        if curves.get("loss") else None,
    }
