"""Symbolic checks of the grounding scanner: what sentence embeddings read past.

Two sentences that differ only in a number ("30 days" / "60 days"), a name ("Frankfurt
and Dublin" / "Frankfurt and Paris") or a "not" sit close together in MiniLM's space, so
the scanner checks these by hand:

* :func:`numbers` (from :mod:`._grounding_numbers`): digits and number words, normalised
  so ``four`` matches ``4`` and ``2,200`` ``2200``;
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
from functools import lru_cache

from bastion.guard.scanners.output._grounding_numbers import NUMBER_WORDS, numbers

__all__ = ["NEGATIONS", "STOP_WORDS", "closest_clause", "content_words", "has_claim",
           "missing_names", "names", "negated", "negation_flip", "numbers", "vocabulary",
           "words"]

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
#: there.
NEGATIONS: frozenset[str] = frozenset(
    ["not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "cannot"])
#: words that say "no ..." without a negation word: "free" (no charge), "lacks". They
#: settle a disagreement on negation words only (see :func:`negation_flip`): "is free"
#: agrees with "do not pay", "is not free" still disagrees with "is free". ("without" and
#: "unless" are left out: "not covered unless declared" negates its main clause.)
LEXICAL_NEGATIONS: frozenset[str] = frozenset(["free", "lack", "lacks", "absent"])
#: words that start with "un" without being negated ("under", "unit", "universe", ...).
_NOT_UN = ("under", "unit", "uni", "unti", "unless", "uncle", "unanim", "unload",
           "unlock", "unpack", "unveil", "unleash")

_WORDS = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*|\d+")
_CAPITALISED = re.compile(r"(?<![A-Za-z])[A-Z][A-Za-z'\u2019-]*")
#: where a sentence divides into clauses that may differ in negation ("... has two ports,
#: but no HDMI port"; "... has no atmosphere and its gravity is ..."; "... 29 pounds with
#: a contract, or 39 pounds with no contract").
_CLAUSE = re.compile(r";|,?\s+(?:but|while|whereas|although|though)\s+|,\s+or\s+|"
                     r",?\s+and\s+(?=(?:its|it|the|their|they|he|she|we|you|this|that|"
                     r"there)\b)", re.IGNORECASE)

#: openings of sentences that make no claim: thanks, greetings, offers of more help.
_NO_CLAIM = re.compile(
    r"^(?:thanks?(?: you)?(?: so much| very much)?(?: for\b|[!.,]|$)|thank you\b|"
    r"(?:i |we )?hope (?:this|that|it|you)\b|(?:please )?let (?:me|us) know\b|"
    r"feel free\b|happy to help|glad (?:to|i could) help|(?:is there )?anything else\b|"
    r"(?:have a|enjoy your|enjoy the|good luck|best of luck|safe travels|happy \w+ing)\b|"
    r"(?:we |i )?look forward\b|you'?re welcome|great question|good question|"
    r"(?:hello|hi|hey|dear)\b|(?:sure|certainly|of course|absolutely)[!.,]|"
    r"(?:i'?m|i am) (?:happy|glad) to\b|enjoy[!.]?$)", re.IGNORECASE)


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    """A crude English stem, the same on both sides: enough for "members"/"member"."""
    word = word.lower().replace("\u2019", "'")
    if word.endswith("'s"):
        word = word[:-2]
    for suffix in ("ies", "ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    # "charge", "charged", "charging" and "minute", "minutes" meet at one stem
    return word[:-1] if word.endswith("e") and len(word) >= 5 else word


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


@lru_cache(maxsize=8192)
def content_words(text: str) -> frozenset[str]:
    """Stems of the words of ``text`` that carry meaning (no function words, no digits or
    number words, which the number check reads, at least three letters)."""
    return frozenset(_stem(w) for w in words(text)
                     if w not in STOP_WORDS and w not in NUMBER_WORDS and len(w) >= 3
                     and not w[0].isdigit())


def has_claim(sentence: str) -> bool:
    """Whether ``sentence`` claims something a context could support: not a question,
    not a pleasantry (:data:`_NO_CLAIM`), and at least one content word."""
    stripped = sentence.strip().strip("\"'")
    if not stripped or stripped.endswith("?"):
        return False
    if _NO_CLAIM.search(stripped):
        return False
    return bool(content_words(stripped))


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


@lru_cache(maxsize=8192)
def negated(text: str) -> bool:
    """Whether ``text`` holds a negation word (``not``, ``n't``, ``never``, ``no``, ...).
    Presence, not parity: "nothing, not even light, can escape" is one negation."""
    return any(w in NEGATIONS or w.endswith("n't") for w in words(text))


def _lexical(text: str) -> int:
    """How many negated words ``text`` holds: :data:`LEXICAL_NEGATIONS`, ``-free`` words
    ("glare-free") and ``un-`` words ("unworn", "unused")."""
    return sum(w in LEXICAL_NEGATIONS or w.endswith("-free")
               or (w.startswith("un") and len(w) >= 6 and not w.startswith(_NOT_UN))
               for w in words(text))


#: a claim that opens with a condition holding its negation ("If it does not arrive within
#: a week, ..."), which a context states as "... must arrive within 7 days, or ...".
_IF_NOT = re.compile(r"^\W*if\b[^,]*\b(?:not|never|no)\b[^,]*,", re.IGNORECASE)
_OR_ELSE = re.compile(r",\s+or\b|\botherwise\b", re.IGNORECASE)


def negation_flip(claim: str, context_sentence: str) -> bool:
    """Whether ``claim`` and ``context_sentence`` disagree on negation: one holds a
    negation word that the closest clause (:func:`closest_clause`) of the other lacks,
    unless a negated word says the same ("do not pay" / "is free", "has not been worn" /
    "unworn": the polarities, counted with those words, agree) or the claim's negation is
    a condition the context states with "or" ("if it does not arrive, ..." / "must arrive,
    or ...")."""
    clause = closest_clause(claim, context_sentence)
    if negated(claim) == negated(clause):
        return False
    if (int(negated(claim)) + _lexical(claim)) % 2 == (int(negated(clause))
                                                        + _lexical(clause)) % 2:
        return False
    return not (_IF_NOT.search(claim) and _OR_ELSE.search(context_sentence))


def closest_clause(sentence: str, context_sentence: str) -> str:
    """The clause of ``context_sentence`` (split at :data:`_CLAUSE`) sharing the most
    content words with ``sentence``; the first on ties."""
    clauses = [c for c in _CLAUSE.split(context_sentence) if c and c.strip()]
    if len(clauses) < 2:
        return context_sentence
    mine = content_words(sentence)
    return max(clauses, key=lambda c: len(mine & content_words(c)))
