"""Leaks: the canary token or long stretches of the system prompt in an answer.

Two checks, the higher score wins:

- **canary**: ``context.canary`` (a secret planted in the system prompt) appears in the
  answer: as is; after folding case and width (NFKC) and dropping whitespace, zero-width
  characters and punctuation (``c a n a r y``, ``CANARY``, ``c-a-n-a-r-y``); or hex or
  base64 encoded. Any sighting scores 1.0.
- **system prompt**: the answer repeats ``min_words`` or more consecutive words of
  ``system_prompt`` (compared as case-folded words, punctuation ignored). The score grows
  with the share of the system prompt that leaked: 0.75 for a bare ``min_words`` run, up
  to 1.0 for all of it. The system prompt is the scanner's own (``system_prompt=``) or,
  when it has none, the one a caller passes per request as
  ``context.metadata["system_prompt"]`` (one guard for many applications: the red team's
  guarded target does this).

Example::

    >>> ctx = ScanContext(direction="output", canary="c4n4ry-7f3a")
    >>> Leak().scan("Sure: C4N4RY 7F3A", ctx).score
    1.0
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from typing import ClassVar

from bastion.errors import ConfigError
from bastion.guard.base import Finding, ScanContext, Scanner, Span

# Invisible characters that split a token without showing: zero-width space and joiners,
# word joiner, BOM, soft hyphen, Mongolian vowel separator.
_INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e")
# Python's re here: \w+ cannot backtrack, and re2's per-match overhead from Python is
# several times higher, which counts with one match per word.
_WORD = re.compile(r"\w+")
# Folded or encoded forms shorter than this match too much by chance to be evidence.
_MIN_FOLDED = 6
_MIN_ENCODED = 8
#: the ScanContext metadata key that carries a per-request system prompt.
SYSTEM_PROMPT_KEY = "system_prompt"


def fold(text: str, letters_only: bool = True) -> tuple[str, list[int]]:
    """A comparable form of ``text`` and, per character, the index in ``text`` it came from.

    With ``letters_only`` the form keeps only letters and digits, NFKC- and case-folded
    (``"C-4 n\u200b4ry"`` gives ``"c4n4ry"``); without it, only whitespace and invisible
    characters are removed (base64 needs its case and ``+/=``). The index list maps a
    match in the folded text back to a span of the original.
    """
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if ch.isspace() or ch in _INVISIBLE:
            continue
        if letters_only:
            ch = (ch if ch.isascii() else unicodedata.normalize("NFKC", ch)).casefold()
            ch = "".join(c for c in ch if c.isalnum())
        out.append(ch)
        origin.extend([i] * len(ch))
    return "".join(out), origin


def encoded_forms(secret: str) -> set[str]:
    """Base64 of ``secret``, standard and URL-safe, at the three byte alignments.

    Inside a longer base64 blob the secret may start at any byte offset, which changes
    its encoding; for each offset only the characters the secret alone determines are
    kept, so a match anywhere in a blob is found.
    """
    raw = secret.encode("utf-8")
    forms = set()
    for offset in range(3):
        full = base64.b64encode(b"\0" * offset + raw).decode("ascii")
        total = offset + len(raw)
        determined = total // 3 * 4 + (total % 3 * 8) // 6
        piece = full[(0, 2, 3)[offset]:determined]
        forms.update({piece, piece.translate(str.maketrans("+/", "-_"))})
    return {f for f in forms if len(f) >= _MIN_ENCODED}


def _find_all(haystack: str, needle: str) -> list[int]:
    found, start = [], haystack.find(needle)
    while start != -1:
        found.append(start)
        start = haystack.find(needle, start + 1)
    return found


def canary_spans(text: str, canary: str) -> list[Span]:
    """Where the canary shows in ``text``: plain, folded, hex or base64 (label ``"canary"``)."""
    spans = {(at, at + len(canary)) for at in _find_all(text, canary)}
    folded, origin = fold(text)
    needles = [fold(canary)[0], binascii.hexlify(canary.encode("utf-8")).decode("ascii")]
    for needle in needles:
        if len(needle) >= _MIN_FOLDED:
            spans.update((origin[at], origin[at + len(needle) - 1] + 1)
                         for at in _find_all(folded, needle))
    compact, where = fold(text, letters_only=False)
    for form in encoded_forms(canary):
        spans.update((where[at], where[at + len(form) - 1] + 1)
                     for at in _find_all(compact, form))
    return [Span(s, e, "canary") for s, e in sorted(spans)]


def overlap_runs(text: str, reference: str, n: int) -> tuple[list[tuple[int, int]], int, int]:
    """Runs of ``n`` or more consecutive words of ``text`` that also occur in ``reference``.

    Returns ``(spans, leaked, total)``: character spans in ``text`` of the merged runs,
    how many distinct reference word positions they cover, and the reference's length in
    words. Words are ``\\w+`` runs, case-folded.
    """
    ref_words = [w.casefold() for w in _WORD.findall(reference)]
    n = min(n, len(ref_words))
    if n < 3:  # a one- or two-word system prompt is not worth reporting
        return [], 0, len(ref_words)
    grams: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(ref_words) - n + 1):
        grams.setdefault(tuple(ref_words[i:i + n]), []).append(i)
    matches = list(_WORD.finditer(text))
    words = [m.group().casefold() for m in matches]
    covered_words = bytearray(len(words))
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - n + 1):
        gram = tuple(words[i:i + n])
        if gram in grams:
            covered_words[i:i + n] = b"\x01" * n
            seen.add(gram)
    covered_ref = bytearray(len(ref_words))
    for gram in seen:  # once per distinct n-gram: repeats in the answer cost nothing more
        for j in grams[gram]:
            covered_ref[j:j + n] = b"\x01" * n
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(words):
        if covered_words[i]:
            j = i
            while j + 1 < len(words) and covered_words[j + 1]:
                j += 1
            spans.append((matches[i].start(), matches[j].end()))
            i = j + 1
        else:
            i += 1
    return spans, sum(covered_ref), len(ref_words)


class Leak(Scanner):
    """Detect the canary token or the system prompt in a model's answer.

    Args:
        system_prompt: the application's system prompt, or ``None`` to use the one in
            ``context.metadata["system_prompt"]`` (when given) or check the canary only.
        min_words: consecutive words shared with the system prompt that count as a leak
            (a system prompt shorter than this leaks only when repeated whole; one of
            fewer than 3 words is not checked).
        name, threshold, action: see :class:`~bastion.guard.base.Scanner`.

    Spans are labelled ``"canary"`` or ``"system_prompt"``.
    """

    kind: ClassVar[str] = "leak"
    direction: ClassVar[str] = "output"

    def __init__(self, *, system_prompt: str | None = None, min_words: int = 8,
                 name: str | None = None, threshold: float = 0.5,
                 action: str = "block") -> None:
        self._init_common(name, threshold, action)
        self.system_prompt = system_prompt
        self.min_words = min_words

    def validate(self) -> None:
        super().validate()
        words = self.min_words
        if isinstance(words, bool) or not isinstance(words, int) or words < 3:
            raise ConfigError(f"{self.name}: min_words must be an integer of 3 or more "
                              f"(shorter runs repeat by chance), got {self.min_words!r}")

    def _scan(self, text: str, context: ScanContext) -> Finding:
        score, reasons, spans = 0.0, [], []
        if context.canary:
            found = canary_spans(text, context.canary)
            if found:
                score = 1.0
                spans.extend(found)
                reasons.append(f"canary token seen {len(found)} time(s)")
        system_prompt = self.system_prompt or context.metadata.get(SYSTEM_PROMPT_KEY)
        if isinstance(system_prompt, str) and system_prompt:
            runs, leaked, total = overlap_runs(text, system_prompt, int(self.min_words))
            if runs:
                score = max(score, 0.75 + 0.25 * leaked / total)
                spans.extend(Span(s, e, "system_prompt") for s, e in runs)
                reasons.append(f"{leaked} of {total} system-prompt words repeated")
        if not reasons:
            return Finding(score=0.0, reason="no canary or system-prompt text found")
        return Finding(score=score, reason="; ".join(reasons),
                       spans=tuple(sorted(spans, key=lambda s: (s.start, s.end))))
