"""Numbers an answer works out from its support: sums, differences, products, ratios and
unit conversions, so a computed total is not taken for a changed number.

:func:`derived` returns the numbers of a claim that follow from its support in one step:

- **arithmetic**, only where the claim says it computes ("which comes to", "so", "in
  total", "that's", "works out at", "saves"): a number of the claim equal to ``a + b``,
  ``a - b``, ``a * b`` or ``a / b`` for ``a`` from the support and ``b`` from the
  support or the claim ("two flues at £55 each would set you back £110"); the claim's
  own operand counts as derived with it. A ratio between two numbers of the support
  ("juniors pay half that" where the support lists £18 and £9) is derived as well.
- **conversions** where the claim names the other unit: °C and °F, km and miles, km/h
  and mph, cm or m and inches or feet ("5 feet 6 inches" for 1.68 m), kg and pounds,
  litres and gallons.

A changed number rarely equals one of these by chance, and the cue keeps chance sums of
small numbers ("3 hours" where the support says 2 and 5) out. Plain Python: a few hundred
comparisons per sentence.
"""

from __future__ import annotations

import itertools
import re
from functools import lru_cache

from bastion.guard.scanners.output._grounding_numbers import numbers

#: words that announce a computed number
_CUE = re.compile(
    r"\b(?:which|that)(?:'s| is| comes| works| brings| gives| means| makes| saves| would)|"
    r"\bso\b|\bin total\b|\baltogether\b|\btotal(?:s|ling)?\b|\b(?:works?|working) out\b|"
    r"\bcomes? (?:to|down to)\b|\bset you back\b|\btherefore\b|\bthat's\b|"
    r"\bhalf (?:that|of that|the)\b|\btwice\b|\bsav(?:es?|ing)\b|\bgives you\b|"
    r"\b(?:years?|months?|days?) (?:after|before|later|earlier)\b|=",
    re.IGNORECASE)
#: operands an answer may bring in unsaid: months in a year, days in a week, hours in a
#: day, minutes in an hour, per cent (keys are how :func:`numbers` writes them)
CONSTANTS: dict[str, float] = {"@12": 12.0, "@7": 7.0, "@24": 24.0, "@60": 60.0,
                               "@100": 100.0}
#: a rounded result: "about", "roughly", "nearly" before it widen the match to APPROX
_ROUNDED = re.compile(r"\b(?:about|around|roughly|nearly|almost|approximately|some|just "
                      r"(?:under|over)|over|under|close to)\s+[£$€]?\d", re.IGNORECASE)
#: characters before the cue where its result may stand ("some 27 years after")
CUE_REACH = 10
#: relative tolerance of an arithmetic match (rounding to pence or one decimal)
EXACT = 0.006
#: relative tolerance of a unit conversion ("roughly 25 mph" for 39 km/h)
APPROX = 0.05
#: (unit words of the claim, factor from the support's unit, words of the support's unit)
_CONVERSIONS: tuple[tuple[str, float, str], ...] = (
    (r"miles? per hour|mph", 0.621371, r"km/h|kph|kilomet(?:re|er)s? (?:per|an) hour"),
    (r"km/h|kph|kilomet(?:re|er)s? (?:per|an) hour", 1.609344, r"mph|miles? per hour"),
    (r"miles?\b", 0.621371, r"km\b|kilomet(?:re|er)s?"),
    (r"km\b|kilomet(?:re|er)s?", 1.609344, r"miles?\b"),
    (r"inch(?:es)?|\bin\b", 0.393701, r"cm\b|centimet(?:re|er)s?"),
    (r"inch(?:es)?|\bin\b", 39.3701, r"\bm\b|met(?:re|er)s?"),
    (r"feet|foot|ft\b", 3.28084, r"\bm\b|met(?:re|er)s?"),
    (r"met(?:re|er)s?|\bm\b", 0.3048, r"feet|foot|ft\b"),
    (r"pounds?|lbs?\b", 2.204623, r"kg\b|kilo(?:gram)?s?"),
    (r"kg\b|kilo(?:gram)?s?", 0.453592, r"pounds?|lbs?\b"),
    (r"gallons?", 0.219969, r"lit(?:re|er)s?|\bl\b"),
    (r"km\b|kilomet(?:re|er)s?", 0.001, r"\bm\b|met(?:re|er)s?"),
    (r"\bm\b|met(?:re|er)s?", 1000.0, r"km\b|kilomet(?:re|er)s?"),
    (r"kg\b|kilo(?:gram)?s?", 0.001, r"\bg\b|grams?"),
    (r"hours?", 1 / 60, r"minutes?|mins?\b"),
)
_FAHRENHEIT = re.compile(r"°\s*F\b|fahrenheit", re.IGNORECASE)
_CELSIUS = re.compile(r"°\s*C\b|celsius|centigrade", re.IGNORECASE)
_FEET_INCHES = re.compile(r"(\d+)\s*(?:feet|foot|ft|')\s*(\d+)\s*(?:inch(?:es)?|in\b|\")",
                          re.IGNORECASE)


