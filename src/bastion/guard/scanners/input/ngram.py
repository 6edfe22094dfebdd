"""The n-gram member of the ``ensemble`` layer: a logistic-regression head on hashed
character and word n-gram TF-IDF (:mod:`.ngram_features`).

The head scores ``sigmoid(tfidf(text) @ ngram_coef + intercept)``. Its bundled weights
(``bastion/guard/data/ensemble_ngram_head.npz``) and their record
(``ensemble_ngram_head.json``: how they were trained, their threshold on S-Labs val)
are written by ``bastion guard train`` (:mod:`bastion.guard.training.ngram`). It is not
a layer of its own: :class:`~.ensemble.EnsembleScanner` mixes its logit with the
transformer's.

Long inputs are read whole (:func:`pieces`): the text is cut into overlapping windows
of 64 MiniLM tokens, 32 apart; a text of several sentences has each sentence read too;
base64 / hex runs that decode to text are read decoded; and a text of more than 12 words
is read in 12-word phrases, 6 apart. The score is the maximum over pieces and the span
is the piece that gave it. Pieces are short because TF-IDF averages over the text: an
injection of a few dozen tokens inside a long window of benign prose is diluted.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from bastion.errors import ConfigError
from bastion.guard.artifacts import bundled
from bastion.guard.base import Finding, Span
from bastion.guard.scanners.input.ngram_features import N_NGRAM_FEATURES, ngram_counts, tfidf
from bastion.guard.text import payload_pieces, token_offsets, windows

#: the bundled head, written by ``bastion guard train`` (its record sits beside it).
HEAD_FILE = "ensemble_ngram_head.npz"
META_FILE = "ensemble_ngram_head.json"
#: tokens per window and between window starts.
WINDOW_TOKENS = 64
STRIDE_TOKENS = 32
#: a sentence: text up to and including its run of ., ! or ?, or up to a line break.
_SENTENCE = re.compile(r"[^.!?\n]*[^\s.!?\n][^.!?\n]*[.!?]*")
#: most sentence and decoded-payload pieces read besides the windows.
MAX_EXTRA_PIECES = 64
#: short word windows ("phrases"): words each, and the most read per text.
PHRASE_WORDS = 12
MAX_PHRASES = 256
_WORD = re.compile(r"\S+")


def _phrases(text: str) -> list[tuple[int, int, str, str]]:
    """Windows of :data:`PHRASE_WORDS` words, half as many apart, of a longer text."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    if len(words) <= PHRASE_WORDS:
        return []
    step = PHRASE_WORDS // 2
    out = []
    for a in itertools.islice(range(0, len(words) - PHRASE_WORDS + step, step), MAX_PHRASES):
        b = min(a + PHRASE_WORDS, len(words)) - 1
        out.append((words[a][0], words[b][1], "phrase", text[words[a][0]:words[b][1]]))
    return out


def pieces(text: str) -> list[tuple[int, int, str, str]]:
    """What the head reads in ``text``: ``(start, end, label, piece_text)`` each.

    The token windows (label ``window``) cover the whole text. When the text holds more
    than one sentence, each sentence is read too (label ``sentence``): a short
    injection wrapped in benign sentences is diluted inside a window but stands alone
    as a sentence. Base64 and hex runs that decode to text are read decoded (labels
    ``base64``, ``hex``; the span is the encoded run). Sentences and payloads together
    are capped at :data:`MAX_EXTRA_PIECES`, the longest kept. Last come the 12-word
    phrases (label ``phrase``): an injection glued to benign sentences without a full
    stop stands nearly alone in one.
    """
    out = [(s, e, "window", text[s:e])
           for s, e in windows(text, token_offsets(text), WINDOW_TOKENS, STRIDE_TOKENS)]
    found = list(_SENTENCE.finditer(text))
    extra = ([(m.start(), m.end(), "sentence", m.group()) for m in found]
             if len(found) > 1 else [])
    extra += payload_pieces(text, MAX_EXTRA_PIECES)
    if len(extra) > MAX_EXTRA_PIECES:
        extra = sorted(extra, key=lambda p: p[0] - p[1])[:MAX_EXTRA_PIECES]
    return out + extra + _phrases(text)


@dataclass(frozen=True)
class Head:
    """A trained head: ``sigmoid(tfidf(ngrams) @ ngram_coef + intercept)``; ``ngram_coef``
    and ``idf`` hold ``N_NGRAM_FEATURES`` values each."""

    ngram_coef: np.ndarray
    idf: np.ndarray
    intercept: float

    def logits(self, texts: list[str]) -> np.ndarray:
        """Raw scores (before the sigmoid), shape ``(len(texts),)``, float64."""
        z = tfidf(ngram_counts(texts), self.idf) @ self.ngram_coef + self.intercept
        return np.asarray(z, dtype=np.float64).reshape(-1)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """``sigmoid(logits)``, shape ``(len(texts),)``; each text read as one piece."""
        return _sigmoid(self.logits(texts))


@lru_cache(maxsize=8)
def load_head(path: str) -> Head:
    """The head stored in an ``.npz``: ``ngram_coef`` and ``idf`` (``N_NGRAM_FEATURES``
    each) and ``intercept``. A ``coef`` array of embedding weights, if present, must be
    all zero: this head reads n-grams only."""
    try:
        with np.load(path) as data:
            intercept = float(np.asarray(data["intercept"]).reshape(-1)[0])
            ngram = np.asarray(data["ngram_coef"], dtype=np.float32).reshape(-1)
            idf = np.asarray(data["idf"], dtype=np.float32).reshape(-1)
            embedding = np.asarray(data["coef"]) if "coef" in data.files else np.zeros(1)
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"cannot read n-gram head {path}: {exc}; write one with "
                          "'bastion guard train --part ngram'") from None
    if ngram.shape != (N_NGRAM_FEATURES,) or idf.shape != (N_NGRAM_FEATURES,):
        raise ConfigError(f"n-gram head {path}: ngram_coef and idf must each hold "
                          f"{N_NGRAM_FEATURES} values")
    if np.any(embedding):
        raise ConfigError(f"n-gram head {path} weighs sentence embeddings; this layer reads "
                          "n-grams only: retrain it with 'bastion guard train --part ngram'")
    return Head(ngram, idf, intercept)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))


class NgramMember:
    """The ensemble's n-gram reader: the head's probability for a prompt, read in pieces.

    Args:
        weights: an ``.npz`` head; ``None`` for the bundled one (:data:`HEAD_FILE`).
    """

    def __init__(self, *, weights: str | None = None) -> None:
        self.weights = weights

    def head(self) -> Head:
        """The head's weights (loaded once per process and file)."""
        return load_head(str(bundled(HEAD_FILE)) if self.weights is None else self.weights)

    def find(self, text: str) -> Finding:
        """The highest probability over :func:`pieces` of ``text``, with its piece as
        the span (``0.0`` for blank text)."""
        if not text.strip():
            return Finding(0.0, "empty text")
        found = pieces(text)
        scores = self.head().probabilities([p[3] for p in found])
        best = int(np.argmax(scores))
        score = float(scores[best])
        start, end, label, _ = found[best]
        n_windows = sum(p[2] == "window" for p in found)
        where = "" if len(found) == 1 else (
            f" ({label} {best + 1} of {n_windows})" if label == "window" else f" ({label})")
        return Finding(score, f"injection classifier p={score:.3f}{where}",
                       spans=(Span(start, end, "classifier"),))
