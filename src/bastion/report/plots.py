"""Plots for the robustness card, returned as PNG bytes.

Figures are drawn on matplotlib's Agg canvas directly (no ``pyplot``), so nothing ever
opens a window and no global figure state is left behind. Accuracies are plotted in
percent (0-100); eps is in the units of the inputs (the same units as the bounds).

:func:`sweep_plot` and :func:`attack_bars` take ``evaluation`` shaped like
:meth:`bastion.evaluation.Evaluation.to_dict` (only ``clean_accuracy``,
``robust_accuracy``, ``per_attack``, ``sweep`` and ``threat`` are read);
:func:`security_curve_plot` and :func:`convergence_plot` take the ``curves`` of a card's
``diagnostics`` section (:mod:`bastion.diagnostics`); :func:`certified_plot` a card's
``certified`` section (:mod:`bastion.certify.card`); :func:`tradeoff_plot` a training
sweep's table (the card's ``tradeoff``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_SIZE = (6.4, 4.0)  # inches
_DPI = 100
_WORST = "black"


def sweep_plot(evaluation: Mapping[str, Any], *, model_name: str) -> bytes:
    """Robust accuracy (%) against eps: one line per attack, the worst case in bold.

    A dotted horizontal line marks clean accuracy (the value every curve starts from at
    eps = 0) and a faint vertical line the main eps (``threat.eps``). Works for a sweep
    of a single eps too: each point carries a marker.

    Returns:
        PNG file contents.
    """
    sweep = evaluation["sweep"]
    threat = evaluation["threat"]
    eps = [point["eps"] for point in sweep]
    fig, ax = _figure()
    ax.axhline(100 * evaluation["clean_accuracy"], color="grey", linestyle=":",
               linewidth=1.2, label="clean")
    ax.axvline(threat["eps"], color="grey", alpha=0.25, linewidth=6, label="main eps")
    # The worst case is drawn first and thick, so an attack that equals it stays visible.
    ax.plot(eps, [100 * point["robust_accuracy"] for point in sweep], marker="o",
            markersize=8, linewidth=4, color=_WORST, label="worst case", zorder=2)
    for name in evaluation["per_attack"]:
        ax.plot(eps, [100 * point["per_attack"][name] for point in sweep],
                marker="o", markersize=4, linewidth=1.2, label=_literal(name), zorder=3)
    ax.set_xlabel(f"eps ({threat['norm']} radius, input units)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(-2, 102)
    if max(eps) > 0:
        ax.set_xlim(0, 1.05 * max(eps))  # eps starts at 0, where robust equals clean
    ax.set_title(_title(model_name, threat))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return _png(fig)


def attack_bars(evaluation: Mapping[str, Any], *, model_name: str) -> bytes:
    """Accuracy (%) at the main eps: clean first, then each attack, then the worst case.

    Each bar is labelled with its value (one decimal).

    Returns:
        PNG file contents.
    """
    threat = evaluation["threat"]
    per_attack = evaluation["per_attack"]
    labels = ["clean", *(_literal(name) for name in per_attack), "worst case"]
    values = [100 * evaluation["clean_accuracy"], *(100 * a for a in per_attack.values()),
              100 * evaluation["robust_accuracy"]]
    colors = ["tab:green", *["tab:blue"] * len(per_attack), _WORST]
    fig, ax = _figure()
    positions = list(range(len(values)))
    bars = ax.bar(positions, values, color=colors)
    ax.bar_label(bars, labels=[f"{v:.1f}%" for v in values], padding=2, fontsize="small")
    ax.set_xticks(positions, labels, rotation=30 if len(labels) > 5 else 0)
    ax.set_xlabel(f"attack at eps = {threat['eps']:g} ({threat['norm']}, input units)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 110)  # room for the value labels above a 100% bar
    ax.set_title(_title(model_name, threat))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def security_curve_plot(curves: Mapping[str, Any], threat: Mapping[str, Any], *,
                        model_name: str, pass_at_most: float = 0.02) -> bytes:
    """Diagnostics: robust accuracy (%) against eps up to the unbounded budget.

    ``curves["security"]`` holds ``{"eps", "robust_accuracy"}`` points in ascending eps,
    the last at the budget where the ball covers the whole input box. A shaded band
    marks where the curve must end (at most ``pass_at_most``), a faint vertical line
    the main eps. eps runs on a log axis, so the small radii stay readable next to the
    budget (under L2 it is sqrt(dimension) times the input range).

    Returns:
        PNG file contents.
    """
    points = curves["security"]
    eps = [p["eps"] for p in points]
    fig, ax = _figure()
    ax.axhspan(-2, 100 * pass_at_most, color="tab:green", alpha=0.12,
               label=f"where it must end (<= {100 * pass_at_most:g}%)")
    ax.axvline(threat["eps"], color="grey", alpha=0.25, linewidth=6, label="main eps")
    ax.plot(eps, [100 * p["robust_accuracy"] for p in points], marker="o", color=_WORST,
            linewidth=2, label=_literal(curves.get("loss", {}).get("attack", "attack")))
    ax.set_xscale("log")
    ax.set_xlabel(f"eps ({threat['norm']} radius, input units, log scale)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"{_literal(model_name)}: security curve")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return _png(fig)


def convergence_plot(curves: Mapping[str, Any], *, model_name: str) -> bytes:
    """Diagnostics: the base attack's mean best loss (left axis) and the share of
    samples it has not broken yet (%, right axis) against the step.

    ``curves["loss"]`` holds ``mean_best_loss`` and ``robust``, one value per loss
    evaluation (step 0 is the random start), as recorded by
    :func:`bastion.diagnostics.trace.traced_pgd`. A converged attack flattens out.

    Returns:
        PNG file contents.
    """
    loss = curves["loss"]
    steps = list(range(len(loss["mean_best_loss"])))
    fig, ax = _figure()
    ax.plot(steps, loss["mean_best_loss"], color="tab:blue", linewidth=2,
            label=f"mean best {loss.get('loss', 'loss')} loss")
    ax.set_xlabel("step")
    ax.set_ylabel("mean best loss so far", color="tab:blue")
    right = ax.twinx()
    right.plot(steps, [100 * r for r in loss["robust"]], color="tab:red", linestyle="--",
               linewidth=1.5, label="not yet broken")
    right.set_ylabel("not yet broken (% of attacked samples)", color="tab:red")
    right.set_ylim(-2, 102)
    ax.set_title(f"{_literal(model_name)}: {_literal(loss['attack'])} convergence")
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize="small", loc="center right")
    return _png(fig)


def certified_plot(section: Mapping[str, Any], *, model_name: str) -> bytes:
    """Certified and empirical robust accuracy (%) against the radius, the gap shaded.

    ``section`` is a card's ``certified`` section (:mod:`bastion.certify.card`): its
    ``curve`` holds ``{"eps", "certified_accuracy", "empirical_robust_accuracy"}``
    points in ascending eps. The truth lies between the two lines: the certificate is a
    lower bound on robust accuracy, the attack an upper bound.

    Returns:
        PNG file contents.
    """
    curve = section["curve"]
    eps = [p["eps"] for p in curve]
    certified = [100 * p["certified_accuracy"] for p in curve]
    empirical = [100 * p["empirical_robust_accuracy"] for p in curve]
    fig, ax = _figure()
    ax.fill_between(eps, certified, empirical, color="tab:orange", alpha=0.2,
                    label="gap: the true robust accuracy lies here")
    ax.plot(eps, empirical, marker="o", color="tab:red", linewidth=1.5,
            label=f"empirical: {_literal(section['attack'])}")
    ax.plot(eps, certified, marker="s", color=_WORST, linewidth=2.5,
            label=f"certified: {_literal(section['method'])}")
    ax.set_xlabel(f"eps ({section['norm']} radius, input units)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"{_literal(model_name)}: certified vs empirical")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    return _png(fig)


def tradeoff_plot(table: Mapping[str, Any]) -> bytes:
    """Clean (x) against robust (y) test accuracy (%), one labelled point per model.

    ``table`` is a training sweep (:mod:`bastion.train.sweep`): points with ``method``,
    ``label``, ``clean_accuracy``, ``robust_accuracy`` and ``beta`` (null for methods
    without one). Points of one method share a marker and colour; a beta sweep's points
    are joined in beta order, so its slope reads at a glance.

    Returns:
        PNG file contents.
    """
    fig, ax = _figure()
    methods = list(dict.fromkeys(p.get("method", table["method"]) for p in table["points"]))
    markers = "osD^v<>ph*"
    labelled: list[tuple[float, float, str]] = []
    for k, method in enumerate(methods):
        pts = [p for p in table["points"] if p.get("method", table["method"]) == method]
        pts.sort(key=lambda p: p["beta"] if p.get("beta") is not None else 0.0)
        xs = [100 * p["clean_accuracy"] for p in pts]
        ys = [100 * p["robust_accuracy"] for p in pts]
        ax.plot(xs, ys, marker=markers[k % len(markers)], linestyle="-" if len(pts) > 1
                else "none", markersize=7, label=_literal(method))
        labelled += [(x, y, p.get("label") or f"β={p['beta']:g}")
                     for p, x, y in zip(pts, xs, ys, strict=True)]
    t = table["threat"]
    ax.set_xlabel(f"clean test accuracy (%), n = {table['test_n']}")
    ax.set_ylabel(f"robust accuracy (%), {table['test_attack']} {t['norm']} "
                  f"eps = {t['eps']:g}")
    ax.set_title("robustness vs accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    _place_labels(ax, labelled)
    return _png(fig)


def _place_labels(ax: Any, points: list[tuple[float, float, str]]) -> None:
    """Annotate each point at the first of four corners whose label start is at least
    a line away (in pixels) from every label placed before, so close points stay readable."""
    corners = ((6, 4, "left"), (6, -12, "left"), (-6, 4, "right"), (-6, -12, "right"))
    ax.figure.canvas.draw()  # settles the limits and layout that data -> pixels depends on
    placed: list[tuple[float, float]] = []
    for x, y, text in points:
        px, py = ax.transData.transform((x, y))
        free = [c for c in corners
                if all(abs(px + c[0] - qx) > 60 or abs(py + c[1] - qy) > 11 for qx, qy in placed)]
        dx, dy, align = (free or corners)[0]
        placed.append((px + dx, py + dy))
        ax.annotate(_literal(text), (x, y), textcoords="offset points", xytext=(dx, dy),
                    ha=align, fontsize="small")


def _figure() -> tuple[Figure, Any]:
    fig = Figure(figsize=_SIZE, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _title(model_name: str, threat: Mapping[str, Any]) -> str:
    return f"{_literal(model_name)} ({threat['norm']}, eps = {threat['eps']:g})"


def _literal(text: str) -> str:
    """Escape ``$`` so matplotlib shows names as written instead of parsing math."""
    return text.replace("$", r"\$")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
