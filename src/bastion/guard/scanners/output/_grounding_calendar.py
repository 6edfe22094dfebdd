"""Day and month names a text implies without writing them, for the grounding scanner.

A context that says "Mon–Fri", "weekends", "daily" or "from October to March" speaks of
Wednesday, Saturday or November without naming them; an answer that names them is not
inventing a name. :func:`implied` gives those names, lower-cased, for the word indexes
the name checks read (:func:`._grounding_checks.vocabulary`): abbreviations spelt out,
"weekday(s)" and "weekend(s)", "daily" and "every day", and every name inside a range
("Monday to Friday", "May–September", "between November and February", wrapping round
the end of the week or year). A name outside the range stays unknown, so "Saturday"
against "Monday to Friday" is still flagged.

Plain Python on short strings: microseconds per text.
"""

from __future__ import annotations

import re
from functools import lru_cache

DAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday",
                         "saturday", "sunday")
MONTHS: tuple[str, ...] = ("january", "february", "march", "april", "may", "june", "july",
                           "august", "september", "october", "november", "december")
#: short forms of the names ("Wed", "Sept", "Thurs"); "mar", "may", "sun" and "sat" are
#: words too, so they count as names only when written with a capital.
_SHORT: dict[str, str] = {
    "mon": "monday", "tue": "tuesday", "tues": "tuesday", "wed": "wednesday",
    "thu": "thursday", "thur": "thursday", "thurs": "thursday", "fri": "friday",
    "sat": "saturday", "sun": "sunday", "jan": "january", "feb": "february",
    "mar": "march", "apr": "april", "jun": "june", "jul": "july", "aug": "august",
    "sep": "september", "sept": "september", "oct": "october", "nov": "november",
    "dec": "december"}
_CYCLES: tuple[tuple[str, ...], ...] = (DAYS, MONTHS)

_NAME = (r"(?:" + "|".join(DAYS + MONTHS) + r")s?|(?:"
         + "|".join(sorted(_SHORT, key=len, reverse=True)) + r")\.?")
#: "Monday to Friday", "Mon-Fri", "May – September", "from June until August",
#: "between November and February".
_RANGE = re.compile(rf"(?<![A-Za-z])({_NAME})\s*(?:to|till|until|through|thru|and|-|"
                    rf"\u2013|\u2014)\s*({_NAME})(?![A-Za-z])", re.IGNORECASE)
_BETWEEN = re.compile(r"\bbetween\s+$", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]+")
_EVERY_DAY = re.compile(r"\b(?:daily|every day|seven days a week|7 days a week)\b",
                        re.IGNORECASE)


def full_name(word: str) -> str | None:
    """The full lower-cased name ``word`` writes ("Wed." -> "wednesday"), or None."""
    low = word.lower().rstrip(".")
    if low in DAYS or low in MONTHS:
        return low
    if low.endswith("s") and (low[:-1] in DAYS or low[:-1] in MONTHS):
        return low[:-1]  # "Saturdays"
    if low in _SHORT and (word[0].isupper() or low not in ("mar", "may", "sun", "sat")):
        return _SHORT[low]
    return None


def _between(first: str, last: str) -> list[str]:
    """The names from ``first`` to ``last``, both full names of one cycle, wrapping."""
    for cycle in _CYCLES:
        if first in cycle and last in cycle:
            at, end = cycle.index(first), cycle.index(last)
            span = (end - at) % len(cycle)
            return [cycle[(at + k) % len(cycle)] for k in range(span + 1)]
    return []


@lru_cache(maxsize=8192)
def implied(text: str) -> frozenset[str]:
    """Full day and month names, lower-cased, that ``text`` states or implies:
    ``"Open Mon-Fri"`` -> the five weekdays, ``"weekends only"`` -> ``{"saturday",
    "sunday"}``, ``"from October to March"`` -> October to March."""
    out = {name for w in _WORD.findall(text) if (name := full_name(w))}
    low = text.lower()
    if "weekday" in low:
        out.update(DAYS[:5])
    if "weekend" in low:
        out.update(DAYS[5:])
    if _EVERY_DAY.search(text):
        out.update(DAYS)
    for m in _RANGE.finditer(text):
        first, last = full_name(m.group(1)), full_name(m.group(2))
        if not (first and last):
            continue
        joined = re.search(r"\band\b", m.group(0), re.IGNORECASE)
        if joined and not _BETWEEN.search(text, 0, m.start()):
            continue  # "Monday and Friday": two days, not the days between them
        out.update(_between(first, last))
    return frozenset(out)
