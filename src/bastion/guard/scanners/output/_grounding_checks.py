"""Symbolic checks of the grounding scanner: what sentence embeddings read past.

Two sentences that differ only in a number ("30 days" / "60 days"), a name ("Frankfurt
and Dublin" / "Frankfurt and Paris") or a "not" sit close together in MiniLM's space, so
the scanner checks these by hand:

* :func:`numbers`: digits (``1,200``, ``4.95``, ``1953``) and number words (``four``,
  ``twenty``, ``dozen``), normalised so ``four`` matches ``4`` and ``2,200`` ``2200``;
* :func:`names`: capitalised words inside a sentence (its first word only when the next
  one is capitalised too, since every sentence starts with a capital), compared without
  case, so a name the context spells in lower case still counts as present;
* :func:`negated`: whether a sentence holds an odd number of negation words;
* :func:`content_words` and :func:`has_claim`: the words that carry meaning, and whether
  a sentence claims anything at all ("Let me know if you have questions" does not).

Everything here is plain Python on short strings: microseconds per sentence.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet

#: function words and very common verbs; what is left of a sentence carries its meaning.
_STOP_WORDS = (
    "a an the and or but if then so of to in on at by for with from as about into over "
    "after before while when where why how what which who whom whose this that these "
    "those there here it its he she we you they me my your his her our their them us him "
    "i is are was were be been being am do does did done have has had having can could "
    "will would should may might must shall also just only very too more most much many "
    "some any each every all both either other another such than up down out off again "
    "once same own per via via etc get gets got make makes made use used uses using one "
    "can't cannot don't doesn't didn't won't isn't aren't wasn't weren't not no never")
STOP_WORDS: frozenset[str] = frozenset(_STOP_WORDS.split())

#: words that negate a clause; a sentence and its support should agree on whether one is
#: there. ("without" is left out: "without a contract" states a fact, it flips nothing.)
NEGATIONS: frozenset[str] = frozenset(
    ["not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "cannot"])

_NUMBER_WORDS: dict[str, str] = {
    "zero": "0", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16",
    "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30",
    "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80",
    "ninety": "90", "hundred": "100", "thousand": "1000", "dozen": "12", "twice": "2",
    "double": "2", "triple": "3", "second": "2", "third": "3",
    "fourth": "4", "fifth": "5", "sixth": "6", "seventh": "7", "eighth": "8",
    "ninth": "9", "tenth": "10", "half": "0.5", "quarter": "0.25"}
# "one" and "first" are left out on purpose: "one" is a pronoun as often as a number
# ("one of them"), "first" an order as often as a count ("its first voyage").
# Ordinals count as their number: "the fourth floor" against "the second floor" is a
# changed number; "one sixth" and "a sixth" agree.

#: digits not glued to letters before them (model names such as "AX3000" are names).
_DIGITS = re.compile(r"(?<![A-Za-z\d.,])\d[\d,]*(?:\.\d+)?")
_WORDS = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*|\d+")
_CAPITALISED = re.compile(r"(?<![A-Za-z])[A-Z][A-Za-z'\u2019-]*")
#: where a sentence divides into clauses that may differ in negation ("... has two ports,
#: but no HDMI port"; "... has no atmosphere and its gravity is ...").
_CLAUSE = re.compile(r";|,?\s+(?:but|while|whereas|although|though)\s+|,?\s+and\s+(?="
                     r"(?:its|it|the|their|they|he|she|we|you|this|that|there)\b)",
                     re.IGNORECASE)

#: openings of sentences that make no claim: thanks, greetings, offers of more help.
_NO_CLAIM = re.compile(
    r"^(?:thanks?(?: you)?(?: so much| very much)?(?: for\b|[!.,]|$)|thank you\b|"
    r"(?:i |we )?hope (?:this|that|it|you)\b|(?:please )?let (?:me|us) know\b|"
    r"feel free\b|happy to help|glad (?:to|i could) help|(?:is there )?anything else\b|"
    r"(?:have a|enjoy your|enjoy the|good luck|best of luck|safe travels|happy \w+ing)\b|"
    r"(?:we |i )?look forward\b|you'?re welcome|great question|good question|"
    r"(?:hello|hi|hey|dear)\b|(?:sure|certainly|of course|absolutely)[!.,]|"
    r"(?:i'?m|i am) (?:happy|glad) to\b|enjoy[!.]?$)", re.IGNORECASE)


def _stem(word: str) -> str:
    """A crude English stem, the same on both sides: enough for "members"/"member"."""
    word = word.lower().replace("\u2019", "'")
    if word.endswith("'s"):
        word = word[:-2]
    for suffix in ("ies", "ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def words(text: str) -> list[str]:
    """Lower-cased word and digit tokens of ``text``."""
    return [w.lower().replace("\u2019", "'") for w in _WORDS.findall(text)]


def vocabulary(text: str) -> set[str]:
    """Every word of ``text`` lower-cased, stemmed and hyphen parts apart (for lookups)."""
    out: set[str] = set()
    for w in words(text):
        out.add(w)
        out.add(_stem(w))
        out.update(p for p in w.split("-") if p)
    return out


def content_words(text: str) -> set[str]:
    """Stems of the words of ``text`` that carry meaning (no function words, no digits,
    at least three letters)."""
    return {_stem(w) for w in words(text)
            if w not in STOP_WORDS and len(w) >= 3 and not w[0].isdigit()}


def has_claim(sentence: str) -> bool:
    """Whether ``sentence`` claims something a context could support: not a question,
    not a pleasantry (:data:`_NO_CLAIM`), and at least one content word."""
    stripped = sentence.strip().strip("\"'")
    if not stripped or stripped.endswith("?"):
        return False
    if _NO_CLAIM.search(stripped):
        return False
    return bool(content_words(stripped))


def numbers(text: str) -> set[str]:
    """Numbers in ``text``, normalised: ``"1,200"`` -> ``"1200"``, ``"4.50"`` -> ``"4.5"``,
    ``"four"`` -> ``"4"``."""
    found = set()
    for raw in _DIGITS.findall(text):
        value = raw.replace(",", "")
        if "." in value:
            value = value.rstrip("0").rstrip(".")
        found.add(value.lstrip("0") or "0")
    for w in words(text):
        for part in w.split("-"):  # "five-year", "twenty-four"
            if part in _NUMBER_WORDS:
                found.add(_NUMBER_WORDS[part])
    return found


def names(sentence: str) -> set[str]:
    """Capitalised words of ``sentence`` as written (possessive ``'s`` dropped), except
    ``I`` and the first word when the second is not capitalised as well."""
    found = []
    for m in _CAPITALISED.finditer(sentence):
        word = m.group(0).replace("\u2019", "'")
        if word.endswith("'s"):
            word = word[:-2]
        word = word.rstrip("'-")
        if word and word != "I":
            found.append((m.start(), word))
    if not found:
        return set()
    first_at = len(sentence) - len(sentence.lstrip(" \"'([*-"))
    # the opening word is capitalised anyway; keep it only inside a run of names
    if found[0][0] == first_at and (len(found) < 2
                                    or not _adjacent(sentence, found[0], found[1])):
        found = found[1:]
    return {w for _, w in found}


def _adjacent(sentence: str, first: tuple[int, str], second: tuple[int, str]) -> bool:
    """Whether ``second`` follows ``first`` with only spaces between them."""
    gap = sentence[first[0] + len(first[1]):second[0]]
    return gap.strip(" '\u2019s") == ""


def missing_names(sentence: str, context_vocabulary: AbstractSet[str]) -> list[str]:
    """Names of ``sentence`` (:func:`names`) whose lower-cased form, and every hyphen part
    of it, is absent from ``context_vocabulary`` (:func:`vocabulary` of the context)."""
    out = []
    for name in sorted(names(sentence)):
        low = name.lower()
        if low in context_vocabulary or _stem(low) in context_vocabulary:
            continue
        if any(low[:n] in context_vocabulary for n in range(max(4, len(low) - 3), len(low))):
            continue  # "Parisian" for "Paris": a name's adjective, not a new name
        if "-" in low and all(p in context_vocabulary for p in low.split("-") if p):
            continue
        out.append(name)
    return out


def negated(text: str) -> bool:
    """Whether ``text`` holds a negation word (``not``, ``n't``, ``never``, ``no``, ...).
    Presence, not parity: "nothing, not even light, can escape" is one negation."""
    return any(w in NEGATIONS or w.endswith("n't") for w in words(text))


def closest_clause(sentence: str, context_sentence: str) -> str:
    """The clause of ``context_sentence`` (split at :data:`_CLAUSE`) sharing the most
    content words with ``sentence``; the first on ties."""
    clauses = [c for c in _CLAUSE.split(context_sentence) if c and c.strip()]
    if len(clauses) < 2:
        return context_sentence
    mine = content_words(sentence)
    return max(clauses, key=lambda c: len(mine & content_words(c)))
