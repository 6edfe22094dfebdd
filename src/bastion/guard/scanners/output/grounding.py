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
  only that it appear somewhere), a capitalised name absent from the context, and a
  negation flip (the claim says "not" where the closest clause of its closest context
  sentence does not, or the reverse, sharing at least ``negation_overlap`` of its
  content words with that sentence).

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
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from bastion.errors import ConfigError
from bastion.extras import missing
from bastion.guard.base import Finding, ScanContext, Scanner, Span
from bastion.guard.scanners.output import _grounding_checks as checks
from bastion.guard.sentences import sentences

#: unsupportedness of a sentence with a number, name or flipped negation the context lacks.
NUMBER_SCORE = 0.9
NAME_SCORE = 0.85
NEGATION_SCORE = 0.75
NUMBER_SCOPES: tuple[str, ...] = ("support", "context", "off")
#: unsupportedness gained per unit of support below ``min_support``.
SLOPE = 2.0
#: most answer sentences judged, and most context sentences read (the rest are dropped,
#: and the reason says so).
MAX_SENTENCES = 64
MAX_CONTEXT_SENTENCES = 1024
#: tokens read per sentence (MiniLM reads 256; longer sentences are cut).
MAX_TOKENS = 128
#: weight of shared content words when choosing a claim's closest context sentence.
RANK_LEXICAL = 0.5


@dataclass(frozen=True)
class SentenceSupport:
    """How well the context supports one answer sentence.

    Attributes:
        start, end: character offsets of the sentence in the answer.
        claim: False for questions and pleasantries, which are never flagged.
        similarity: best cosine similarity to a context sentence or pair, in [-1, 1].
        coverage: share of the sentence's content words found in the context, in [0, 1].
        missing_numbers: numbers of the sentence absent from the context.
        off_support_numbers: numbers of the sentence absent from its closest context
            sentence and pair (present elsewhere, perhaps, but not where the claim is).
        missing_names: capitalised names of the sentence absent from the context.
        negation_flip: the sentence and its closest context sentence disagree on negation.
        overlap: share of the sentence's content words in that closest context sentence.
        support: the closest context sentence or pair (the evidence for a reviewer).
    """

    start: int
    end: int
    claim: bool
    similarity: float = 1.0
    coverage: float = 1.0
    missing_numbers: tuple[str, ...] = ()
    off_support_numbers: tuple[str, ...] = ()
    missing_names: tuple[str, ...] = ()
    negation_flip: bool = False
    overlap: float = 0.0
    support: str = ""


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
                 coverage_weight: float = 0.75, negation_overlap: float = 0.3,
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
        judged = self.judge(text, documents)
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
        if (self.check_negation and judged.negation_flip
                and judged.overlap >= self.negation_overlap):
            out.append(("negation-flip", NEGATION_SCORE,
                        "negation differs from the closest context sentence"))
        return out

    # --- the evidence -----------------------------------------------------------------

    def judge(self, text: str, documents: Sequence[str]) -> list[SentenceSupport]:
        """Every sentence of ``text`` with its support in ``documents`` (see
        :class:`SentenceSupport`), in order. Questions and pleasantries come back with
        ``claim=False`` and are not embedded."""
        pieces = _pieces(text, MAX_SENTENCES)
        claims = [(a, b) for a, b in pieces if checks.has_claim(text[a:b])]
        if not claims:
            return [SentenceSupport(a, b, claim=False) for a, b in pieces]
        context = _Context(documents, cached=self.cache_size > 0)
        vectors = self._context_vectors(context.units)
        answer = embed([text[a:b] for a, b in claims], self.layers)
        sims = answer @ vectors.T  # (claims, units)
        pair_sims = _pair_similarities(answer, vectors, context.doc_of)
        out = {(a, b): _support(text, a, b, sims[row], pair_sims[row], context)
               for row, (a, b) in enumerate(claims)}
        return [out.get((a, b), SentenceSupport(a, b, claim=False)) for a, b in pieces]

    def _context_vectors(self, units: list[str]) -> np.ndarray:
        """Embeddings (len(units), 384) of context sentences, through the cache."""
        if self.cache_size <= 0:
            return embed(units, self.layers)
        with self._lock:
            todo = sorted({u for u in units if u not in self._cache})
        fresh = embed(todo, self.layers) if todo else np.zeros((0, 384), np.float32)
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
        return np.stack(rows) if rows else np.zeros((0, 384), np.float32)


@dataclass(frozen=True)
class _Document:
    """One context document, read once: its sentences, their words, its numbers."""

    units: tuple[str, ...]
    vocabularies: tuple[frozenset[str], ...]
    vocabulary: frozenset[str]
    numbers: frozenset[str]


@lru_cache(maxsize=256)
def _read(document: str) -> _Document:
    """Split and index ``document`` (cached: retrieved passages come back often)."""
    units = tuple(_sentence_texts(document))
    return _Document(units, tuple(frozenset(checks.vocabulary(u)) for u in units),
                     frozenset(checks.vocabulary(document)),
                     frozenset(checks.numbers(document)))


class _Context:
    """All context documents of one scan: their sentences (at most
    :data:`MAX_CONTEXT_SENTENCES`), the document of each, and their words and numbers."""

    def __init__(self, documents: Sequence[str], cached: bool = True) -> None:
        reader = _read if cached else _read.__wrapped__
        read = [reader(d) for d in documents]
        self.units: list[str] = []
        self.doc_of: list[int] = []
        vocabularies: list[frozenset[str]] = []
        for i, doc in enumerate(read):
            self.units.extend(doc.units)
            self.doc_of.extend([i] * len(doc.units))
            vocabularies.extend(doc.vocabularies)
        del self.units[MAX_CONTEXT_SENTENCES:], self.doc_of[MAX_CONTEXT_SENTENCES:]
        self.unit_vocabulary = vocabularies[:MAX_CONTEXT_SENTENCES]
        self.pair_vocabulary = [self.unit_vocabulary[i] | self.unit_vocabulary[i + 1]
                                for i in range(len(self.units) - 1)]
        self.vocabulary: frozenset[str] = frozenset().union(*(d.vocabulary for d in read))
        self.numbers: frozenset[str] = frozenset().union(*(d.numbers for d in read))


