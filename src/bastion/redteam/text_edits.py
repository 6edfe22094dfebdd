"""Word edits for the text attacks (:mod:`bastion.redteam.text_attack`): character edits,
word swaps, the stopword list and the edit distance that bounds them.

Every edit function takes one word and a :class:`random.Random` and returns candidate
replacements in a fixed order for a fixed generator state, so an attack is repeatable.

* :func:`char_edits`: one edit of each kind a DeepWordBug-style attack uses (swap two
  neighbouring letters, substitute a letter, delete a letter, insert a letter) plus a
  homoglyph (a Latin letter replaced by the Cyrillic letter that looks the same). Edits
  land inside the word, not on its first or last letter, where they break the most
  character n-grams and where readers notice them least.
* :func:`synonym_edits`: WordNet synonyms of the word (:mod:`bastion.guard.synonyms`).
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass

#: words an attack never edits: function words carry little of a classifier's signal,
#: and editing them makes a text look broken without moving its score.
STOPWORDS: frozenset[str] = frozenset([
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any",
    "are", "as", "at", "be", "because", "been", "before", "being", "below", "between",
    "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during",
    "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her",
    "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into",
    "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor",
    "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours",
    "ourselves", "out", "over", "own", "same", "she", "should", "so", "some", "such",
    "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there",
    "these", "they", "this", "those", "through", "to", "too", "under", "until", "up",
    "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom",
    "why", "will", "with", "would", "you", "your", "yours", "yourself", "yourselves", "s",
    "t", "d", "ll", "m", "o", "re", "ve", "y", "isn", "aren", "wasn", "weren", "hasn",
    "haven", "hadn", "doesn", "don", "didn", "won", "wouldn", "shan", "shouldn", "can't",
    "couldn", "mustn", "mightn", "needn", "let", "us", "also", "may", "might", "must",
    "shall", "upon", "don't", "doesn't", "didn't", "isn't", "aren't", "wasn't", "weren't",
    "won't", "wouldn't", "shouldn't", "couldn't", "i'm", "it's", "you're", "i've", "we're",
    "they're", "that's", "let's",
])

#: Latin letters and the Cyrillic letters drawn the same in most fonts.
HOMOGLYPHS: dict[str, str] = {
    "a": "\u0430", "c": "\u0441", "e": "\u0435", "i": "\u0456", "j": "\u0458",
    "o": "\u043e", "p": "\u0440", "s": "\u0455", "x": "\u0445", "y": "\u0443",
    "A": "\u0410", "B": "\u0412", "C": "\u0421", "E": "\u0415", "H": "\u041d",
    "K": "\u041a", "M": "\u041c", "O": "\u041e", "P": "\u0420", "T": "\u0422",
    "X": "\u0425",
}

#: the kinds of character edit, in the order :func:`char_edits` tries them.
CHAR_EDITS: tuple[str, ...] = ("homoglyph", "insert", "swap", "substitute", "delete")

_LETTERS = string.ascii_lowercase
#: a word: letters, digits and inner apostrophes; everything else stays as it is.
WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")


def levenshtein(a: str, b: str) -> int:
    """Edits (insert, delete, substitute one character) that turn ``a`` into ``b``."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _inner(word: str, rng: random.Random) -> int:
    """A position inside ``word`` (not its first or last character when it has three or
    more), drawn by ``rng``."""
    if len(word) <= 2:
        return rng.randrange(len(word))
    return rng.randrange(1, len(word) - 1)


