"""A keyword scorer importable as ``module:callable`` for the text-attack command test."""

from __future__ import annotations

import re
from collections.abc import Sequence


def score(texts: Sequence[str]) -> list[float]:
    """Risk 1 for a text containing "bomb", else 0."""
    return [1.0 if re.search(r"\bbomb\b", t) else 0.0 for t in texts]
