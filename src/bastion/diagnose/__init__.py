"""Diagnostics: is a robust accuracy real, or are gradients masked and attacks weak?

``bastion.diagnose.diagnose(model, data, threat)`` runs nine checks and returns a
:class:`Diagnosis`; ``bastion diagnose`` is its command line (docs/diagnose.md).
"""

from __future__ import annotations

from bastion.diagnose.api import CHECKS, Diagnosis, diagnose

__all__ = ["CHECKS", "Diagnosis", "diagnose"]