def _support(text: str, start: int, end: int, sims: np.ndarray, pair_sims: np.ndarray,
             context: _Context) -> SentenceSupport:
    """One claim ``text[start:end]`` against the context, given its cosine similarities
    to the context sentences (units,) and neighbouring pairs (units - 1,).

    The closest context sentence (and pair) is chosen by similarity plus
    :data:`RANK_LEXICAL` times the share of the claim's content words it holds: with few
    MiniLM layers, similarity alone sometimes prefers a sentence on the same topic over
    the one that states the claim."""
    sentence = text[start:end]
    words = checks.content_words(sentence)

    def share(vocabulary: frozenset[str]) -> float:
        return len(words & vocabulary) / len(words) if words else 0.0

    shares = np.array([share(v) for v in context.unit_vocabulary])
    best = int(np.argmax(sims + RANK_LEXICAL * shares))
    similarity = float(sims.max())
    evidence = context.units[best]
    if pair_sims.size:
        pair_shares = np.array([share(v) for v in context.pair_vocabulary])
        pair = int(np.argmax(pair_sims + RANK_LEXICAL * pair_shares))
        similarity = max(similarity, float(pair_sims.max()))
        ranked_pair = pair_sims[pair] + RANK_LEXICAL * pair_shares[pair]
        if ranked_pair > sims[best] + RANK_LEXICAL * shares[best]:
            evidence = f"{context.units[pair]} {context.units[pair + 1]}"
    mentioned = checks.numbers(sentence)
    return SentenceSupport(
        start, end, claim=True, similarity=similarity, coverage=share(context.vocabulary),
        missing_numbers=tuple(sorted(mentioned - context.numbers)),
        off_support_numbers=tuple(sorted(
            mentioned - checks.numbers(f"{context.units[best]} {evidence}"))),
        missing_names=tuple(checks.missing_names(sentence, context.vocabulary)),
        negation_flip=checks.negated(sentence) != checks.negated(
            checks.closest_clause(sentence, context.units[best])),
        overlap=float(shares[best]), support=evidence)


def _pieces(text: str, limit: int, min_words: int = 1) -> list[tuple[int, int]]:
    """Sentence spans of ``text`` (whitespace trimmed); the whole text when it is one.
    Short sentences stand alone (``min_words`` 1): "Safe travels!" joined to the claim
    before it would hide a pleasantry inside a claim."""
    spans = sentences(text, min_words=min_words, max_pieces=limit) or [(0, len(text))]
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out


def _sentence_texts(document: str) -> list[str]:
    """The sentences of one context document, as strings."""
    return [document[a:b] for a, b in _pieces(document, MAX_CONTEXT_SENTENCES)]


def _pair_similarities(answer: np.ndarray, context: np.ndarray,
                       doc_of: Sequence[int]) -> np.ndarray:
    """Cosine similarities (claims, pairs) of the answer sentences to each two
    neighbouring context sentences of one document, a pair embedded as the normalised
    mean of its two sentences' embeddings (no second pass through the network)."""
    keep = [i for i in range(len(context) - 1) if doc_of[i] == doc_of[i + 1]]
    if not keep:
        return np.zeros((len(answer), 0), np.float32)
    pairs = np.full((len(context) - 1, context.shape[1]), 0.0, np.float32)
    idx = np.array(keep)
    pairs[idx] = context[idx] + context[idx + 1]
    pairs /= np.maximum(np.linalg.norm(pairs, axis=1, keepdims=True), 1e-6)
    sims = answer @ pairs.T
    mask = np.ones(len(context) - 1, bool)
    mask[idx] = False
    sims[:, mask] = -1.0  # pairs across two documents support nothing
    return sims


@lru_cache(maxsize=2)
def _encoder(layers: int) -> Any:
    """MiniLM's embeddings and first ``layers`` layers (0: none), in eval mode, loaded
    once per process."""
    try:
        import torch  # noqa: F401  (the loader below needs it; fail with the extra's name)

        from bastion.guard.scanners.input import minilm
    except ModuleNotFoundError as exc:
        raise missing(exc, "the grounding scanner", "guard-models") from exc
    encoder = minilm.base_encoder(max(1, layers))
    encoder.encoder.layer = encoder.encoder.layer[:layers]  # 0: the embedding layer alone
    return encoder.eval()


def embed(texts: Sequence[str], layers: int, batch_size: int = 32) -> np.ndarray:
    """Unit-length sentence embeddings (len(texts), 384), float32: the mean of MiniLM's
    token states after its first ``layers`` layers (all-MiniLM-L6-v2's pooling when
    ``layers`` is 6). Texts are batched by length, so little padding is computed."""
    import torch

    from bastion.guard.scanners.input import minilm

    out = np.zeros((len(texts), minilm.HIDDEN), np.float32)
    if not texts:
        return out
    encoder = _encoder(layers)
    tok = minilm.tokenizer()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.inference_mode():
        for at in range(0, len(order), batch_size):
            rows = order[at:at + batch_size]
            enc = tok([texts[i] for i in rows], padding=True, truncation=True,
                      max_length=MAX_TOKENS, return_tensors="pt")
            states = minilm.encode(encoder, enc["input_ids"], enc["attention_mask"])
            mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[rows] = pooled.numpy()
    return out
