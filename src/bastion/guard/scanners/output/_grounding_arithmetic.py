"""Numbers an answer works out from its support: sums, differences, products, ratios and
unit conversions, so a computed total is not taken for a changed number.

:func:`derived` returns the numbers of a claim that follow from its support in one step:

- **arithmetic**, only where the claim says it computes ("which comes to", "so", "in
  total", "that's", "works out at", "saves"): a number of the claim equal to ``a + b``,
  ``a - b``, ``a * b`` or ``a / b`` for ``a`` from the support and ``b`` from the
  support or the claim ("two flues at £55 each would set you back £110"); the claim's
  own operand counts as derived with it. A ratio between two numbers of the support
  ("juniors pay half that" where the support lists £18 and £9) is derived as well.
- **percentages** of a context amount, or the amount less or plus one, after such a cue
  ("save 10%, bringing each box down to £58.50"); amounts in pence or cents read in
  pounds or dollars ("a saving of 80p"); a **rate** of the support scaled to a quantity
  the claim states in its unit ("6 tablespoons" for 2 kg at "3 tablespoons per 1 kg").
- **conversions** where the claim names the other unit (numbers the support writes in
  that unit only): °C and °F, km and miles, km/h
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
    r"\b(?:years?|months?|days?) (?:after|before|later|earlier)\b|=|"
    r"\bhalv(?:e|es|ed|ing)\b|\bdoubl(?:e|es|ed|ing)\b|\bbring(?:s|ing)\b|"
    r"\bcombin(?:e|es|ed|ing)\b|\bleav(?:es|ing)\b|\bcosting\b|"
    r"(?<=\d)p?\s(?:more|less|cheaper|extra)\b",
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


#: an amount in pence or cents ("80p", "45 cents"): a hundredth of the unit prices use
_PENCE = re.compile(r"(?<![\d.,£$€])(\d+)\s*(?:p|c|pence|cents?)\b")


def _claim_values(text: str) -> dict[str, float]:
    """:func:`_values` of a claim, an amount in pence or cents read in pounds or dollars
    ("a saving of 80p" from £3.20 and £2.40)."""
    out = _values(text)
    for m in _PENCE.finditer(text):
        out[m.group(1)] = int(m.group(1)) / 100
    return out


#: a percentage: "10%", "50 per cent"
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|per ?cent\b)", re.IGNORECASE)


def _percentages(claim: dict[str, float], support: dict[str, float], text: str,
                 results: frozenset[str]) -> set[str]:
    """Claim numbers among ``results`` that are a percentage of a support amount, or the
    amount less or plus that percentage ("save 10%, bringing each box down to £58.50"
    from £65; "reduced by 50%": £35 from £70); the percentages are those of ``text``,
    the claim and its support."""
    shares = [float(p) / 100 for p in _PERCENT.findall(text)]
    stated = set(numbers(" ".join(_PERCENT.findall(text))))  # operands, not results
    return {name for name, target in claim.items()
            if name in results and name not in support and name not in stated and any(
                _close(a * f, target, EXACT) for a in support.values() for p in shares
                for f in (p, 1 - p, 1 + p))}


#: a rate: "3 tablespoons of salt per 1 kg", "2 staff for each 10 children"
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s+([a-z]+)\b[^.;]{0,40}?\b(?:per|for each|for every)"
                   r"\s+(?:(\d+(?:\.\d+)?)\s+|one\s+|an?\s+|each\s+)?([a-z]+)",
                   re.IGNORECASE)
_AMOUNT = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)", re.IGNORECASE)


def _unit_stem(word: str) -> str:
    word = word.lower()
    return word[:-1] if word.endswith("s") and len(word) > 3 else word


def _scaled(claim: str, support: str) -> set[str]:
    """Claim amounts that scale a rate of the support to a quantity the claim states in
    the rate's own units: "6 tablespoons" for "2 kg" at "3 tablespoons ... per 1 kg"."""
    amounts = [(m.group(1), float(m.group(1)), _unit_stem(m.group(2)))
               for m in _AMOUNT.finditer(claim)]
    out: set[str] = set()
    for m in _RATE.finditer(support):
        rate = float(m.group(1)) / float(m.group(3) or 1)
        unit, per = _unit_stem(m.group(2)), _unit_stem(m.group(4))
        for _, quantity, q_unit in amounts:
            if q_unit == per:
                out.update(n for n, v, u in amounts if u == unit
                           and _close(rate * quantity, v, EXACT))
    return out


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
        if re.search(mine_unit, claim, re.IGNORECASE):
            measured = _measured(support, their_unit)
            out.update(n for n, v in mine.items()
                       if any(_close(v, t * factor, APPROX) for t in measured))
    return out


#: characters before a unit where its number stands ("5 to 7 km", "up to 30 metres")
UNIT_REACH = 12


def _measured(text: str, unit: str) -> list[float]:
    """The numbers ``text`` states in ``unit`` (a pattern): those just before it. Only
    these convert: "30 metres" is no half hour however many minutes the text names."""
    return [abs(v) for m in re.finditer(unit, text, re.IGNORECASE)
            for v in _values(text[max(0, m.start() - UNIT_REACH):m.start()]).values()]


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
def derived(claim: str, support: str, amounts: frozenset[str] = frozenset()) -> frozenset[str]:
    """Numbers of ``claim`` (as :func:`numbers` writes them) that ``support`` gives by
    one arithmetic step (where the claim says it computes) or by a unit conversion.
    ``amounts``: the other numbers of the context, whose percentages a claim may work
    out (a price stated in one sentence, its discount in another)."""
    found = _conversions(claim, support) | _durations(claim, support) | _scaled(
        claim, support)
    cue = _CUE.search(claim)
    if cue:
        # the result stands after the cue ("..., which comes to £20"), or just before a
        # "years after" ("some 27 years after"); operands anywhere in the claim
        results = numbers(claim[max(0, cue.start() - CUE_REACH):])
        tolerance = APPROX if _ROUNDED.search(claim) else EXACT
        mine, theirs = _claim_values(claim), _values(support)
        found |= _arithmetic(mine, theirs, results, tolerance)
        found |= _percentages(mine, {**theirs, **{n: float(n) for n in amounts}},
                              f"{claim} {support}", results)
    return frozenset(found)
