"""Dates an answer works out from a date and a number of days, for the grounding scanner.

"Pay within 14 days" and a ticket "issued on 5 March" give "until 19 March"; "apply at
least 7 days before travel" and "a 2 September departure" give "by 26 August". Neither
the 19 nor August is written in the context, yet neither is invented. :func:`dated`
finds the dates of a claim that lie a stated number of days or weeks from another date
of its support (the user's message included), and gives their day numbers
(for the number check) and month names (for the name check). A date that no stated span
reaches ("until 21 March") stays unexplained and is still flagged.

Plain Python on short strings: microseconds per sentence.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache

from bastion.guard.scanners.output._grounding_calendar import MONTHS, full_name
from bastion.guard.scanners.output._grounding_numbers import NUMBER_WORDS

_MONTH = (r"(?:" + "|".join(MONTHS) + r"|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)"
          r"\.?")
#: "5 March", "5th of March", "March 5", "March 5th"
_DATE = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})(?![A-Za-z])|"
                   rf"\b({_MONTH})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b", re.IGNORECASE)
#: "14 days", "seven working days", "2 weeks"
_SPAN = re.compile(r"\b(\d{1,3}|[a-z]+)\s+(?:calendar\s+|clear\s+)?(days?|weeks?)\b",
                   re.IGNORECASE)
#: a year for the arithmetic when none is written (not a leap year: February has 28 days)
_YEAR = 2025


def _dates(text: str) -> list[tuple[str, str, dt.date]]:
    """``(day as written, full month name, date)`` of each day-and-month date of
    ``text`` (impossible dates skipped)."""
    out = []
    for m in _DATE.finditer(text):
        day, month = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
        name = full_name(month)
        if name is None:
            continue
        try:
            out.append((str(int(day)), name, dt.date(_YEAR, MONTHS.index(name) + 1,
                                                     int(day))))
        except ValueError:
            continue
    return out


def _spans(text: str) -> set[int]:
    """The numbers of days ``text`` states ("14 days", "two weeks": 14)."""
    out = set()
    for m in _SPAN.finditer(text):
        count = m.group(1).lower()
        value = int(count) if count.isdigit() else NUMBER_WORDS.get(count)
        if value is None or not str(value).isdigit():
            continue
        out.add(int(value) * (7 if m.group(2).lower().startswith("week") else 1))
    return out


@lru_cache(maxsize=8192)
def dated(claim: str, support: str) -> tuple[frozenset[str], frozenset[str]]:
    """Day numbers and lower-cased month names of the dates of ``claim`` that lie a
    number of days (or weeks) stated in ``claim`` or ``support`` before or after a date
    of ``support``: ``("That window runs until 19 March.", "Pay within 14 days of the
    date issued. Issued on 5 March.")`` -> ``({"19"}, {"march"})``."""
    mine = _dates(claim)
    if not mine:
        return frozenset(), frozenset()
    spans = _spans(f"{claim} {support}")
    # from a date the support gives (or the user did): two dates of the claim alone could
    # vouch for each other
    bases = [d for _, _, d in _dates(support)]
    days: set[str] = set()
    months: set[str] = set()
    for day, month, date in mine:
        # across the turn of the year: "28 December" and "4 January" are 7 days apart
        gaps = {min(gap, 365 - gap) for base in bases
                if (gap := abs((date - base).days)) > 0}
        if gaps & spans:
            days.add(day)
            months.add(month)
    return frozenset(days), frozenset(months)
