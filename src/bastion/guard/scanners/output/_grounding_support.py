"""What the grounding scanner knows about one answer sentence: its closest context
sentences by MiniLM similarity and shared words, and the numbers, names and negations
they disagree on (:class:`SentenceSupport`). The scanner (:mod:`.grounding`) turns this
evidence into scores; the embedding (:func:`embed`) reads MiniLM through the guard's own
loader, :mod:`bastion.guard.scanners.input.minilm`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from bastion.extras import missing
from bastion.guard.scanners.output import _grounding_checks as checks
from bastion.guard.scanners.output._grounding_arithmetic import derived
from bastion.guard.scanners.output._grounding_dates import dated
from bastion.guard.scanners.output._grounding_negation import negation_flip
from bastion.guard.scanners.output._grounding_numbers import another, converted, unit_changed
from bastion.guard.sentences import sentences, trimmed

#: most answer sentences judged apart (the rest join the last), and most context
#: sentences read (the rest are ignored).
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
        swapped_names: names of the sentence found in the context but not in its closest
            context sentence and pair, which name something else instead.
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
    swapped_names: tuple[str, ...] = ()
    negation_flip: bool = False
    overlap: float = 0.0
    support: str = ""


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
    vocabularies = tuple(frozenset(checks.vocabulary(u)) for u in units)
    # the sentences cover the document's words: their union is its vocabulary
    return _Document(units, vocabularies, frozenset().union(*vocabularies),
                     frozenset(checks.numbers(document)))


class Context:
    """All context documents of one scan: their sentences (at most
    :data:`MAX_CONTEXT_SENTENCES`), the document of each, and their words and numbers."""

    def __init__(self, documents: Sequence[str], cached: bool = True,
                 question: str = "") -> None:
        reader = _read if cached else _read.__wrapped__
        #: what the user's own message states (their figures, names): given, not claimed
        self.question = question
        self.given_numbers: frozenset[str] = checks.numbers(question) if question \
            else frozenset()
        self.given_vocabulary: frozenset[str] = frozenset(checks.vocabulary(question))
        read = [reader(d) for d in documents]
        self.units: list[str] = []
        self.doc_of: list[int] = []
        vocabularies: list[frozenset[str]] = []
        for i, doc in enumerate(read):
            self.units.extend(doc.units)
            self.doc_of.extend([i] * len(doc.units))
            vocabularies.extend(doc.vocabularies)
        del self.units[MAX_CONTEXT_SENTENCES:], self.doc_of[MAX_CONTEXT_SENTENCES:]
        where: dict[str, list[int]] = {}
        for i, unit_words in enumerate(vocabularies[:MAX_CONTEXT_SENTENCES]):
            for word in unit_words:
                where.setdefault(word, []).append(i)
        self._where = where
        self.vocabularies = vocabularies[:MAX_CONTEXT_SENTENCES]
        self.vocabulary: frozenset[str] = frozenset().union(*(d.vocabulary for d in read))
        self.numbers: frozenset[str] = frozenset().union(*(d.numbers for d in read))

    def shares(self, words: AbstractSet[str]) -> tuple[np.ndarray, np.ndarray]:
        """The share of ``words`` each context sentence holds (units,) and each two
        neighbouring sentences hold together (units - 1,), in [0, 1]."""
        hits = np.zeros((max(1, len(words)), len(self.units)), bool)
        for row, word in enumerate(words):
            found = self._where.get(word)
            if found:
                hits[row, found] = True
        scale = 1.0 / len(words) if words else 0.0
        return hits.sum(0) * scale, (hits[:, :-1] | hits[:, 1:]).sum(0) * scale


def support(text: str, start: int, end: int, sims: np.ndarray, pair_sims: np.ndarray,
             context: Context) -> SentenceSupport:
    """One claim ``text[start:end]`` against the context, given its cosine similarities
    to the context sentences (units,) and neighbouring pairs (units - 1,).

    The closest context sentence (and pair) is chosen by similarity plus
    :data:`RANK_LEXICAL` times the share of the claim's content words it holds: with few
    MiniLM layers, similarity alone sometimes prefers a sentence on the same topic over
    the one that states the claim."""
    sentence = text[start:end]
    words = checks.content_words(sentence)

    shares, pair_shares = context.shares(words)
    best = int(np.argmax(sims + RANK_LEXICAL * shares))
    similarity = float(sims.max())
    evidence = context.units[best]
    near = [best]
    if pair_sims.size:
        pair = int(np.argmax(pair_sims + RANK_LEXICAL * pair_shares))
        similarity = max(similarity, float(pair_sims.max()))
        ranked_pair = pair_sims[pair] + RANK_LEXICAL * pair_shares[pair]
        if ranked_pair > sims[best] + RANK_LEXICAL * shares[best]:
            evidence = f"{context.units[pair]} {context.units[pair + 1]}"
            near += [pair, pair + 1]
    # numbers the user stated are given, and may be worked with ("37% is below 40%")
    mentioned = checks.numbers(sentence) - context.given_numbers - another(sentence)
    nearby = f"{context.units[best]} {evidence}"
    worked_out = derived(sentence, f"{nearby} {context.question}", context.numbers) \
        if mentioned else frozenset()
    # a date worked out from a stated one ("14 days" after "5 March": "19 March")
    days, months = dated(sentence, f"{nearby} {context.question}")
    worked_out |= days
    coverage = len(words & context.vocabulary) / len(words) if words else 0.0
    missing = checks.missing_names(
        sentence, context.vocabulary | context.given_vocabulary | months)
    return SentenceSupport(
        start, end, claim=True, similarity=similarity, coverage=coverage,
        missing_numbers=tuple(sorted(mentioned - context.numbers - worked_out)),
        off_support_numbers=tuple(sorted(
            (mentioned - checks.numbers(nearby) - converted(sentence, nearby) - worked_out)
            | unit_changed(sentence, nearby))),
        missing_names=tuple(missing),
        swapped_names=() if missing else tuple(checks.swapped_names(
            sentence, [context.units[i] for i in near],
            frozenset().union(*(context.vocabularies[i] for i in near)) | months)),
        # a flip against the closest sentence that the closest pair (when it ranks
        # higher) does not confirm: the pair may hold the clause that agrees
        negation_flip=negation_flip(sentence, context.units[best])
        and (evidence == context.units[best] or negation_flip(sentence, evidence)),
        overlap=float(shares[best]), support=evidence)


def sentence_spans(text: str, limit: int, min_words: int = 1) -> list[tuple[int, int]]:
    """Sentence spans of ``text`` (whitespace trimmed); the whole text when it is one.
    Short sentences stand alone (``min_words`` 1): "Safe travels!" joined to the claim
    before it would hide a pleasantry inside a claim. Cut at full stops only: answers and
    passages are punctuated, and a capitalised function word inside one is a word ("fixed
    until 31 May"), not a sentence start."""
    spans = (sentences(text, min_words=min_words, max_pieces=limit, run_on=False)
             or [(0, len(text))])
    joined: list[tuple[int, int]] = []
    for a, b in spans:  # "approx. 5 kg": an abbreviation's full stop ends no sentence
        if joined and _ABBREVIATED.search(text, 0, joined[-1][1]) and _GOES_ON.match(
                text[a:b].lstrip()):
            a = joined.pop()[0]
        joined.append((a, b))
    return [span for a, b in joined if (span := trimmed(text, a, b))]


#: an abbreviation's full stop at the end of a piece, and the lower-case word or digit
#: that carries the sentence on after it
_ABBREVIATED = re.compile(r"\b(?:approx|e\.g|i\.e|incl|excl|vs|cf|ca|esp|est|no|nos|"
                          r"max|min|avg|tel)\.\s*$", re.IGNORECASE)
_GOES_ON = re.compile(r"[a-z0-9£$€]")


def _sentence_texts(document: str) -> list[str]:
    """The sentences of one context document, as strings."""
    return [document[a:b] for a, b in sentence_spans(document, MAX_CONTEXT_SENTENCES)]


def pair_similarities(answer: np.ndarray, context: np.ndarray,
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
        import torch

        from bastion.guard.scanners.input import minilm
    except ModuleNotFoundError as exc:
        raise missing(exc, "the grounding scanner", "guard-models") from exc
    encoder = minilm.base_encoder(max(1, layers))
    encoder.encoder.layer = encoder.encoder.layer[:layers]  # 0: the embedding layer alone
    with torch.no_grad():
        for param in encoder.parameters():
            # weights loaded from a memory-mapped file can be paged out under memory
            # pressure and read back from disk on a later scan (tens of ms): keep a copy
            param.data = param.data.clone()
    return encoder.eval()


@lru_cache(maxsize=1)
def _tokenizer() -> Any:
    """A private copy of MiniLM's Rust tokenizer that truncates at :data:`MAX_TOKENS` and
    does not pad: called directly it is several times faster than through the
    transformers wrapper, which resets padding and truncation on every call."""
    from tokenizers import Tokenizer

    from bastion.guard.scanners.input import minilm

    tok = Tokenizer.from_str(minilm.tokenizer().backend_tokenizer.to_str())
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    return tok


def _batch(texts: list[str]) -> tuple[Any, Any]:
    """Token ids and attention mask (len(texts), longest), int64 tensors, right-padded
    with 0 (MiniLM's padding id)."""
    import torch

    encodings = _tokenizer().encode_batch(texts)
    ids = np.zeros((len(texts), max(len(e.ids) for e in encodings)), np.int64)
    mask = np.zeros_like(ids)
    for row, e in enumerate(encodings):
        ids[row, :len(e.ids)] = e.ids
        mask[row, :len(e.ids)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


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
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.inference_mode():
        for at in range(0, len(order), batch_size):
            rows = order[at:at + batch_size]
            ids, attention = _batch([texts[i] for i in rows])
            states = minilm.encode(encoder, ids, attention)
            mask = attention.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[rows] = pooled.numpy()
    return out