def _close(value: float, target: float, tolerance: float) -> bool:
    return abs(value - target) <= tolerance * max(1.0, abs(target))


def _values(text: str) -> dict[str, float]:
    return {n: float(n) for n in numbers(text)}


def _arithmetic(claim: dict[str, float], support: dict[str, float],
                results: frozenset[str], tolerance: float = EXACT) -> set[str]:
    """Claim numbers among ``results`` (and their claim-only operands) one operation away
    from the support, the calendar's constants (:data:`CONSTANTS`) among the operands."""
    out: set[str] = set()
    pool = {**CONSTANTS, **support, **claim}
    for name, target in claim.items():
        if name in support or name not in results:
            continue
        for a, (b_name, b) in itertools.product(support.values(), pool.items()):
            if b_name == name:
                continue
            outcomes = (a + b, a - b, b - a, a * b, a / b if b else None, b / a if a else None)
            if any(r is not None and _close(r, target, tolerance) for r in outcomes):
                out.add(name)
                if b_name not in support and b_name not in CONSTANTS:
                    out.add(b_name)
    # a ratio the claim states between two support numbers ("half that", "twice as much")
    for name, ratio in claim.items():
        if name not in support and name in results and 0 < ratio <= 10 and any(
                _close(a * ratio, c, EXACT) for a, c in itertools.permutations(
                    support.values(), 2)):
            out.add(name)
    return out


def _conversions(claim: str, support: str) -> set[str]:
    """Claim numbers that restate a support quantity in the unit the claim names."""
    out: set[str] = set()
    mine = _values(claim)
    theirs = [abs(v) for v in _values(support).values()]
    if _FAHRENHEIT.search(claim) and _CELSIUS.search(support):
        for c in theirs:
            for sign in (1, -1):
                f = sign * c * 9 / 5 + 32
                out.update(n for n, v in mine.items() if _close(v, abs(f), APPROX))
    for m in _FEET_INCHES.finditer(claim):
        inches = int(m.group(1)) * 12 + int(m.group(2))
        if any(_close(inches * 2.54, t * s, APPROX) for t in theirs for s in (1, 100)):
            out.update({m.group(1), m.group(2)})
    for mine_unit, factor, their_unit in _CONVERSIONS:
        if re.search(mine_unit, claim, re.IGNORECASE) and re.search(
                their_unit, support, re.IGNORECASE):
            out.update(n for n, v in mine.items()
                       if any(_close(v, t * factor, APPROX) for t in theirs))
    return out


#: the smallest endpoint of a gap read as a duration (a year, not a count)
SPAN_FROM = 100
#: a count of time spans: "six years", "ten days", "27 years"
_SPAN = re.compile(r"\b([\w.,-]+)\s+(?:years?|months?|weeks?|days?|hours?|minutes?)\b",
                   re.IGNORECASE)


def _durations(claim: str, support: str) -> set[str]:
    """Counts of years, days, ... that are the gap between two numbers stated ("six
    years, from 1792 to 1798"; "27 years after it started" in 1935, until 1962)."""
    spans = {n for m in _SPAN.finditer(claim) for n in numbers(m.group(1))}
    if not spans:
        return set()
    # endpoints are years or other large values: small numbers differ by chance
    stated = [v for v in {**_values(support), **_values(claim)}.values() if v >= SPAN_FROM]
    return {n for n in spans if any(_close(b - a, float(n), EXACT)
                                    for a, b in itertools.permutations(stated, 2))}


@lru_cache(maxsize=8192)
def derived(claim: str, support: str) -> frozenset[str]:
    """Numbers of ``claim`` (as :func:`numbers` writes them) that ``support`` gives by
    one arithmetic step (where the claim says it computes) or by a unit conversion."""
    found = _conversions(claim, support) | _durations(claim, support)
    cue = _CUE.search(claim)
    if cue:
        # the result stands after the cue ("..., which comes to £20"), or just before a
        # "years after" ("some 27 years after"); operands anywhere in the claim
        results = numbers(claim[max(0, cue.start() - CUE_REACH):])
        tolerance = APPROX if _ROUNDED.search(claim) else EXACT
        found |= _arithmetic(_values(claim), _values(support), results, tolerance)
    return frozenset(found)
