"""Grounding: the answer's sentences that its context documents do not support.

For a retrieval-augmented answer, pass the retrieved passages as ``documents``
(``Guard.scan_output(answer, documents=[...])``). Each answer sentence that makes a
claim (not a question or a pleasantry) is checked against the context two ways:

* **meaning**: its best cosine similarity to a context sentence, or to two neighbouring
  context sentences read together, in all-MiniLM-L6-v2's space (the guard's own MiniLM
  loader, :mod:`bastion.guard.scanners.input.minilm`; mean pooled after its first
  ``layers`` layers), plus the share of its content words found anywhere in the context.
  A low sum, ``similarity + coverage_weight * coverage < min_support``, marks an
  invented or unrelated claim. The default reads MiniLM's token embeddings alone
  (``layers=0``): on the grounding set's dev split 1, 2, 3, 4 and 6 layers flagged no
  more planted errors, at a slightly higher false flag rate, for far more time.
* **symbols**, which embeddings read past: a number or date absent from the claim's
  closest context sentence and pair (``number_scope="support"``; ``"context"`` asks
  only that it appear somewhere), a capitalised name absent from the context or swapped
  for the one its closest context sentences name, and a negation flip (a clause of the
  claim says "not", or a common opposite, where the closest clause of its closest
  context sentence does not, or the reverse, sharing at least ``negation_overlap`` of
  its content words with that sentence; :mod:`._grounding_negation`).

Questions, pleasantries and asides to the reader on what the context never mentions
("Wrap up warm!") make no claim and are not judged.

Each sentence gets an unsupportedness in [0, 1] (0.5 at the ``min_support`` boundary,
:data:`NUMBER_SCORE`, :data:`NAME_SCORE` or :data:`NEGATION_SCORE` for a symbolic miss,
the highest of these); the answer's score is its worst sentence's, and every sentence at
or above ``threshold`` becomes a span. Without documents the scanner cannot judge: score
0 and a reason that says so.

Context sentences are embedded once and kept (``cache_size`` of them, least recently
used dropped), so a context seen before costs only the answer's sentences.

Example::

    >>> scanner = Grounding()
    >>> scanner.scan("Refunds take 30 days.", ScanContext(direction="output",
    ...              documents=("Refunds take 5 to 7 business days.",))).spans
    (Span(start=0, end=21, label='unsupported-number'),)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from bastion.errors import ConfigError
from bastion.guard.base import Finding, ScanContext, Scanner, Span
from bastion.guard.scanners.output import _grounding_checks as checks
from bastion.guard.scanners.output._grounding_support import (
    MAX_SENTENCES,
    Context,
    SentenceSupport,
    embed,
    pair_similarities,
    sentence_spans,
    support,
)

__all__ = ["Grounding", "SentenceSupport"]

#: unsupportedness of a sentence with a number, name or flipped negation the context lacks.
NUMBER_SCORE = 0.9
NAME_SCORE = 0.85
NEGATION_SCORE = 0.75
NUMBER_SCOPES: tuple[str, ...] = ("support", "context", "off")
#: unsupportedness gained per unit of support below ``min_support``.
SLOPE = 2.0


class Grounding(Scanner):
    """Flag answer sentences that the context documents do not support.

    Args:
        name, threshold, action: see :class:`~bastion.guard.base.Scanner`.
        min_support: a claim whose ``similarity + coverage_weight * coverage`` falls
            below this is unsupported (chosen on the grounding set's dev split).
        coverage_weight: weight of the content-word coverage in that sum.
        negation_overlap: a negation flip counts only when the sentence shares at least
            this share of its content words with its closest context sentence.
        number_scope: where a claim's numbers must appear: ``"support"`` (its closest
            context sentence or pair), ``"context"`` (anywhere in the documents) or
            ``"off"`` (numbers unchecked).
        check_names, check_negation: turn the other symbolic checks on or off.
        layers: MiniLM transformer layers read (0-6): fewer is faster and coarser; 0
            pools MiniLM's position-aware token embeddings without any layer.
        cache_size: context sentence embeddings kept between calls (0: none, and the
            documents' sentence splits and word indexes are not kept either).

    Spans: each unsupported sentence, labelled ``unsupported-number``,
    ``unsupported-name``, ``negation-flip`` or ``unsupported`` (weak support).
    """

    kind: ClassVar[str] = "grounding"
    direction: ClassVar[str] = "output"

    def __init__(self, *, name: str | None = None, threshold: float = 0.5,
                 action: str = "flag", min_support: float = 1.02,
                 coverage_weight: float = 1.0, negation_overlap: float = 0.3,
                 number_scope: str = "support", check_names: bool = True,
                 check_negation: bool = True, layers: int = 0,
                 cache_size: int = 4096) -> None:
        self._init_common(name, threshold, action)
        self.min_support = min_support
        self.coverage_weight = coverage_weight
        self.negation_overlap = negation_overlap
        self.number_scope = number_scope
        self.check_names = check_names
        self.check_negation = check_negation
        self.layers = layers
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def validate(self) -> None:
        super().validate()
        for key in ("min_support", "coverage_weight", "negation_overlap"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{self.name}: {key} must be a number, got {value!r}")
        if not 0.0 <= self.negation_overlap <= 1.0:
            raise ConfigError(f"{self.name}: negation_overlap must be in [0, 1], got "
                              f"{self.negation_overlap!r}")
        if self.number_scope not in NUMBER_SCOPES:
            raise ConfigError(f"{self.name}: number_scope must be one of "
                              f"{', '.join(NUMBER_SCOPES)}, got {self.number_scope!r}")
        for key in ("check_names", "check_negation"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{self.name}: {key} must be true or false, got "
                                  f"{getattr(self, key)!r}")
        if isinstance(self.layers, bool) or self.layers not in range(7):
            raise ConfigError(f"{self.name}: layers must be an integer 0..6 (MiniLM has "
                              f"six; 0 reads its token embeddings alone), got "
                              f"{self.layers!r}")
        if (isinstance(self.cache_size, bool) or not isinstance(self.cache_size, int)
                or self.cache_size < 0):
            raise ConfigError(f"{self.name}: cache_size must be an integer >= 0, got "
                              f"{self.cache_size!r}")

    # --- the scan ---------------------------------------------------------------------

    def _scan(self, text: str, context: ScanContext) -> Finding:
        documents = [d for d in context.documents if isinstance(d, str) and d.strip()]
        if not documents:
            return Finding(score=0.0, reason="no context documents given: cannot judge "
                                             "grounding")
        judged = self.judge(text, documents, question=context.prompt or "")
        claims = [j for j in judged if j.claim]
        if not claims:
            return Finding(score=0.0, reason="no claim to check (no sentence states a fact)")
        scored = [(self.unsupportedness(j), j) for j in claims]
        worst = max(s for s, _ in scored)
        flagged = [(s, j) for s, j in scored if s >= self.threshold and s > 0.0]
        spans = tuple(Span(j.start, j.end, self.label(j)) for _, j in flagged)
        if not flagged:
            return Finding(score=worst, reason=f"all {len(claims)} claim(s) supported by the "
                                               f"context (worst {worst:.2f})")
        problems = "; ".join(self.problems(j) for _, j in flagged[:3])
        more = f"; and {len(flagged) - 3} more" if len(flagged) > 3 else ""
        return Finding(score=worst, spans=spans,
                       reason=f"{len(flagged)} of {len(claims)} claim(s) unsupported by the "
                              f"context: {problems}{more}")

    def unsupportedness(self, judged: SentenceSupport) -> float:
        """Score in [0, 1] of one judged sentence (0 for a sentence with no claim)."""
        if not judged.claim:
            return 0.0
        support = judged.similarity + self.coverage_weight * judged.coverage
        score = min(1.0, max(0.0, 0.5 + (self.min_support - support) * SLOPE))
        return max([score, *(weight for _, weight, _ in self._misses(judged))])

    def label(self, judged: SentenceSupport) -> str:
        """The span label of a flagged sentence: its strongest reason."""
        misses = self._misses(judged)
        return misses[0][0] if misses else "unsupported"

    def problems(self, judged: SentenceSupport) -> str:
        """What is wrong with one sentence, for the reason line."""
        found = [what for _, _, what in self._misses(judged)]
        if not found:
            found.append(f"weak support (similarity {judged.similarity:.2f}, "
                         f"{judged.coverage:.0%} of its words in context)")
        return f"sentence at {judged.start}: " + ", ".join(found)

    def _misses(self, judged: SentenceSupport) -> list[tuple[str, float, str]]:
        """The symbolic checks a claim fails, strongest first: (span label, score, what)."""
        out = []
        lacking = {"context": judged.missing_numbers, "support": judged.off_support_numbers,
                   "off": ()}[self.number_scope]
        if lacking:
            where = "context" if self.number_scope == "context" else "supporting sentence"
            out.append(("unsupported-number", NUMBER_SCORE,
                        f"number(s) {', '.join(lacking)} not in the {where}"))
        if self.check_names and judged.missing_names:
            out.append(("unsupported-name", NAME_SCORE,
                        f"name(s) {', '.join(judged.missing_names)} not in context"))
        elif self.check_names and judged.swapped_names:
            out.append(("unsupported-name", NAME_SCORE,
                        f"name(s) {', '.join(judged.swapped_names)} not in the supporting "
                        "sentence, which names another"))
        if (self.check_negation and judged.negation_flip
                and judged.overlap >= self.negation_overlap):
            out.append(("negation-flip", NEGATION_SCORE,
                        "negation differs from the closest context sentence"))
        return out

    # --- the evidence -----------------------------------------------------------------

    def judge(self, text: str, documents: Sequence[str],
              question: str = "") -> list[SentenceSupport]:
        """Every sentence of ``text`` with its support in ``documents`` (see
        :class:`SentenceSupport`), in order. Questions, pleasantries and asides to the
        reader come back with ``claim=False`` and are not embedded. ``question``, the
        user's message, states facts of its own (their figures and names): a number or
        name it holds is given, not invented, and may be worked with."""
        pieces = sentence_spans(text, MAX_SENTENCES)
        claims = [(a, b) for a, b in pieces if checks.has_claim(text[a:b])]
        context = (Context(documents, cached=self.cache_size > 0, question=question)
                   if claims else None)
        if context is not None:  # asides to the reader on what the context never mentions
            claims = [(a, b) for a, b in claims
                      if not checks.reader_aside(text[a:b], context.vocabulary)]
        if not claims or context is None:
            return [SentenceSupport(a, b, claim=False) for a, b in pieces]
        vectors, answer = self._vectors(context.units, [text[a:b] for a, b in claims])
        sims = answer @ vectors.T  # (claims, units)
        pair_sims = pair_similarities(answer, vectors, context.doc_of)
        out = {(a, b): support(text, a, b, sims[row], pair_sims[row], context)
               for row, (a, b) in enumerate(claims)}
        return [out.get((a, b), SentenceSupport(a, b, claim=False)) for a, b in pieces]

    def _vectors(self, units: list[str], claims: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (len(units), 384) of context sentences, through the cache, and
        (len(claims), 384) of the answer's claims, encoded in one pass (one set of
        batches costs less than two)."""
        if self.cache_size <= 0:
            both = embed([*units, *claims], self.layers)
            return both[:len(units)], both[len(units):]
        with self._lock:
            todo = sorted({u for u in units if u not in self._cache})
        encoded = embed([*todo, *claims], self.layers)
        fresh, answer = encoded[:len(todo)], encoded[len(todo):]
        with self._lock:
            for unit, vec in zip(todo, fresh, strict=True):
                self._cache[unit] = vec
            rows = []
            for unit in units:
                vec = self._cache.get(unit)
                if vec is None:  # dropped by a concurrent call: recompute below
                    vec = embed([unit], self.layers)[0]
                self._cache[unit] = vec
                self._cache.move_to_end(unit)
                rows.append(vec)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return (np.stack(rows) if rows else np.zeros((0, 384), np.float32)), answer
