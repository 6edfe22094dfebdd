"""The ``bastion ood`` plot: each detector's AUROC (%) against the attack's eps.

eps = 0 is the clean AUROC; the other points are under the adaptive attack. A dotted
line at 50% marks chance: a detector at or below it no longer tells ID from OOD.
Drawn on matplotlib's Agg canvas (no pyplot, no window).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def auroc_vs_eps(result: Mapping[str, Any], *, title: str) -> bytes:
    """PNG bytes of the plot for :func:`bastion.ood.evaluate.evaluate_ood`'s result."""
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    first = next(iter(result["settings"]["sets"]))
    for name, det in result["detectors"].items():
        # without an attack the curve is the single clean point of the first set
        attacked = det["adaptive"] or {first: []}
        for set_name, rows in attacked.items():
            xs = [0.0, *(r["eps"] for r in rows)]
            ys = [100 * det["sets"][set_name]["auroc"], *(100 * r["auroc"] for r in rows)]
            ax.plot(xs, ys, marker="o", label=name)
    ax.axhline(50, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("eps (attack radius, input units)")
    ax.set_ylabel("AUROC (%)")
    ax.set_ylim(0, 100.5)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
