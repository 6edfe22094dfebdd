"""The card's ``training_integrity`` section: what is known about how the model's
training data and weights could have been tampered with.

Every part is optional, so each command fills what it measured: ``bastion train``
(manifest status, a planted poison and its attack success), ``bastion poison scan``
(Neural Cleanse verdict, STRIP rates, attack success of known triggers) and
``bastion data audit`` (curation detector rates), see docs/poison.md.
"""

from __future__ import annotations

from typing import Any


def training_integrity(*, manifest: dict[str, Any] | None = None,
                       audit: dict[str, Any] | None = None,
                       neural_cleanse: dict[str, Any] | None = None,
                       strip: dict[str, Any] | None = None,
                       attack_success: dict[str, Any] | None = None) -> dict[str, Any]:
    """The section, with only the parts given.

    Args:
        manifest: ``{"path", "digest", "verified", "override", "problem"}``.
        audit: ``{detector: {"n_flagged", ["rates"]}}`` of :func:`bastion.poison.audit.audit`.
        neural_cleanse: ``{"backdoored", "flagged", "anomaly_index", "l1", "threshold"}``
            and, scanned with a reference model, ``"reference"`` (its rule's ratios,
            transfers and flags) and ``"index_flagged"`` (the index rule's own flags).
        strip: ``{"fpr": rate, "tpr": rate, "threshold"}``, rates as in
            :func:`bastion.poison.metrics.rate`.
        attack_success: ``{"trigger", "success", "n", "rate"}``.
    """
    parts = {"manifest": manifest, "audit": audit, "neural_cleanse": neural_cleanse,
             "strip": strip, "attack_success": attack_success}
    return {k: v for k, v in parts.items() if v is not None}