def _one_edit(word: str, kind: str, rng: random.Random) -> str | None:
    """``word`` with one edit of ``kind``; ``None`` when the word admits none."""
    if kind == "homoglyph":
        spots = [i for i, ch in enumerate(word) if ch in HOMOGLYPHS]
        inner = [i for i in spots if 0 < i < len(word) - 1] or spots
        if not inner:
            return None
        i = inner[rng.randrange(len(inner))]
        return word[:i] + HOMOGLYPHS[word[i]] + word[i + 1:]
    if kind == "insert":
        i = _inner(word, rng) + (len(word) > 1)
        return word[:i] + rng.choice(_LETTERS) + word[i:]
    if kind == "swap":
        if len(word) < 2:
            return None
        i = _inner(word[:-1], rng) if len(word) > 3 else 0
        if word[i] == word[i + 1]:
            return None
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == "substitute":
        i = _inner(word, rng)
        letter = rng.choice([c for c in _LETTERS if c != word[i].lower()])
        return word[:i] + letter + word[i + 1:]
    if kind == "delete":
        if len(word) < 3:
            return None
        i = _inner(word, rng)
        return word[:i] + word[i + 1:]
    raise ValueError(f"unknown character edit {kind!r}; choose from {', '.join(CHAR_EDITS)}")


def char_edits(word: str, rng: random.Random, *, kinds: tuple[str, ...] = CHAR_EDITS,
               max_distance: int = 2) -> list[str]:
    """One candidate per edit kind that applies to ``word``, in ``kinds`` order,
    without duplicates and within ``max_distance`` (Levenshtein) of the word."""
    out: list[str] = []
    for kind in kinds:
        new = _one_edit(word, kind, rng)
        if new is not None and new != word and new not in out \
                and levenshtein(word, new) <= max_distance:
            out.append(new)
    return out


def synonym_edits(word: str, rng: random.Random, *, limit: int = 8) -> list[str]:
    """Up to ``limit`` single-word WordNet synonyms of ``word``, most common sense first,
    in the word's case (capitalised stays capitalised). ``rng`` is unused: the order is
    WordNet's. Raises :class:`~bastion.errors.MissingDependencyError` without WordNet."""
    from bastion.guard.synonyms import synonyms

    del rng
    out: list[str] = []
    for syn in synonyms(word):
        if not syn.isascii() or not syn.isalpha() or syn.lower() == word.lower():
            continue
        new = syn.capitalize() if word[:1].isupper() else syn.lower()
        if new not in out:
            out.append(new)
        if len(out) >= limit:
            break
    return out


@dataclass(frozen=True)
class Recipe:
    """An attack recipe: which edits, and how words are ranked.

    Attributes:
        name: the registry key.
        level: ``"char"`` or ``"word"``.
        ranking: ``"edit"`` (score each word with its first candidate applied) or
            ``"delete"`` (score the text with the word removed).
        description: one line for listings.
        max_fraction: default share of the words that may be edited.
        max_distance: Levenshtein budget per edited word (character recipes).
        kinds: the character edits tried, in order (character recipes).
        source: where word recipes find substitutes: ``"wordnet"`` (synonyms) or
            ``"glove"`` (embedding neighbours, :mod:`bastion.redteam.text_glove`).
    """

    name: str
    level: str
    ranking: str
    description: str
    max_fraction: float = 0.5
    max_distance: int = 2
    kinds: tuple[str, ...] = CHAR_EDITS
    source: str = "wordnet"

    def edits(self, word: str, rng: random.Random) -> list[str]:
        """Candidate replacements for ``word``."""
        if self.level == "char":
            return char_edits(word, rng, kinds=self.kinds, max_distance=self.max_distance)
        if self.source == "glove":
            from bastion.redteam.text_glove import neighbours

            return neighbours(word)
        return synonym_edits(word, rng)


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("charbug", "char", "edit", "character edits; words ranked by their own edit "
           "(fewest queries)"),
    # homoglyphs are undone by a Unicode-folding front end such as the guard's sanitizer
    Recipe("charbug-ascii", "char", "edit", "charbug without homoglyphs (ASCII edits "
           "only)", kinds=tuple(k for k in CHAR_EDITS if k != "homoglyph")),
    Recipe("deepwordbug", "char", "delete", "character edits; words ranked by deletion, "
           "every edit kind tried (DeepWordBug)"),
    Recipe("synonym", "word", "delete", "WordNet synonym swaps; words ranked by deletion"),
    Recipe("glove", "word", "delete", "GloVe neighbour swaps (looser than synonyms); "
           "words ranked by deletion", source="glove"),
)}
