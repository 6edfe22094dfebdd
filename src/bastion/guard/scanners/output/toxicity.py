"""Toxicity: the most profane sentence of an answer, scored by ``alt-profanity-check``.

The model is a TF-IDF + linear SVM (MIT, shipped inside the PyPI package, so it works
offline). It scores each sentence separately and the scanner takes the maximum: averaged
over a long polite answer, one insult would otherwise all but vanish.

Example::

    >>> Toxicity().scan("Happy to help. You are an idiot.").spans
    (Span(start=15, end=32, label='toxic'),)
"""

from __future__ import annotations

from typing import ClassVar

import re2

from bastion.guard.base import Finding, ScanContext, Scanner, Span
from bastion.guard.sentences import trimmed

# A sentence ends at ., ! or ? (runs of them too) or at a line break. Abbreviations
# ("e.g.") split a sentence in two, which only makes the pieces shorter, not safer.
_SENTENCE = re2.compile(r"[^.!?\n]*[.!?]+|[^.!?\n]+")


def sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each non-blank sentence, surrounding whitespace trimmed."""
    return [span for m in _SENTENCE.finditer(text) if (span := trimmed(text, *m.span()))]


class Toxicity(Scanner):
    """Flag insults, slurs and profanity, sentence by sentence.

    Args:
        name, threshold, action: see :class:`~bastion.guard.base.Scanner`. The default
            threshold 0.5 is the model's own decision boundary.

    Score: the highest sentence probability. Spans: every sentence at or above
    ``threshold``, labelled ``"toxic"``.
    """

    kind: ClassVar[str] = "toxicity"
    direction: ClassVar[str] = "both"

    def __init__(self, *, name: str | None = None, threshold: float = 0.5,
                 action: str = "block") -> None:
        self._init_common(name, threshold, action)

    def _scan(self, text: str, context: ScanContext) -> Finding:
        spans = sentences(text)
        if not spans:
            return Finding(score=0.0, reason="no text")
        # Imported here: loading the package unpickles its model (about a second).
        from profanity_check import predict_prob

        probs = [float(p) for p in predict_prob([text[s:e] for s, e in spans])]
        worst = max(probs)
        toxic = tuple(Span(s, e, "toxic") for (s, e), p in zip(spans, probs, strict=True)
                      if p >= self.threshold)
        if toxic:
            reason = (f"{len(toxic)} of {len(spans)} sentences toxic "
                      f"(highest probability {worst:.2f})")
        else:
            reason = f"no toxic sentence among {len(spans)} (highest probability {worst:.2f})"
        return Finding(score=worst, reason=reason, spans=toxic)
