"""Negation for the grounding scanner: whether an answer sentence and its closest context
sentence disagree on whether something is so.

A flipped claim ("The filter cannot be removed" for "A removable filter") sits close to
its source in MiniLM's space, so the scanner compares polarity by hand, clause by clause
(:func:`negation_flip`):

* negation words (:data:`NEGATIONS`, ``n't``) decide whether a clause is negated at all,
  except in a bound ("no larger than 40 cm", "not more than six": a limit, not a denial);
* negated words that carry no negation word settle a disagreement: "free" (no charge),
  "lacks", ``un-`` and ``-free`` words, a contrast ("X rather than Y", "instead of Y"
  says "not Y") and "without" before a thing the other side names too ("without an exit
  fee" is "no fee"; "added without problems" denies no problem the other side states):
  "do not pay" agrees with "is free", "not the snake" with "rather than the snake", "is
  not free" still disagrees with "is free".

Plain Python on short strings: microseconds per sentence.
"""

from __future__ import annotations

import re
from functools import lru_cache

from bastion.guard.scanners.output._grounding_checks import _stem, content_words, words

__all__ = ["LEXICAL_NEGATIONS", "NEGATIONS", "clauses", "closest_clause", "negated",
           "negation_flip", "polarity"]

#: words that negate a clause; a sentence and its support should agree on whether one is
#: there.
NEGATIONS: frozenset[str] = frozenset(
    ["not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "cannot"])
#: words that say "no ..." without a negation word. They settle a disagreement on
#: negation words only (see :func:`negation_flip`). ("unless" is not one: "not covered
#: unless declared" denies its main clause; see :data:`_IF_NOT`.)
LEXICAL_NEGATIONS: frozenset[str] = frozenset(
    ["free", "lack", "lacks", "lacking", "absent", "exempt", "avoid", "excluding"])
#: "without charge", "at no cost": free, said without the word (counted as "free" is).
_NO_CHARGE = re.compile(r"\b(?:without|at\s+no)\s+(?:any\s+|extra\s+|additional\s+)?"
                        r"(?:charge|cost|fee|payment)s?\b", re.IGNORECASE)
#: words that start with "un" without being negated ("under", "unit", "universe", ...).
_NOT_UN = ("under", "unit", "uni", "unti", "unless", "uncle", "unanim", "unload",
           "unlock", "unpack", "unveil", "unleash")
#: words ending in "less" that deny nothing
_NOT_LESS = frozenset({"unless", "regardless", "nevertheless", "nonetheless", "doubtless"})
#: an ``un-`` word as written in running text: "unworn", "Unused"; not "UNESCO".
_UN_WORD = re.compile(r"(?<![A-Za-z])[Uu]n[a-z]{4,}\b")
#: common English opposites, one group per line: a word of a group said where the other
#: side says another ("stays open" / "closes", "keeps its cargo" / "loses its cargo")
#: reverses what is claimed, as a "not" would. General words only, none of one topic;
#: function words ("more", "same", "before") are not content words, so not listed.
_OPPOSITES = """
open close closed shut | keep lose | win lose | male female
accept reject refuse decline | allow forbid ban prohibit | permitted forbidden banned
include exclude skip skipped omit omitted | allowed banned | increase decrease reduce
rise fall | survive die | pass fail
succeed fail | success failure | safe dangerous | public private | required optional
mandatory optional | compulsory optional | early late | earlier later | fast slow
quickly slowly | large small | big small | high low | higher lower | cheap expensive
hot cold | wet dry | strong weak | easy difficult | true false | correct wrong
above below | inside outside | north south | east west | add remove | buy sell
lend borrow | import export | minimum maximum | enable disable | permanent temporary
full empty | wide narrow | legal illegal | possible impossible | agree disagree
best worst | better worse | good bad | positive negative | gain lose | majority minority
internal external | similar different | start stop | awake asleep sleep
"""


def _opposite_stems(table: str) -> dict[str, frozenset[str]]:
    """Stem -> the stems opposed to it, from groups of words split by ``|`` or a line
    end."""
    out: dict[str, frozenset[str]] = {}
    for group in re.split(r"[|\n]", table):
        stems = frozenset(_stem(w) for w in group.split())
        for stem in stems:
            out[stem] = out.get(stem, frozenset()) | (stems - {stem})
    return out


#: stem -> the stems of its opposites.
OPPOSITES: dict[str, frozenset[str]] = _opposite_stems(_OPPOSITES)
#: "without" and the word it denies, past an article ("without an exit fee": "exit").
_WITHOUT = re.compile(r"\bwithout\s+(?:(?:a|an|the|any)\s+)?([A-Za-z]+)"
                      r"(?:\s+(?:(?:a|an|the|any|your|their)\s+)?([A-Za-z]+))?", re.IGNORECASE)
#: "stop paying", "ceased trading": no longer doing it
_STOP_DOING = re.compile(r"\b(?:stop|stops|stopped|cease|ceases|ceased|quit)\s+\w+ing\b",
                         re.IGNORECASE)
_PRONOUNS = frozenset(["one", "it", "them", "these", "those"])
#: "with no water inside": a thing absent, said as "without" would ("when it is empty").
_WITH_NO = re.compile(r"\bwith\s+no\b", re.IGNORECASE)
#: "X rather than Y", "X instead of Y": Y is denied.
_CONTRAST = re.compile(r"\b(?:rather\s+than|instead\s+of)\b", re.IGNORECASE)
#: a negation word before a comparative states a bound, not a denial ("no larger than",
#: "not more than", "no later than").
_BOUND = re.compile(r"\b(?:no|not)\s+(?:more|less|fewer|[a-z]{2,}er)\s+than\b|"
                    # "does not get as hot as": a comparison, not a denial
                    r"\b(?:not|[a-z]+n't)\s+(?:[a-z]+\s+)?as\s+[a-z]+\s+as\b|"
                    # "nothing but milkweed" is "only milkweed"; "to almost nothing"
                    r"\b(?:nothing|none|no\s+one|nobody)\s+but\b|"
                    r"\b(?:almost|nearly|virtually|next\s+to)\s+(?:nothing|none|no)\b|"
                    # "no rower can race in more than two events": a bound further on
                    r"\b(?:no|not|never)\b[^,;.]{0,40}?\b(?:more|fewer|less)\s+than\b|"
                    # "isn't just the odd bad night" adds, "whether or not" includes both
                    r"\b(?:not|[a-z]+n't)\s+(?:just|only|merely|simply)\b|"
                    # a concession holds whatever it says: "whether or not they work",
                    # "even if it has not caused damage yet"
                    r"\b(?:whether\s+or\s+not|even\s+if)\b[^,;.]*|"
                    # "not with anything else", "nobody else can": "only", said with a no
                    r"\b(?:not|[a-z]+n't)\b[^,;.]{0,30}?\b(?:anything|anyone|any\s+\w+)\s+else\b|"
                    r"\b(?:nobody|no\s+one|nothing|none)\s+else\b|"
                    # a purpose: "so they can't scratch it" is "which could scratch it"
                    r"\bso\s+(?:that\s+)?(?:it|they|you|he|she|we|the\s+\w+)\s+(?:can't|"
                    r"cannot|won't|will\s+not|doesn't|don't)\b",
                    re.IGNORECASE)
#: where a sentence divides into clauses that may differ in negation ("... has two ports,
#: but no HDMI port"; "... has no atmosphere and its gravity is ..."; "... 29 pounds with
#: a contract, or 39 pounds with no contract").
_CLAUSE = re.compile(r"[;:]|(?<!nothing)(?<!none)(?<!nobody)(?<!anything)"
                     r",?\s+(?:but|while|whereas|although|though)\s+|,\s+or\s+|"
                     r",\s+(?=(?:not|no|never)\b)|"
                     r",?\s+and\s+(?=(?:its|it|the|their|they|he|she|we|you|this|that|"
                     r"there|many|most|some|several|few|others|"
                     r"may|might|must|can|cannot|could|will|would|should|is|are|was|"
                     r"were|has|have|had|does|do|did|no|not|never)\b|[a-z]+n't\b)|"
                     # sentences of a support pair ("Not everyone gets a rash. Some ...")
                     r"(?<=[a-z0-9)][.!?])\s+(?=(?-i:[A-Z]))|"
                     # a reason or a consequence is a clause of its own ("..., so you can
                     # cancel", "..., because suitcases can't go in", "..., as our
                     # system cannot take them")
                     r",\s+(?:so|because)\s+|\s[\u2014\u2013]\s|"
                     r",\s+and\s+(?=(?:[\w-]+\s+){1,4}(?:is|are|was|were|can|cannot|must|may|"
                     r"will|has|have|does|do|[a-z]+n't)\b)|"
                     r",\s+as\s+(?=(?:our|the|their|its|it|they|we|you|this|that|there)\b|"
                     r"(?:[\w-]+\s+){1,3}(?:are|is|can|cannot|will|do|does|have|has|[a-z]+n't)\b)",
                     re.IGNORECASE)
#: a claim that opens with a condition holding its negation ("If it does not arrive within
#: a week, ..."), which a context states as "... must arrive within 7 days, or ...".
_IF_NOT = re.compile(r"^\W*if\b[^,]*(?:\b(?:not|never|no)\b|n't\b)[^,]*,", re.IGNORECASE)
_OR_ELSE = re.compile(r",\s+or\b|\botherwise\b", re.IGNORECASE)
#: a case stated by its negation ("luggage that is not labelled", "bikes not collected
#: within 30 days"), which a claim states as "do X, or ..."
_NEGATED_CASE = re.compile(r"\b(?:that|which|who)\s+(?:is|are|was|were|has|have)\s+not\b|"
                           r"\b[a-z]+s\s+not\s+[a-z]+ed\b", re.IGNORECASE)
#: "A unless B" is "not A if B": a negated claim with an "if" against a context with
#: "unless" (or the reverse) says the same ("cannot renew if reserved" / "can renew
#: unless reserved").
_IF = re.compile(r"\bif\b", re.IGNORECASE)
_CONDITION = re.compile(r"\b(?:if|when|unless|whenever)\b", re.IGNORECASE)
_UNLESS = re.compile(r"\bunless\b", re.IGNORECASE)
#: "cannot move until the contract ends" is "can move only once it has ended".
_UNTIL = re.compile(r"\b(?:until|till|before)\b", re.IGNORECASE)
_ONLY = re.compile(r"\bonly\b|\bby\s+(?:\d|the\s+end)", re.IGNORECASE)


@lru_cache(maxsize=8192)
def negated(text: str) -> bool:
    """Whether ``text`` holds a negation word (``not``, ``n't``, ``never``, ``no``, ...)
    outside a bound ("no more than"). Presence, not parity: "nothing, not even light, can
    escape" is one negation."""
    text = _WITH_NO.sub("without", _BOUND.sub(" ", text))
    return any(w in NEGATIONS or w.endswith("n't") for w in words(text))


def _lexical(text: str, other: str) -> int:
    """How many negated words ``text`` holds: :data:`LEXICAL_NEGATIONS`, ``-free`` words
    ("glare-free"), ``un-`` words ("unworn", "unused"), contrasts ("rather than") and
    "without" (or "with no") before a word that ``other`` (the side compared with) holds
    as well, or before a pronoun ("without one")."""
    text = _WITH_NO.sub("without", text)
    charges = len(_NO_CHARGE.findall(text))
    text = _NO_CHARGE.sub(" ", text)
    every = words(text)
    plain = charges + sum(w in LEXICAL_NEGATIONS or w.endswith("-free")
                          or w.startswith(("no-", "non-")) for w in every)
    # "colourless, odourless": a run of -less words denies once ("can't see or smell")
    plain += any(w.endswith("less") and len(w) > 6 and w not in _NOT_LESS for w in every)
    plain += len(_STOP_DOING.findall(text))
    prefixed = sum(not m.group(0).lower().startswith(_NOT_UN)
                   for m in _UN_WORD.finditer(text))
    theirs = content_words(other)
    # "without one" / "without it" deny a thing named before, whatever the other says
    denied = sum(bool(content_words(" ".join(w for w in m.groups() if w)) & theirs)
                 or m.group(1).lower() in _PRONOUNS for m in _WITHOUT.finditer(text))
    return plain + prefixed + denied + len(_CONTRAST.findall(text))


def polarity(text: str, other: str = "") -> int:
    """0 for an affirmative clause, 1 for a denial: negation words (one at most) and
    negated words (:func:`_lexical`, compared with ``other``) counted together, modulo 2."""
    return (int(negated(text)) + _lexical(text, other)) % 2


def opposites(claim: str, other: str) -> int:
    """How many words of ``claim`` meet an opposite (:data:`OPPOSITES`) in ``other``, each
    where neither side also holds the other's word ("closes" / "stays open": 1; "from the
    start to the finish" / "six hours after the start": 0)."""
    mine, theirs = content_words(claim), content_words(other)
    return sum(1 for w in mine - theirs
               if any(o in theirs and o not in mine for o in OPPOSITES.get(w, ())))


def negation_flip(claim: str, context_sentence: str) -> bool:
    """Whether ``claim`` and ``context_sentence`` disagree on negation: a clause of the
    claim (:func:`clauses`) holds a negation word that the closest clause
    (:func:`closest_clause`) of the context sentence lacks, or the reverse, and their
    polarities (:func:`polarity`) differ; unless the claim's negation is a condition the
    context states with "or" ("if it does not arrive, ..." / "must arrive, or ...") or
    with "unless" ("cannot renew if reserved" / "can renew unless reserved")."""
    condition = _IF_NOT.search(claim)
    if condition and _OR_ELSE.search(context_sentence):
        return False
    if condition and _CONDITION.search(context_sentence):
        # both state a condition: the claim's negation describes its case ("if you can't
        # make it, ..." / "... if you need to cancel"); compare what follows it, and
        # what follows the context's own "if ... not ..." opener
        claim = claim[condition.end():]
        theirs = _IF_NOT.search(context_sentence)
        if theirs:
            context_sentence = context_sentence[theirs.end():]
    if _OR_ELSE.search(claim) and _NEGATED_CASE.search(context_sentence):
        return False  # "label it, or the driver may refuse it" / "... luggage not labelled"
    if _conditions_agree(claim, context_sentence):
        return False
    parts = [p for p in clauses(claim) if content_words(p)] or [claim]
    for part in parts:
        clause = closest_clause(part, context_sentence)
        if not content_words(part) & content_words(clause):
            continue  # a clause about something else ("Penalty:") cannot contradict it
        swapped = opposites(part, clause)
        if ((negated(part) != negated(clause) or swapped)
                and (polarity(part, clause) + swapped) % 2 != polarity(clause, part)):
            return True
    return False


def _conditions_agree(claim: str, context_sentence: str) -> bool:
    """"not A if B" against "A unless B", or "not A until B" against "A only once B"; or
    the reverse."""
    for one, other in ((claim, context_sentence), (context_sentence, claim)):
        if not negated(one) or negated(other):
            continue
        if (_IF.search(one) and _UNLESS.search(other)) or (
                _UNTIL.search(one) and _ONLY.search(other)):
            return True
    return False


def clauses(sentence: str) -> list[str]:
    """The clauses of ``sentence``, split at ``;``, ``but``, ``while``, ``, or`` and
    ``and`` before a new subject."""
    return [c for c in _CLAUSE.split(sentence) if c and c.strip()]


def closest_clause(sentence: str, context_sentence: str) -> str:
    """The clause of ``context_sentence`` (:func:`clauses`) sharing the most content
    words with ``sentence``; on ties, the one with the largest share of its own words
    shared ("but no HDMI port" over "has two ports and a jack" for "has an HDMI port"),
    then the first."""
    found = clauses(context_sentence)
    if len(found) < 2:
        return context_sentence
    mine = content_words(sentence)

    def shared(clause: str) -> tuple[int, float]:
        # most words in common; on a tie, the clause that is most about them
        theirs = content_words(clause)
        return len(mine & theirs), len(mine & theirs) / max(1, len(theirs))
    return max(found, key=shared)
