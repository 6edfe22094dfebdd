"""Symbolic checks of the grounding scanner: what sentence embeddings read past.

Two sentences that differ only in a number ("30 days" / "60 days"), a name ("Frankfurt
and Dublin" / "Frankfurt and Paris") or a "not" sit close together in MiniLM's space, so
the scanner checks these by hand:

* :func:`numbers` (from :mod:`._grounding_numbers`): digits and number words, normalised
  so ``four`` matches ``4`` and ``2,200`` ``2200``;
* :func:`names`: capitalised words inside a sentence (its first word only when the next
  one is capitalised too, since every sentence starts with a capital), compared without
  case, so a name the context spells in lower case still counts as present;
* negations, in :mod:`._grounding_negation`;
* :func:`content_words`, :func:`has_claim` and :func:`reader_aside`: the words that
  carry meaning, and whether a sentence claims anything at all ("Let me know if you have
  questions" does not, nor does "Wrap up warm!" against a context that never mentions
  the weather).

Everything here is plain Python on short strings: microseconds per sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from functools import lru_cache

from bastion.guard.scanners.output._grounding_calendar import implied
from bastion.guard.scanners.output._grounding_numbers import NUMBER_WORDS, numbers

__all__ = ["STOP_WORDS", "content_words", "has_claim", "missing_names", "names", "numbers",
           "reader_aside", "swapped_names", "vocabulary", "words"]

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

_WORDS = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*|\d+")
_CAPITALISED = re.compile(r"(?<![A-Za-z])[A-Z][A-Za-z'\u2019-]*")
#: words that open a sentence before a name without being part of it ("Outside London,
#: ...", "During Ramadan ..."): function words, prepositions and sentence adverbs.
_OPENING_WORDS = (
    "outside inside during between within without across along around near under above "
    "below behind beside besides beyond despite except unlike like since until including "
    "following regarding throughout towards toward beneath upon among amid apart overall "
    "meanwhile however otherwise instead additionally generally typically usually "
    "normally currently today tomorrow yesterday tonight every because although though "
    "unless whereas whether")
_NOT_NAMES: frozenset[str] = STOP_WORDS | frozenset(_OPENING_WORDS.split())
#: openings of sentences that make no claim: thanks, greetings, offers of more help.
_NO_CLAIM = re.compile(
    r"^(?:thanks?(?: you)?(?: so much| very much)?(?: for\b|[!.,]|$)|thank you\b|"
    r"(?:i |we )?hope (?:this|that|it|you)\b|(?:i|we) (?:really |do |truly )?hope\b|"
    r"(?:please )?let (?:me|us) know\b|"
    r"feel free\b|happy to help|glad (?:to|i could) help|(?:is there )?anything else\b|"
    r"(?:have a|enjoy your|enjoy the|good luck|best of luck|safe travels|happy \w+ing)\b|"
    r"(?:we |i )?look forward\b|you'?re welcome|great question|good question|"
    r"(?:hello|hi|hey|dear)\b|(?:sure|certainly|of course|absolutely)[!.,]|"
    r"(?:i'?m|i am) (?:happy|glad) to\b|enjoy[!.]?$|(?:happy|glad) to (?:help|explain)\b|"
    r"(?:(?:i'?m|i am|we'?re|we are) )?(?:so |very |really )?sorry (?:to hear|about|"
    r"you)\b|see you\b|here(?:'s| is) (?:an? |the )?(?:overview|summary|rundown|breakdown|"
    r"quick (?:guide|look))\b|(?:great|good|lovely) (?:idea|choice)\b|"
    r"safe (?:journey|trip)\b|don'?t worry\b|happy to (?:break|walk|go|run)\b)",
    re.IGNORECASE)

#: the form of an aside to the reader: an exclamation, a request, an interjection or
#: "here's ..." opening, the speaker's own voice ("I", "me", "let's") or a word of taste
#: ("lovely", "worth", "annoying"): how a reply talks to its reader, not about the world.
_ASIDE = re.compile(
    r"!$|^please\b|^(?:sounds|ooh|oh|ah|aw|wow|here's|here is)\b|"
    r"\b(?:i|i'm|i'd|i'll|i've|me|my|let's)\b|\b(?:lovely|great|fun|annoying|worth|"
    r"wonderful|fantastic|brilliant|nice|exciting|shame|pity|amazing|perfect|excellent|"
    r"beautiful|frustrating|tricky|delicious|happy to|glad)\b", re.IGNORECASE)


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
    """Lower-cased word and digit tokens of ``text`` (a plural's possessive apostrophe
    dropped: "barons'" is "barons")."""
    return [w.lower().replace("\u2019", "'").rstrip("'-") for w in _WORDS.findall(text)]


def vocabulary(text: str) -> set[str]:
    """Every word of ``text`` lower-cased, stemmed and hyphen parts apart (for lookups),
    and the day and month names it implies ("Mon-Fri", "weekends", "May to September":
    :func:`._grounding_calendar.implied`)."""
    out: set[str] = set(implied(text)) | _acronyms(text)
    for w in words(text):
        out.add(w)
        out.add(_stem(w))
        out.update(p for p in w.split("-") if p)
    return out


#: a run of two to five capitalised words ("United Kingdom", "Border Force Agency")
_NAME_RUN = re.compile(r"\b[A-Z][a-z]+(?:\s+(?:of\s+|and\s+|the\s+)?[A-Z][a-z]+){1,4}\b")


def _acronyms(text: str) -> set[str]:
    """The initials of each run of capitalised words, lower-cased ("United Kingdom" ->
    "uk"; "Bank of England" -> "be" and "boe"): an answer that abbreviates a name the
    text spells out names nothing new."""
    out = set()
    for m in _NAME_RUN.finditer(text):
        parts = m.group(0).split()
        out.add("".join(p[0] for p in parts if p[0].isupper()).lower())
        out.add("".join(p[0] for p in parts).lower())
    return out


@lru_cache(maxsize=8192)
def content_words(text: str) -> frozenset[str]:
    """Stems of the words of ``text`` that carry meaning (no function words, no digits or
    number words, which the number check reads, at least three letters)."""
    stems = ((w, _stem(w)) for w in words(text)
             if w not in STOP_WORDS and len(w) >= 3 and not w[0].isdigit())
    # "quarters" is a number word too, as "quarter" is
    return frozenset(stem for w, stem in stems
                     if w not in NUMBER_WORDS and stem not in NUMBER_WORDS)


def has_claim(sentence: str) -> bool:
    """Whether ``sentence`` claims something a context could support: not a question,
    not a pleasantry (:data:`_NO_CLAIM`), and at least one content word."""
    stripped = sentence.strip().strip("\"'")
    if not stripped or stripped.endswith("?"):
        return False
    if _NO_CLAIM.search(stripped):
        return False
    return bool(content_words(stripped))


def reader_aside(sentence: str, context_vocabulary: AbstractSet[str]) -> bool:
    """Whether ``sentence`` speaks to the reader rather than about the context, so makes
    no claim: it has the form of an aside (:data:`_ASIDE`: an exclamation, a request, the
    speaker's own voice or a judgement of taste: "Wrap up warm!", "Please read the
    leaflet.", "I hope your dad feels better soon.", "That's annoying - let's get it
    sorted.", "Sounds like a lovely outing."), states no number and no name the context
    lacks, and fewer than half its content words are in ``context_vocabulary``.
    ("Please note that refunds take 5 days." names a number; "Dogs must be kept on a
    lead!" speaks of the context's dogs and lead.) An invented fact rarely takes this
    form: it states a number, a name or the context's own words."""
    stripped = sentence.strip().strip("\"'")
    if not _ASIDE.search(stripped):
        return False
    if numbers(stripped) or missing_names(stripped, context_vocabulary):
        return False
    mine = content_words(stripped)
    return 2 * len(mine & context_vocabulary) < len(mine)


@lru_cache(maxsize=8192)
def names(sentence: str) -> frozenset[str]:
    """Capitalised words of ``sentence`` as written (possessive ``'s`` dropped), except
    ``I`` and the first word when the second is not capitalised as well."""
    found = []
    for m in _CAPITALISED.finditer(sentence):
        if (len(m.group(0)) <= 3 and m.group(0).isupper()
                and _after_number(sentence, m.start())):
            continue  # a unit: "26.5 C", "9V", "15 GB" (not "31 May")
        word = m.group(0).replace("\u2019", "'")
        if word.endswith("'s"):
            word = word[:-2]
        word = word.rstrip("'-")
        if word and word != "I":
            found.append((m.start(), word))
    if not found:
        return frozenset()
    first_at = len(sentence) - len(sentence.lstrip(" \"'([*-"))
    # the opening word is capitalised anyway; keep it only inside a run of names, and
    # never a function word ("With Economy Light ...", "The Danube ...")
    if found[0][0] == first_at and (len(found) < 2 or found[0][1].lower() in _NOT_NAMES
                                    or not _adjacent(sentence, found[0], found[1])):
        found = found[1:]
    return frozenset(w for _, w in found)


def _after_number(sentence: str, at: int) -> bool:
    """Whether a digit stands just before position ``at``, a space apart at most ("26.5 "
    of "26.5 C"): what follows is the number's unit."""
    before = sentence[max(0, at - 3):at].replace("\u00b0", "").replace("\u00ba", "")[-2:]
    return bool(before) and (before[-1].isdigit() or (before[-1] == " " and len(before) == 2
                                                       and before[0].isdigit()))


def _adjacent(sentence: str, first: tuple[int, str], second: tuple[int, str]) -> bool:
    """Whether ``second`` follows ``first`` with only spaces between them."""
    gap = sentence[first[0] + len(first[1]):second[0]]
    return gap.strip(" '\u2019s") == ""


def swapped_names(sentence: str, support: Sequence[str],
                  support_vocabulary: AbstractSet[str] | None = None) -> list[str]:
    """Names of ``sentence`` absent from ``support`` (its closest context sentences) when
    ``support`` names something the sentence does not: a name of the context put in
    another's place ("on Sunday" where the support says "on Saturday" and another
    sentence mentions Sunday). ``support_vocabulary``: :func:`vocabulary` of the
    support, when the caller has it already."""
    if not names(sentence):
        return []
    mine = vocabulary(sentence)
    if all(_known(n.lower(), mine) for unit in support for n in names(unit)):
        return []
    if support_vocabulary is None:
        support_vocabulary = vocabulary(" ".join(support))
    return missing_names(sentence, support_vocabulary)


#: scales named after people that state a unit, not a new name ("in Fahrenheit")
_UNIT_NAMES = frozenset({"fahrenheit", "celsius", "kelvin", "richter", "beaufort"})
#: a people's adjective and the short names of its country ("British" for "UK")
_DEMONYMS: dict[str, tuple[str, ...]] = {
    "british": ("uk", "britain"), "briton": ("uk", "britain"), "american": ("us", "usa"),
    "english": ("england", "uk"), "scottish": ("scotland", "uk"), "welsh": ("wales", "uk"),
    "dutch": ("netherlands", "holland"), "french": ("france",), "german": ("germany",),
    "spanish": ("spain",), "swiss": ("switzerland",), "irish": ("ireland",),
    "japanese": ("japan",), "chinese": ("china",), "greek": ("greece",),
    "norwegian": ("norway",), "swedish": ("sweden",), "danish": ("denmark",),
    "finnish": ("finland",), "portuguese": ("portugal",), "italian": ("italy",)}


def _known(low: str, vocab: AbstractSet[str]) -> bool:
    """Whether the lower-cased name ``low`` is in ``vocab``, as itself, its stem, a form
    it is the adjective of ("parisian" for "paris"), the start of a longer word ("maths"
    for "mathematics", four letters at least) or all its hyphen parts."""
    if low in vocab or _stem(low) in vocab or low in _UNIT_NAMES:
        return True
    if any(place in vocab for place in _DEMONYMS.get(_stem(low), ())):
        return True  # "British" for "UK"
    if any(low[:n] in vocab for n in range(max(4, len(low) - 3), len(low))):
        return True  # "Parisian" for "Paris": a name's adjective, not a new name
    short = low[:-1] if low.endswith("s") else low
    if len(short) >= 4 and any(w.startswith(short) for w in vocab):
        return True  # "Maths" for "Mathematics", "America" for "American"
    return "-" in low and all(p in vocab for p in low.split("-") if p)


def missing_names(sentence: str, context_vocabulary: AbstractSet[str]) -> list[str]:
    """Names of ``sentence`` (:func:`names`) whose lower-cased form, and every hyphen part
    of it, is absent from ``context_vocabulary`` (:func:`vocabulary` of the context)."""
    return [name for name in sorted(names(sentence))
            if not _known(name.lower(), context_vocabulary)]
