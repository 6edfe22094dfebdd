"""Diagnostics: is a robust accuracy real, or are gradients masked and attacks weak?

``bastion.diagnose(model, data, threat)`` (this package's :func:`diagnose`) runs nine
checks and returns a :class:`Diagnosis`; ``bastion diagnose`` is its command line
(docs/diagnose.md).
"""

from __future__ import annotations

from bastion.diagnostics.api import CHECKS, Diagnosis, diagnose

__all__ = ["CHECKS", "Diagnosis", "diagnose"]
