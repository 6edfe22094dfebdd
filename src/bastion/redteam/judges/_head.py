"""The judges' small logistic heads: weights fitted on the judge set's dev split by
``bench/redteam_judge_fit.py`` and shipped in ``data/judge_heads.json``.

Each head is ``{"features": [names], "weights": [w], "bias": b, "threshold": t}``; the
score of a feature dict ``x`` is ``sigmoid(b + sum(w_i * x[name_i]))`` in (0, 1).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from bastion.errors import InputError

HEADS = Path(__file__).resolve().parents[1] / "data" / "judge_heads.json"


@lru_cache(maxsize=4)
def head(name: str) -> dict[str, Any]:
    """The head of judge ``name``; :class:`InputError` when the file lacks it."""
    heads = json.loads(HEADS.read_text(encoding="utf-8"))
    if name not in heads:
        raise InputError(f"{HEADS.name} has no head for {name!r}; "
                         "refit with bench/redteam_judge_fit.py")
    return dict(heads[name])


def score(name: str, x: dict[str, float]) -> float:
    """``sigmoid(bias + weights . x)`` for judge ``name``'s head, in (0, 1)."""
    h = head(name)
    z = h["bias"] + sum(w * x[f] for f, w in zip(h["features"], h["weights"], strict=True))
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def threshold(name: str) -> float:
    """The score at which judge ``name`` hits (0.5 unless the head says otherwise)."""
    return float(head(name).get("threshold", 0.5))
