"""The fine-tuned transformer classifier: prompt injection and jailbreak detection with
MiniLM's first layers, adapted by bastion (:mod:`.minilm`).

Trained by ``bastion guard train --part transformer`` (:mod:`bastion.guard.training`) on
the training sources only; the bundled weights
(``bastion/guard/data/transformer_head.npz``) and their record, including the threshold
chosen on S-Labs val, sit in ``transformer_head.json``.

Long inputs are scanned whole: a text longer than ``window_tokens`` tokens is read in
windows of that many tokens, ``stride_tokens`` apart (the last ending at the text's last
token), each scored alone; base64 and hex runs that decode to text are scored decoded as
well. A prompt that fits one window is also read sentence by sentence, each sentence
alone with its quotations masked (:mod:`bastion.guard.sentences`), when the weights were
trained on lone benign sentences: one everyday sentence beside a short injection otherwise
outweighs it in the mean of the token states. All of a prompt's pieces are read in one
packed pass (:func:`.minilm.packed_logits`). The score is the sigmoid of the highest
logit, and the span is the piece that gave it.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from bastion.errors import ConfigError
from bastion.extras import missing
from bastion.guard import sentences as _sentences
from bastion.guard.artifacts import bundled, read_record, record_number
from bastion.guard.base import Finding, ScanContext, Scanner, Span
from bastion.guard.text import check_windows, payload_pieces, token_windows

if TYPE_CHECKING:  # the network needs torch; it is imported when a prompt is first read
    from bastion.guard.scanners.input.minilm import Network

WEIGHTS_FILE = "transformer_head.npz"
META_FILE = "transformer_head.json"
#: most decoded payloads of each kind (base64, hex) scored per text.
MAX_PAYLOADS = 16


def trained_on_sentences(weights: str | Path) -> bool:
    """Whether the weights' record says they were trained on lone benign sentences."""
    settings = read_record(weights).get("settings")
    count = settings.get("sentence_negatives", 0) if isinstance(settings, dict) else 0
    return isinstance(count, int) and count > 0


#: the threshold chosen for the bundled weights on S-Labs val and benign-dev (FPR <= 1%,
#: at most 3% flagged), else 0.5.
DEFAULT_THRESHOLD: float = record_number(bundled(WEIGHTS_FILE), "threshold", 0.5)


def pieces(text: str, window: int, stride: int, sentences: bool = True
           ) -> list[tuple[int, int, str, str]]:
    """``(start, end, label, piece)`` for every window (label ``window``), every sentence
    of a text that fits one window, read alone with its quotations masked (label
    ``sentence``; with ``sentences``, see :mod:`bastion.guard.sentences`), and every
    decoded base64 / hex payload (labels ``base64``, ``hex``; the span is the encoded
    run)."""
    spans = token_windows(text, window, stride)
    out = [(s, e, "window", text[s:e]) for s, e in spans]
    if sentences and len(spans) == 1:
        out += [(s, e, "sentence", _sentences.masked(text[s:e]))
                for s, e in _sentences.sentences(text)]
    return out + payload_pieces(text, MAX_PAYLOADS)


def _minilm() -> ModuleType:
    """:mod:`.minilm`, imported on first use: it needs torch (``bastion[guard-models]``)."""
    try:
        from bastion.guard.scanners.input import minilm
    except ModuleNotFoundError as exc:
        raise missing(exc, "the transformer layer", "guard-models") from exc
    return minilm


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))


class TransformerScanner(Scanner):
    """Score a prompt with the fine-tuned MiniLM injection classifier.

    Args:
        name, threshold, action: see :class:`~bastion.guard.base.Scanner`; the default
            threshold is the one chosen for the bundled weights (FPR <= 1% on S-Labs val,
            at most 3% of benign-dev flagged).
        weights: an ``.npz`` written by ``bastion guard train --part transformer``;
            ``None`` for the bundled one. Pass its JSON's threshold with it.
        window_tokens: tokens per window (at most 254: MiniLM reads 256 with specials).
        stride_tokens: tokens between window starts (at most ``window_tokens``).
        sentences: also read each sentence of a prompt that fits one window alone, so
            that benign sentences wrapped around an injection cannot dilute it (see
            :mod:`bastion.guard.sentences`). ``None``: as the weights were trained, on when their
            record's ``sentence_negatives`` is above 0 (weights trained without lone
            benign sentences read them as short probes: more false positives).
    """

    kind = "transformer"
    direction = "input"

    def __init__(self, *, name: str | None = None, threshold: float = DEFAULT_THRESHOLD,
                 action: str = "block", weights: str | None = None,
                 window_tokens: int = 128, stride_tokens: int = 64,
                 sentences: bool | None = None) -> None:
        self._init_common(name, threshold, action)
        self.weights = weights
        self.window_tokens = window_tokens
        self.stride_tokens = stride_tokens
        self.sentences = sentences

    def validate(self) -> None:
        super().validate()
        check_windows(self.name, self.window_tokens, self.stride_tokens)
        if self.sentences is not None and not isinstance(self.sentences, bool):
            raise ConfigError(f"{self.name}: sentences must be true, false or null (as "
                              f"the weights were trained), got {self.sentences!r}")
        self.network()

    def _weights_path(self) -> str:
        return str(bundled(WEIGHTS_FILE)) if self.weights is None else str(self.weights)

    def reads_sentences(self) -> bool:
        """Whether sentences are read alone: ``sentences``, or the weights' record."""
        if self.sentences is not None:
            return bool(self.sentences)
        return trained_on_sentences(self._weights_path())

    def network(self) -> Network:
        """The network (loaded once per process and weights file)."""
        return _minilm().load(self._weights_path())

    def score_texts(self, texts: list[str]) -> np.ndarray:
        """Probabilities of texts each read as one piece, cut after ``window_tokens``
        tokens (what a classifier without windows sees)."""
        return _sigmoid(_minilm().logits(self.network(), texts,
                                         max_tokens=self.window_tokens + 2))

    def _scan(self, text: str, context: ScanContext) -> Finding:
        if not text.strip():
            return Finding(0.0, "empty text")
        found = pieces(text, self.window_tokens, self.stride_tokens, self.reads_sentences())
        scores = _sigmoid(_minilm().packed_logits(self.network(), [p[3] for p in found]))
        best = int(np.argmax(scores))
        start, end, label, _ = found[best]
        n_same = sum(p[2] == label for p in found)
        rank = sum(p[2] == label for p in found[:best]) + 1
        where = "" if len(found) == 1 else (
            f" ({label} {rank} of {n_same})" if label in ("window", "sentence")
            else f" ({label})")
        score = float(scores[best])
        return Finding(score, f"transformer classifier p={score:.3f}{where}",
                       spans=(Span(start, end, "transformer"),))
