"""MiniLM sentence vectors for the judges, and their closeness to written anchors.

The anchors (``data/judge_exemplars.json``) are short sentences written for bastion:
``insult`` (insults and threats, with and without swear words), ``harmless`` (neutral
talk, including innocent uses of words a profanity list flags), ``safety`` (safety
advice and lectures), ``harm`` (harmful help), ``nohelp`` (content-free outlines,
explainers, stories).
Linear probes fitted on them (:func:`probe`) ship in ``data/judge_heads.json``, and so
do *answer probes* (:func:`answer_probe`), fitted on the judge set's dev answers: they
read a whole answer (its vector, its sentences' and the request's) rather than one
sentence, so they learn what the written anchors do not cover.
Vectors come from all-MiniLM-L6-v2 read offline through the
guard's loader (:func:`bastion.guard.scanners.output._grounding_support.embed`), unit
length, shape ``(n, 384)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

EXEMPLARS = Path(__file__).resolve().parents[1] / "data" / "judge_exemplars.json"
#: MiniLM layers read: all six (all-MiniLM-L6-v2's own sentence embedding)
LAYERS = 6


def vectors(texts: Sequence[str]) -> np.ndarray:
    """Unit sentence vectors of ``texts``, ``(len(texts), 384)`` float32."""
    from bastion.guard.scanners.output._grounding_support import embed

    return embed(list(texts), LAYERS)


@lru_cache(maxsize=8)
def anchors(kind: str) -> np.ndarray:
    """Vectors of the ``kind`` anchors (``insult``, ``harmless`` or ``safety``), cached."""
    return vectors(json.loads(EXEMPLARS.read_text(encoding="utf-8"))[kind])


def closeness(vecs: np.ndarray, kind: str) -> np.ndarray:
    """Highest cosine similarity of each row of ``vecs`` to a ``kind`` anchor, ``(n,)``."""
    if len(vecs) == 0:
        return np.zeros(0, np.float32)
    return (vecs @ anchors(kind).T).max(axis=1)


def probe(vecs: np.ndarray, name: str) -> np.ndarray:
    """Probability of the linear probe ``name`` (a direction in MiniLM space fitted on
    the anchors, shipped in ``data/judge_heads.json``) for each row of ``vecs``, ``(n,)``."""
    from bastion.redteam.judges._head import head

    h = head(name)
    z = vecs @ np.asarray(h["direction"], np.float32) + float(h["bias"])
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))


def answer_probe(name: str, parts: Sequence[np.ndarray]) -> float:
    """Probability of the answer probe ``name`` on the concatenated vectors ``parts``
    (each ``(384,)``; which parts, and in what order, is the judge's: see its
    ``answer_parts``), in (0, 1)."""
    from bastion.redteam.judges._head import head

    h = head(name)
    z = float(np.concatenate(parts) @ np.asarray(h["direction"], np.float32)) + float(h["bias"])
    return float(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))))


def pooled(whole: np.ndarray, pieces: np.ndarray, request: np.ndarray) -> list[np.ndarray]:
    """The parts the ``toxicity`` and ``harmful`` answer probes read: the answer's vector,
    the element-wise maximum over its sentences' vectors (``pieces``, ``(n, 384)``) and
    the request's vector."""
    return [whole, pieces.max(axis=0) if len(pieces) else whole, request]
