"""A cheap character-level pre-filter that finds spans which look like optimized gibberish.

Adversarial suffixes found by GCG-style search (Zou et al. 2023, arXiv:2307.15043) are
strings of vocabulary tokens chosen for their gradient, not their sense: lone brackets
and exclamation marks between words, words glued to symbols (``dois]=setAttribute^{+``),
case switching inside a word (``ISBNancouver``), pieces of several languages and
scripts. Prose has few such words in a row. The pre-filter gives each
whitespace-separated word an oddness in {0, 0.5, 1}, slides a window of ``window_words``
words over the text and marks every window whose mean oddness reaches ``density``.
Linear in the text; no model, no tokenizer.

It is a sieve, not a judge: it is tuned so that few benign prompts reach the language
model, and the language model decides (see :mod:`.perplexity`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

WORD = re.compile(r"\S+")
#: symbols that prose and code use alone between words ("a - b", "x = 1", "1 / 2", "&").
PLAIN_ALONE = frozenset("-–—=+*/&|:;,.'\"…•·%#>")
#: a lower-case letter followed by upper case, or an upper-case run glued to lower case.
CASE_SWITCH = re.compile(r"[a-z][A-Z]|[A-Z]{2}[a-z]{2}")
#: a letter, then a bracket or rare symbol, then a letter: symbols inside a word.
GLUED = re.compile(r"[^\W\d_][\[\]{}()^$`\\|~<>=!;]+[^\W\d_]")
#: a bracket or rare symbol right before a letter at the start of a word ("[essor", "{+").
LEADING = re.compile(r"^[\[{^$`\\|~]+[^\W\d_]")


@dataclass(frozen=True)
class Region:
    """Characters ``[start, end)`` the pre-filter marks, with the peak window's ``density``."""

    start: int
    end: int
    density: float


def _script(char: str) -> str:
    """The first word of a letter's Unicode name ("LATIN", "CYRILLIC", ...)."""
    try:
        return unicodedata.name(char).split(" ", 1)[0]
    except ValueError:
        return "?"


@lru_cache(maxsize=8192)
def word_oddness(word: str) -> float:
    """How much one whitespace-free word looks like search output: 0, 0.5 or 1.

    1: a lone rare symbol run (``[``, ``!``, ``[]``, ``$,``), symbols glued between
    letters, a bracket opening a word, or letters of two scripts in one word.
    0.5: a case switch inside the word (also common in code identifiers, so half).
    """
    if word.isascii() and word.isalpha() and word[1:].islower():
        return 0.0  # the common case, first: plain words ("the", "Paris")
    if not any(c.isalnum() for c in word):
        return 0.0 if all(c in PLAIN_ALONE for c in word) else 1.0
    if GLUED.search(word) or LEADING.search(word):
        return 1.0
    letters = [c for c in word if c.isalpha()]
    if len(letters) > 1 and not word.isascii() and len({_script(c) for c in letters}) > 1:
        return 1.0
    return 0.5 if CASE_SWITCH.search(word) else 0.0


def words(text: str) -> list[tuple[int, int, float]]:
    """``(start, end, oddness)`` of every whitespace-separated word, in order."""
    return [(m.start(), m.end(), word_oddness(m.group())) for m in WORD.finditer(text)]


def peak_density(text: str, *, window_words: int = 8) -> float:
    """The highest mean oddness over any ``window_words`` consecutive words (all if fewer)."""
    odd = [w[2] for w in words(text)]
    if not odd:
        return 0.0
    size = min(window_words, len(odd))
    total = sum(odd[:size])
    best = total
    for i in range(size, len(odd)):
        total += odd[i] - odd[i - size]
        best = max(best, total)
    return best / size


def suspicious_regions(text: str, *, window_words: int = 8,
                       density: float = 0.25) -> list[Region]:
    """Character regions covered by windows whose mean oddness is at least ``density``.

    Overlapping or touching windows merge into one region; a text of fewer than
    ``window_words`` words is one window. Returns regions in text order.
    """
    spans = words(text)
    if not spans:
        return []
    size = min(window_words, len(spans))
    regions: list[Region] = []
    total = sum(w[2] for w in spans[:size])
    for i in range(len(spans) - size + 1):
        if i:
            total += spans[i + size - 1][2] - spans[i - 1][2]
        mean = total / size
        if mean + 1e-9 < density:
            continue
        start, end = spans[i][0], spans[i + size - 1][1]
        if regions and start <= regions[-1].end + 1:
            last = regions[-1]
            regions[-1] = Region(last.start, max(last.end, end), max(last.density, mean))
        else:
            regions.append(Region(start, end, mean))
    return regions
