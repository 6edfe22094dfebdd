"""Unicode clean-up before any other layer reads the text, with a report of what it hid.

Attackers hide instructions from people and from signature layers with characters that
render as nothing (zero-width spaces, the tag block U+E0000-U+E007F, "ASCII
smuggling"), that reorder what is shown (bidi overrides), or that only look like Latin
letters (Cyrillic "і" in "іgnore"). The sanitizer undoes all of this and returns the
clean text as ``sanitized``, so the layers after it see what the model would read.

Steps, in order: decode and drop tag characters (a tag run after U+1F3F4 that spells a
flag such as Scotland's is benign); decode and drop runs of variation selectors (bytes
smuggled after an emoji); drop bidi controls, zero-width and other invisible format
characters and C0/C1 controls; cap runs of combining marks at 30 (Unicode's stream-safe
limit, which also keeps NFKC linear); NFKC; strip combining marks left on ASCII letters
and look-alikes ("Zalgo"); fold curly quotes and dashes to ASCII; fold Cyrillic, Greek
and Armenian look-alikes inside words that also hold Latin letters (and in words made
only of look-alikes when the text is mostly Latin); collapse runs of spaces inside lines
and of blank lines, keeping indentation. Sanitizing twice gives the same text as once.

Scores per signal (combined as ``1 - prod(1 - s)``): tag characters 1.0, bidi overrides
0.95, variation-selector runs 0.9, invisible characters inside words 0.6, mixed-script
words 0.6, words made of look-alikes 0.5, styled letters (fullwidth, mathematical) 0.3,
combining marks stripped 0.3, bidi embeddings/isolates 0.3, control characters 0.1,
invisible characters elsewhere 0.05; NFKC of ligatures, quotes and whitespace score 0.
With the default threshold 0.8 and action ``block``, normal text passes, any strong
smuggling signal blocks, and two medium ones together (a look-alike word split by a
zero-width space) block; single medium signals pass on, cleaned, to the next layers.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import unicodedata

from bastion.guard.base import Finding, ScanContext, Scanner, Span

_TAGS = "\U000e0000-\U000e007f"
_VS = "\ufe00-\ufe0f\U000e0100-\U000e01ef"
_BIDI_OVERRIDE = "\u202d\u202e"
_BIDI_EMBED = "\u202a-\u202c\u2066-\u2069"
_BIDI_MARK = "\u200e\u200f\u061c"
_INVISIBLE = ("\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200d\u2060-\u2064"
              "\u206a-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb\U0001bca0-\U0001bca3"
              "\U0001d173-\U0001d17a")
_CONTROLS = "\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f"
#: every character the sanitizer removes outright; none is left in its output.
REMOVED = re.compile(f"[{_TAGS}{_VS}{_BIDI_OVERRIDE}{_BIDI_EMBED}{_BIDI_MARK}{_INVISIBLE}"
                     f"{_CONTROLS}]")

_TAG_RUN = re.compile(f"[{_TAGS}]+")
_FLAG = re.compile("\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]{1,6}\U000e007f")
_VS_RUN = re.compile(f"[{_VS}]{{2,}}")
_LINE_BREAK = re.compile("\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
# whitespace: each pattern starts only after a non-space (or at a newline), so a long run
# is walked once, never once per position
_TRAILING = re.compile(r"(?<=\S)[^\S\n]+(?=\n|$)")
_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")
_INNER_RUN = re.compile(r"(?<=\S)(?:[^\S\n]{2,}|[^\S\n ])(?=\S)")
_WORD = re.compile(r"[^\W\d_]+")
_LATIN = re.compile("[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]")
_STYLED = re.compile("[\uff01-\uff5e\u2460-\u24ff\U0001d400-\U0001d7ff\U0001f100-\U0001f1ff]")
_PUNCT = str.maketrans("‘’‚‛′“”„‟″–—‒―−", "''''" "'" '""""' '"' "-----")

# Look-alikes of Latin letters, curated: (letters, the Latin letters they fold to).
_LOOKALIKES = [
    ("аеорсухіјѕһԁԛԝӏкАВЕКМНОРСТУХІЈЅԚԜҮӀ", "aeopcyxijshdqwlkABEKMHOPCTYXIJSQWYI"),  # Cyrillic
    ("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧοναικρυ", "ABEZHIKMNOPTYXovaikpu"),  # Greek
    ("օսհոց", "ouhng"),  # Armenian
    ("ɑɡɩ", "agi"),  # Latin letters outside Latin-1 and Extended-A/B that pass for ASCII
]
_FOLD = {ord(k): v for keys, values in _LOOKALIKES for k, v in zip(keys, values, strict=True)}
_CONFUSABLE = re.compile("[" + "".join(k for keys, _ in _LOOKALIKES for k in keys) + "]")
_LATINISH = "A-Za-z0-9" + "".join(k for keys, _ in _LOOKALIKES for k in keys)
# invisible characters between two Latin letters, digits or look-alikes: a split keyword
_IN_WORD = re.compile(f"(?<=[{_LATINISH}])[{_INVISIBLE}{_BIDI_MARK}]+(?=[{_LATINISH}])")
_RAW_WORD = re.compile(f"(?:[^\\W\\d_]|[{_INVISIBLE}{_BIDI_MARK}])+")


