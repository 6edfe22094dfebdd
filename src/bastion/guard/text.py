"""Text helpers the classifier layers share: token windows and decoded payloads.

A long prompt is read in overlapping windows of MiniLM tokens, so that an injection at
its end is read as closely as one at its start; base64 and hex runs that decode to text
are read decoded. Sentences are cut by :mod:`bastion.guard.sentences`.

    spans = token_windows(text, 128, 64)     # [(start, end), ...] character spans
    for start, end, kind, decoded in payload_pieces(text, 16): ...
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from bastion.errors import ConfigError
from bastion.guard.artifacts import minilm_tokenizer
from bastion.guard.codecs import decode_b64, decode_hex, runs

#: MiniLM's maximum sequence length, special tokens included.
MODEL_MAX_TOKENS = 256
#: most decoded characters read per payload.
MAX_DECODED_CHARS = 2000


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


def token_offsets(text: str) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of every MiniLM token of ``text`` (no specials)."""
    enc = minilm_tokenizer()(text, add_special_tokens=False, return_offsets_mapping=True,
                             truncation=False, verbose=False)
    return [(int(s), int(e)) for s, e in enc["offset_mapping"] if e > s]


def windows(text: str, offsets: Sequence[tuple[int, int]], window: int,
            stride: int) -> list[tuple[int, int]]:
    """Character spans of overlapping windows of ``window`` tokens, ``stride`` tokens apart.

    ``offsets`` are the tokens' character spans, in order. Together the windows cover
    every token (the last window ends at the last token); text with no more tokens than
    ``window`` gives one window over the whole text.
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


def whole_words(text: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` shrunk to whole words: a window cut inside a word begins or ends
    with a fragment ("ded nets."), which a network may read as anything. Kept as is
    where the span has no whitespace to snap to."""
    if start > 0 and not text[start - 1].isspace():
        cut = next((i + 1 for i in range(start, end) if text[i].isspace()), None)
        start = cut if cut is not None and cut < end else start
    if end < len(text) and not text[end].isspace():
        cut = next((i for i in range(end - 1, start, -1) if text[i].isspace()), None)
        end = cut if cut is not None else end
    return start, end


def token_windows(text: str, window: int, stride: int) -> list[tuple[int, int]]:
    """Character spans of windows of ``window`` tokens, ``stride`` apart, covering every
    token of ``text`` (one span over the whole text when it is short), each shrunk to
    whole words (consecutive windows overlap by ``window - stride`` tokens, so a word
    dropped from one window's edge is read whole in its neighbour)."""
    return [whole_words(text, s, e)
            for s, e in windows(text, token_offsets(text), window, stride)]


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
