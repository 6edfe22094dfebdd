"""The card's ``out_of_distribution`` section (docs/card.md), an optional entry section::

    {"id": "mnist", "tpr": 0.95, "attacked_set": "fashion-mnist",
     "detectors": {"energy": {
         "threshold": float,
         "sets": {"fashion-mnist": {"auroc", "auroc_ci", "aupr", "fpr95", "fpr95_ci",
                                     "n_id", "n_ood"}, ...},
         "adaptive": [{"eps", "norm", "auroc", "auroc_ci", "fpr95", "fpr95_ci",
                       "id_rejected", "id_rejected_ci", "masking_suspected", "n_id",
                       "n_ood", "steps"}, ...]}}}

Rates are fractions in [0, 1]; ``fpr95`` is the fraction of OOD inputs accepted at the
threshold that accepts 95% of clean ID inputs; under attack the threshold stays the
clean one. The entry's ``evaluation`` is PGD on the classifier itself on the attacked ID
images, so the card shows both what the model does and what its detectors catch.
"""

from __future__ import annotations

from typing import Any


def ood_section(result: dict[str, Any], *, id_name: str) -> dict[str, Any]:
    """The section from :func:`bastion.ood.evaluate.evaluate_ood`'s result."""
    detectors = {}
    attacked = None
    for name, det in result["detectors"].items():
        rows: list[dict[str, Any]] = []
        for set_name, adaptive in det["adaptive"].items():
            attacked, rows = set_name, adaptive
        detectors[name] = {"threshold": det["threshold"], "sets": det["sets"],
                           "adaptive": rows}
    return {"id": id_name, "tpr": 0.95, "attacked_set": attacked, "detectors": detectors}