@functools.cache
def _mark_chars() -> tuple[str, ...]:
    """Combining marks (categories Mn and Me, and every non-starter), built on first use."""
    chars = [chr(c) for c in range(0x20000) if unicodedata.category(chr(c)) in ("Mn", "Me")
             or unicodedata.combining(chr(c))]
    chars.remove("\u034f")  # the grapheme joiner is removed as invisible
    return tuple(chars)


@functools.cache
def _marks(astral: bool) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(overlong runs of marks, marks on a Latin letter or look-alike).

    re checks a class of BMP characters with a table, but one that holds characters past
    U+FFFF range by range (~0.5 us a character here), so the astral marks join the class
    only for texts that have astral characters.
    """
    cls = "".join(re.escape(c) for c in _mark_chars() if astral or c < "\U00010000")
    return re.compile(f"([{cls}]{{30}})[{cls}]+"), re.compile(f"(?<=[{_LATINISH}])[{cls}]+")


@functools.cache
def _mark_table() -> dict[int, None]:
    return dict.fromkeys(map(ord, _mark_chars()))


def _has_marks(text: str) -> bool:
    """Whether ``text`` holds a combining mark (one pass of str.translate, fast in C)."""
    return not text.isascii() and len(text.translate(_mark_table())) != len(text)


def _mark_patterns(text: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    return _marks(max(text) >= "\U00010000")


def _fold_words(text: str) -> tuple[str, int, int]:
    """Fold look-alikes; returns (text, mixed-script words, all-look-alike words)."""
    if not _CONFUSABLE.search(text):
        return text, 0, 0
    counts = [0, 0]

    def mixed(m: re.Match[str]) -> str:
        word = m.group()
        if word.isascii() or not _CONFUSABLE.search(word) or not _LATIN.search(word):
            return word
        counts[0] += 1
        return word.translate(_FOLD)

    text = _WORD.sub(mixed, text)
    letters = sum(map(len, _WORD.findall(text)))
    latin, confusable = len(_LATIN.findall(text)), len(_CONFUSABLE.findall(text))
    if latin <= letters - latin - confusable:  # not mostly Latin: leave real words alone
        return text, counts[0], 0

    def lookalike(m: re.Match[str]) -> str:
        word = m.group()
        if len(word) < 2 or len(_CONFUSABLE.findall(word)) != len(word):
            return word
        counts[1] += 1
        return word.translate(_FOLD)

    return _WORD.sub(lookalike, text), counts[0], counts[1]


def _spans(text: str, most: int = 16) -> list[Span]:
    """Where the strong signals are in the received text, the first ``most`` of each kind."""
    flags = {m.end() - 1 for m in _FLAG.finditer(text)}
    tags = (m for m in _TAG_RUN.finditer(text) if m.end() - 1 not in flags)
    found = [("tag-characters", tags), ("variation-selectors", _VS_RUN.finditer(text)),
             ("bidi-override", re.finditer(f"[{_BIDI_OVERRIDE}]+", text)),
             ("invisible", _IN_WORD.finditer(text))]
    if _CONFUSABLE.search(text):
        found.append(("homoglyph", (m for m in _RAW_WORD.finditer(text)
                                    if _CONFUSABLE.search(m.group())
                                    and re.search("[A-Za-z]", m.group()))))
    spans = [Span(m.start(), m.end(), label) for label, matches in found
             for m in itertools.islice(matches, most)]
    return sorted(spans, key=lambda s: s.start)


def _vs_bytes(run: str) -> str:
    """Bytes hidden in variation selectors: VS1-16 are 0-15, VS17-256 are 16-255."""
    data = bytes(ord(c) - 0xFE00 if ord(c) < 0xFE10 else ord(c) - 0xE0100 + 16 for c in run)
    return data.decode("utf-8", errors="replace")


def _count(chars: set[str], text: str) -> int:
    """How many characters of ``text`` are in ``chars`` (one pass, however many chars)."""
    if not chars:
        return 0
    return len(re.findall("[" + "".join(map(re.escape, chars)) + "]", text))


def sanitize(text: str) -> tuple[str, dict[str, int], list[str]]:
    """Clean ``text``; returns (clean text, count of each kind of change, hidden texts)."""
    counts: dict[str, int] = {}
    hidden: list[str] = []
    text, counts["flag tags (benign)"] = _FLAG.subn(lambda m: m.group()[0], text)
    for m in _TAG_RUN.finditer(text):
        decoded = "".join(chr(ord(c) - 0xE0000) for c in m.group()
                          if "\U000e0020" <= c <= "\U000e007e")
        if decoded.strip():
            hidden.append(decoded)
    text, counts["tag characters"] = re.subn(f"[{_TAGS}]", "", text)
    runs = _VS_RUN.findall(text)
    hidden += [_vs_bytes(run) for run in runs]
    counts["variation-selector runs"] = len(runs)
    counts["bidi overrides"] = len(re.findall(f"[{_BIDI_OVERRIDE}]", text))
    counts["bidi embeddings/isolates"] = len(re.findall(f"[{_BIDI_EMBED}]", text))
    counts["invisible characters inside words"] = sum(map(len, _IN_WORD.findall(text)))
    counts["control characters"] = len(re.findall(f"[{_CONTROLS}]", text))
    text, removed = REMOVED.subn("", text)
    counts["invisible characters elsewhere"] = removed - sum(map(len, runs)) - sum(
        counts[k] for k in ("bidi overrides", "bidi embeddings/isolates", "control characters",
                            "invisible characters inside words"))
    if _has_marks(text):  # before NFKC, whose reordering is quadratic in a run's length
        text, counts["overlong mark runs"] = _mark_patterns(text)[0].subn(r"\1", text)
    if not unicodedata.is_normalized("NFKC", text):
        changed = {c for c in set(text) if unicodedata.normalize("NFKC", c) != c}
        counts["NFKC changes"] = _count(changed, text)
        counts["styled letters"] = _count({c for c in changed if _STYLED.match(c)}, text)
        text = unicodedata.normalize("NFKC", text)
    if _has_marks(text):  # NFKC may have made new marks (U+0344 is two)
        overlong, decorated = _mark_patterns(text)
        text, more = overlong.subn(r"\1", text)
        counts["overlong mark runs"] = counts.get("overlong mark runs", 0) + more
        text, counts["letters with marks stripped"] = decorated.subn("", text)
    text = text.translate(_PUNCT)
    text, counts["mixed-script words"], counts["look-alike words"] = _fold_words(text)
    text = unicodedata.normalize("NFKC", text)
    text = _LINE_BREAK.sub("\n", text)
    text, trailing = _TRAILING.subn("", text)
    text, inner = _INNER_RUN.subn(" ", text)
    blank = len([m for m in _BLANK_LINES.findall(text) if m != "\n\n"])
    text = _BLANK_LINES.sub("\n\n", text)
    stripped = text.strip()
    counts["whitespace runs"] = trailing + inner + blank + (stripped != text)
    return stripped, {k: v for k, v in counts.items() if v > 0}, hidden


_WEIGHTS = {"tag characters": 1.0, "bidi overrides": 0.95, "variation-selector runs": 0.9,
            "invisible characters inside words": 0.6, "mixed-script words": 0.6,
            "look-alike words": 0.5, "styled letters": 0.3, "letters with marks stripped": 0.3,
            "overlong mark runs": 0.3, "bidi embeddings/isolates": 0.3,
            "control characters": 0.1, "invisible characters elsewhere": 0.05}


class SanitizerScanner(Scanner):
    """Unicode clean-up (NFKC, invisible/tag/bidi characters, look-alikes, whitespace).

    Args:
        name: instance name (default ``"sanitizer"``).
        threshold: score at or above which ``action`` applies (default 0.8: strong
            smuggling signals such as tag characters or bidi overrides).
        action: default ``"block"``.

    ``sanitized`` is the clean text; the reason counts each change and quotes any text
    hidden in tag characters or variation selectors.
    """

    kind = "sanitizer"
    direction = "input"

    def __init__(self, *, name: str | None = None, threshold: float = 0.8,
                 action: str = "block") -> None:
        self._init_common(name, threshold, action)

    def _scan(self, text: str, context: ScanContext) -> Finding:
        clean, counts, hidden = sanitize(text)
        if not counts:
            return Finding(0.0, "no changes", sanitized=clean)
        score = 1.0 - math.prod(1.0 - _WEIGHTS.get(k, 0.0) for k in counts)
        parts = [f"{k}: {v}" for k, v in counts.items()]
        parts += [f"hidden text {h[:80]!r}" for h in hidden[:3]]
        return Finding(score, "; ".join(parts), sanitized=clean, spans=tuple(_spans(text)))
