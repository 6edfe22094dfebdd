"""The card's ``theft_privacy`` section: what an attacker can copy or learn about the
training data of a model, with and without defences.

Every part is a list of the JSON that a ``bastion privacy`` command writes, so the card
is assembled from files (``bastion privacy card``) or written by one command
(``--card``):

- ``extraction``: ``bastion privacy extract --json`` (fidelity and accuracy of the copy
  per query budget, one item per output defence, with the defended accuracy);
- ``membership``: ``bastion privacy audit --json`` (AUROC and TPR at 0.1% / 1% FPR of
  each attack, ROC curves, the target's train / test accuracy and accounted epsilon);
- ``dp_audit``: ``bastion privacy dp-audit --json`` (accounted vs audited epsilon);
- ``inversion``: ``bastion privacy invert --json`` (similarity of reconstructions to
  the class means).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bastion.errors import InputError

PARTS = ("extraction", "membership", "dp_audit", "inversion")


def theft_privacy(*, extraction: list[dict[str, Any]] | None = None,
                  membership: list[dict[str, Any]] | None = None,
                  dp_audit: list[dict[str, Any]] | None = None,
                  inversion: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The section with only the parts given (each a list of command outputs); the ROC
    curves stay in, the inversion images (tensors) do not."""
    parts = {"extraction": extraction, "membership": membership, "dp_audit": dp_audit,
             "inversion": [{k: v for k, v in item.items() if k != "images"}
                           for item in inversion] if inversion is not None else None}
    section = {k: v for k, v in parts.items() if v}
    check_theft_privacy(section)
    return section


def _bad(path: str, why: str) -> InputError:
    return InputError(f"theft_privacy section, {path}: {why}")


def check_theft_privacy(section: Mapping[str, Any], path: str = "$.theft_privacy") -> None:
    """What the schema cannot say: fractions in [0, 1], an audited epsilon never above the
    accounted one (that would be a broken DP training, not a result)."""
    if not any(section.get(p) for p in PARTS):
        raise _bad(path, f"holds none of {', '.join(PARTS)}")
    for i, run in enumerate(section.get("membership", [])):
        for name, attack in run.get("attacks", {}).items():
            if not 0 <= attack["auroc"] <= 1:
                raise _bad(f"{path}.membership[{i}].attacks.{name}", "AUROC outside [0, 1]")
            for point in attack.get("tpr_at_fpr", []):
                if not 0 <= point["tpr"] <= 1:
                    raise _bad(f"{path}.membership[{i}].attacks.{name}", "TPR outside [0, 1]")
    for i, audit in enumerate(section.get("dp_audit", [])):
        for row in audit.get("rows", [audit]):
            if row["audited_epsilon"] > row["accounted_epsilon"] + 1e-9:
                raise _bad(f"{path}.dp_audit[{i}]",
                           f"audited epsilon {row['audited_epsilon']} exceeds the accounted "
                           f"{row['accounted_epsilon']}: the DP training or its accountant is "
                           "broken; report it")


def label(run: Mapping[str, Any]) -> str:
    """A membership run's name in tables and legends: its recipe (and epsilon)."""
    recipe = run.get("recipe", {})
    name = recipe.get("method", "model")
    eps = run.get("epsilon")
    return f"{name} (eps {eps:.2f})" if isinstance(eps, float) else name


def roc_plot(runs: Sequence[Mapping[str, Any]], *, attack: str = "lira-online") -> bytes:
    """PNG of ``attack``'s ROC curve for each membership run, both axes logarithmic
    (the low-FPR corner is where membership inference matters), with the diagonal."""
    fig = Figure(figsize=(5.2, 4.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    low = 1.0
    for run in runs:
        roc = run.get("attacks", {}).get(attack, {}).get("roc")
        if not roc or not roc["fpr"]:
            continue
        low = min(low, roc["fpr"][0])
        tpr = [max(t, 1e-5) for t in roc["tpr"]]  # zeros cannot sit on a log axis
        auc = run["attacks"][attack]["auroc"]
        ax.plot(roc["fpr"], tpr, label=f"{label(run)}: AUC {auc:.3f}")
    ax.plot([low, 1], [low, 1], color="grey", linestyle="--", label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, 1)
    ax.set_ylim(max(low / 10, 1e-5), 1)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title(f"membership inference ({attack})")
    ax.legend(loc="lower right", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def privacy_view(section: Mapping[str, Any]) -> dict[str, Any]:
    """What the HTML template shows: membership rows per run and attack, and the plot."""
    rows = []
    for run in section.get("membership", []):
        for name, a in run.get("attacks", {}).items():
            low, one = (a["tpr_at_fpr"] + [None, None])[:2]
            rows.append({"run": label(run), "attack": name, "auroc": a["auroc"],
                         "auroc_ci": a.get("auroc_ci"), "low": low, "one": one})
    runs = section.get("membership", [])
    return {"membership_rows": rows, "roc_png": roc_plot(runs) if runs else None,
            "fmt": _fmt, "label": label}


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"
