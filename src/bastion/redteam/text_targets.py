"""Text classifiers to attack (:mod:`bastion.redteam.text_attack`), as batched scorers.

* ``toxicity``: the guard's toxicity layer (:mod:`bastion.guard.scanners.output.toxicity`):
  alt-profanity-check's probability for each sentence, the highest per text;
  threshold 0.5, the layer's default.
* ``injection``: the n-gram member of the guard's ``ensemble`` input layer
  (:mod:`bastion.guard.scanners.input.ngram`): its probability over the pieces of the
  prompt (windows, sentences, decoded payloads, 12-word phrases), the highest per text;
  threshold: the member's own, recorded with its bundled weights (FPR <= 1% on S-Labs
  val). The ensemble's transformer member is left out: at about a second per text on
  a CPU, an attack of hundreds of queries per text would take hours.
* ``module:callable``: any importable function ``texts -> scores``; give the threshold.

Each scorer takes a list of texts and scores them in one call to its model.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass

from bastion.errors import ConfigError
from bastion.redteam.base import Scorer


@dataclass(frozen=True)
class Target:
    """A scorer with its decision threshold (flagged at or above) and a name."""

    name: str
    scorer: Scorer
    threshold: float


def toxicity_scores(texts: Sequence[str]) -> list[float]:
    """The toxicity layer's score of each text: the highest alt-profanity-check
    probability over its sentences (0.0 for a text without any)."""
    from profanity_check import predict_prob

    from bastion.guard.scanners.output.toxicity import sentences

    spans = [sentences(t) for t in texts]
    flat = [t[s:e] for t, sp in zip(texts, spans, strict=True) for s, e in sp]
    probs = [float(p) for p in predict_prob(flat)] if flat else []
    out, k = [], 0
    for sp in spans:
        out.append(max(probs[k:k + len(sp)], default=0.0))
        k += len(sp)
    return out


def injection_scores(texts: Sequence[str]) -> list[float]:
    """The ensemble's n-gram member's score of each text (0.0 for blank text): the
    highest head probability over the text's pieces, every piece of every text scored
    in one call."""
    from bastion.guard.scanners.input.ngram import NgramMember, pieces

    head = NgramMember().head()
    found = [pieces(t) if t.strip() else [] for t in texts]
    flat = [p[3] for ps in found for p in ps]
    probs = [float(p) for p in head.probabilities(flat)] if flat else []
    out, k = [], 0
    for ps in found:
        out.append(max(probs[k:k + len(ps)], default=0.0))
        k += len(ps)
    return out


def injection_threshold() -> float:
    """The n-gram member's recorded threshold (FPR <= 1% on S-Labs val)."""
    from bastion.guard.artifacts import bundled, record_number
    from bastion.guard.scanners.input.ngram import META_FILE

    return record_number(bundled(META_FILE), "threshold", 0.5)


def load_target(spec: str, threshold: float | None = None) -> Target:
    """``"toxicity"``, ``"injection"`` or ``"module:callable"`` as a :class:`Target`;
    ``threshold`` overrides the built-in ones and is required for a callable."""
    if spec == "toxicity":
        return Target(spec, toxicity_scores, 0.5 if threshold is None else threshold)
    if spec == "injection":
        return Target(spec, injection_scores,
                      injection_threshold() if threshold is None else threshold)
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ConfigError(f"unknown target {spec!r}: give toxicity, injection or "
                          "module:callable (a function from a list of texts to scores)")
    if threshold is None:
        raise ConfigError(f"target {spec!r} needs a threshold (a text is flagged at or "
                          "above it)")
    try:
        func = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load target {spec!r}: {exc}") from None
    if not callable(func):
        raise ConfigError(f"target {spec!r} is not callable")
    return Target(spec, func, threshold)
