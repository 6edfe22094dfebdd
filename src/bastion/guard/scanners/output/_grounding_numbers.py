"""Numbers for the grounding scanner: what a sentence states, and what its support
states in other units.

:func:`numbers` reads digits (``1,200``, ``4.95``, ``1953``) and number words
(``four``, ``twenty``, ``dozen``, ``two hundred``), normalised so ``four`` matches ``4``
and ``2,200`` ``2200``. :func:`converted` finds the numbers of a claim that state a span
of time its support states in another unit (``half an hour`` for ``30 minutes``, ``four
weeks`` for ``28 days``, the ``1300s`` for the ``14th century``), so a claim that converts
a unit is not taken for a changed number. Plain Python on short strings: microseconds per sentence.
"""

from __future__ import annotations

import re
from functools import lru_cache

NUMBER_WORDS: dict[str, str] = {
    "zero": "0", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16",
    "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30",
    "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80",
    "ninety": "90", "hundred": "100", "thousand": "1000", "dozen": "12", "twice": "2",
    "double": "2", "triple": "3", "second": "2", "third": "3",
    "fourth": "4", "fifth": "5", "sixth": "6", "seventh": "7", "eighth": "8",
    "ninth": "9", "tenth": "10", "eleventh": "11", "twelfth": "12", "thirteenth": "13",
    "fourteenth": "14", "fifteenth": "15", "sixteenth": "16", "seventeenth": "17",
    "eighteenth": "18", "nineteenth": "19", "twentieth": "20", "thirtieth": "30",
    "half": "0.5", "quarter": "0.25"}
# "one" and "first" are left out on purpose: "one" is a pronoun as often as a number
# ("one of them"), "first" an order as often as a count ("its first voyage").
# Ordinals count as their number: "the fourth floor" against "the second floor" is a
# changed number; "one sixth" and "a sixth" agree.

_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
_UNITS = {"one": 1, "first": 1, "two": 2, "second": 2, "three": 3, "third": 3, "four": 4,
          "fourth": 4, "five": 5, "fifth": 5, "six": 6, "sixth": 6, "seven": 7,
          "seventh": 7, "eight": 8, "eighth": 8, "nine": 9, "ninth": 9}
#: "twenty-four", "thirty first": one number, not two.
_COMPOUND = re.compile(rf"\b({'|'.join(_TENS)})[- ]({'|'.join(_UNITS)})\b", re.IGNORECASE)
#: "three quarters", "two-thirds": a fraction (plural, or hyphenated; "a third" stays the
#: ordinal it is as often as a fraction).
_FRACTION = re.compile(r"\b(one|two|three|four|five|\d+)[- ](quarters?|thirds?|fifths?|tenths?)\b",
                       re.IGNORECASE)
_PARTS = {"quarter": 4, "third": 3, "fifth": 5, "tenth": 10}
#: "a fifth of the total", "a tenth of": a share, not the ordinal ("a third" and "a
#: quarter" stay as they are: "a third runway", "a quarter to six").
_A_PART = re.compile(r"\b(?:a|one)\s+(fifth|tenth)\s+of\b", re.IGNORECASE)
#: "1/4", "3/4": a fraction written with a slash (a proper one, small denominator), one
#: number; "24/7" and dates ("14/10/2025") are not fractions.
_SLASHED = re.compile(r"(?<![\d/.,])(\d{1,2})/(\d{1,2})(?![\d/])")
#: "a second witness": "a second" says "another", not which one ("a third", "a fifth"
#: are shares as often as ordinals, so they stay numbers).
_ANOTHER = re.compile(r"\ban?\s+second\b", re.IGNORECASE)

#: multipliers that join the number before them: "two hundred" is 200, not 2 and 100.
_SCALES: dict[str, float] = {"hundred": 100, "thousand": 1000, "million": 1e6,
                             "billion": 1e9}
#: time units in minutes (days to weeks, hours to days, ...) and in months.
_MINUTES: dict[str, float] = {"second": 1 / 60, "minute": 1, "hour": 60, "day": 1440,
                              "week": 10080, "fortnight": 20160}
_MONTHS: dict[str, float] = {"month": 1, "year": 12, "decade": 120, "century": 1200}
#: digits not glued to letters before them (model names such as "AX3000" are names).
_DIGITS = re.compile(r"(?<![A-Za-z\d.,])\d[\d,]*(?:\.\d+)?")
_TOKENS = re.compile(r"\d[\d,]*(?:\.\d+)?(?:st|nd|rd|th|s)?|[A-Za-z]+")


def _norm(value: float | str) -> str:
    """``"4.50"`` -> ``"4.5"``, ``"1,200"`` -> ``"1200"``, ``12.0`` -> ``"12"``."""
    if isinstance(value, float):
        value = f"{value:.4f}"
    value = value.replace(",", "")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    value = value.lstrip("0") or "0"
    return "0" + value if value.startswith(".") else value


def _value(token: str) -> float | None:
    """The number a token states (``"4"``, ``"four"``, ``"14th"``, ``"a"``), or None."""
    low = token.lower()
    if low in ("a", "an", "one"):
        return 1.0
    if low in NUMBER_WORDS:
        return float(NUMBER_WORDS[low])
    digits = re.match(r"\d[\d,]*(?:\.\d+)?", low)
    return float(digits.group(0).replace(",", "")) if digits else None


#: a clock time: "3 pm", "5:30 p.m.", "1.30 pm", "15:00", "09:15".
_CLOCK = re.compile(r"(?<![\d.,])(\d{1,2})(?:[:.]([0-5]\d))?\s*[ap]\.?m\.?(?![A-Za-z])|"
                    r"(?<![\d.,])(\d{1,2}):([0-5]\d)(?!\d)", re.IGNORECASE)
#: the hours as words (their values come from :func:`_value`).
_HOURS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve")
_HOUR = rf"(\d{{1,2}}|{'|'.join(_HOURS)})"
#: minutes before or after the hour in words: "quarter to six", "twenty to ten", "five
#: past six". Five, ten, twenty or twenty-five "to" an hour only after a word that sets a
#: time ("at", "by", "until", ...): "five to ten people" is a count.
_MINUTE = r"half|quarter|five|ten|twenty(?:[- ]five)?"
_SET_TIME = "|".join(rf"(?<=\b{w} )" for w in ("at", "by", "until", "till", "before",
                                                  "after", "about", "around"))
#: a clock time in words: "half past five", "quarter to six", "half six", "noon".
_WORDED = re.compile(
    rf"\b(?<!and a )(?:(?P<part>{_MINUTE})\s+(?P<way>past)\s+(?P<hour>{_HOUR[1:-1]})|"
    rf"(?:(?P<near>half|quarter)|(?:{_SET_TIME})(?P<far>{_MINUTE}))\s+to\s+"
    rf"(?P<next>{_HOUR[1:-1]})(?!\s+\w+s\b)|"
    rf"half\s+(?P<half>{_HOUR[1:-1]})(?!\s+\w+s\b)|(?P<oclock>{_HOUR[1:-1]})\s+o'?clock|"
    r"(?P<named>noon|midday|midnight))\b", re.IGNORECASE)
_PAST_MINUTES = {"half": 30, "quarter": 15, "five": 5, "ten": 10, "twenty": 20}


def _hour(word: str) -> int:
    return int(_value(word) or 0)


def _twelve(hour: int, minutes: int) -> str:
    """A clock time as hours on the 12-hour clock, one number: the form every way of
    writing it shares ("15:00", "3 pm" and "three o'clock" read "3", "17:30", "5.30 pm"
    and "half past five" read "5.5"; am and pm are not told apart)."""
    return _norm((hour % 12 or 12) + minutes / 60)


def _clock(m: re.Match[str]) -> str:
    hour, minutes = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return _twelve(int(hour), int(minutes or 0))


#: "two and a half", "3 and a half": one number.
_AND_A_HALF = re.compile(rf"\b(\d+|{'|'.join(_HOURS)})\s+and\s+a\s+half\b", re.IGNORECASE)
#: "an hour and a half", "a year and a half": 1.5 of the unit.
_UNIT_AND_A_HALF = re.compile(r"\b(?:an?|one)\s+(second|minute|hour|day|week|month|year)"
                              r"\s+and\s+a\s+half\b", re.IGNORECASE)


def _worded(m: re.Match[str]) -> str:
    if m["named"]:
        return "12"
    if m["oclock"]:
        return _twelve(_hour(m["oclock"]), 0)
    if m["half"]:  # "half six" is half past six
        return _twelve(_hour(m["half"]), 30)
    part = (m["part"] or m["near"] or m["far"]).lower()
    words = re.split(r"[- ]", part)
    minutes = _PAST_MINUTES[words[0]] + (5 if len(words) > 1 else 0)  # "twenty-five"
    if m["way"]:
        return _twelve(_hour(m["hour"]), minutes)
    return _twelve(_hour(m["next"]) - 1, 60 - minutes)


def _slashed(m: re.Match[str]) -> str:
    top, bottom = int(m.group(1)), int(m.group(2))
    return _norm(top / bottom) if 0 < top < bottom <= 16 else m.group(0)


def _spelled_out(text: str) -> str:
    """``text`` with compound number words and fractions as digits: ``"twenty-four"`` ->
    ``"24"``, ``"three quarters"`` -> ``"0.75"``, ``"two thirds"`` -> ``"0.6667"``; clock
    times, in digits or words, on the 12-hour clock (:func:`_twelve`)."""
    text = _UNIT_AND_A_HALF.sub(lambda m: f"1.5 {m.group(1)}s", text)
    text = _SLASHED.sub(_slashed, text)
    text = _A_PART.sub(lambda m: f"{_norm(1 / _PARTS[m.group(1).lower()])} of", text)
    text = _AND_A_HALF.sub(lambda m: f"{_hour(m.group(1))}.5", text)
    text = _CLOCK.sub(_clock, _WORDED.sub(_worded, text))
    def compound(m: re.Match[str]) -> str:
        return str(_TENS[m.group(1).lower()] + _UNITS[m.group(2).lower()])

    def fraction(m: re.Match[str]) -> str:
        count = float(_value(m.group(1)) or 0.0)
        part = _PARTS[m.group(2).lower().rstrip("s")]
        if not m.group(2).lower().endswith("s") and "-" not in m.group(0) and count != 1:
            return m.group(0)  # "two quarter pounders": not a fraction
        return _norm(count / part)
    return _FRACTION.sub(fraction, _COMPOUND.sub(compound, text))


@lru_cache(maxsize=8192)
def numbers(text: str) -> frozenset[str]:
    """Numbers in ``text``, normalised: ``"1,200"`` -> ``"1200"``, ``"4.50"`` -> ``"4.5"``,
    ``"four"`` -> ``"4"``, ``"two hundred"`` -> ``"200"``, ``"twenty-four"`` -> ``"24"``,
    ``"three quarters"`` -> ``"0.75"``."""
    text = _spelled_out(text)
    found = {_norm(raw) for raw in _DIGITS.findall(text)}
    tokens = [t.lower() for t in re.findall(r"[A-Za-z]+|\d[\d,]*(?:\.\d+)?", text)]
    for i, tok in enumerate(tokens):
        for part in tok.split("-"):
            if part in NUMBER_WORDS and not (part in _SCALES and i and
                                             _value(tokens[i - 1]) is not None):
                found.add(NUMBER_WORDS[part])
        if tok in _SCALES and i and (before := _value(tokens[i - 1])) is not None \
                and tokens[i - 1] not in ("a", "an", "one"):
            found.discard(_norm(tokens[i - 1]) if tokens[i - 1][0].isdigit()
                          else NUMBER_WORDS.get(tokens[i - 1], ""))
            found.add(_norm(before * _SCALES[tok]))
    for w in re.findall(r"[A-Za-z]+(?:-[A-Za-z]+)+", text):  # "five-year", "twenty-four"
        found.update(NUMBER_WORDS[p] for p in w.lower().split("-") if p in NUMBER_WORDS)
    return frozenset(found)


def another(text: str) -> frozenset[str]:
    """Numbers ``text`` states only as "a second ..." ("choose a second witness"): a claim
    that asks for another of something states no count, whatever its support counts."""
    return numbers(text) - numbers(_ANOTHER.sub("another", text))


def _unit(word: str) -> str:
    """``"minutes"`` -> ``"minute"``, ``"centuries"`` -> ``"century"``."""
    word = word.lower()
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if word.endswith("s") else word


@lru_cache(maxsize=8192)
def quantities(text: str) -> frozenset[tuple[str, str, float]]:
    """The spans of time in ``text``: ``(number as written, scale, amount)`` with the
    amount in minutes (``scale="minute"``: seconds to fortnights) or months (``"month"``:
    months to centuries), and years for periods (``"year"``): ``"half an hour"`` ->
    ``("0.5", "minute", 30)``, ``"four weeks"`` -> ``("4", "minute", 40320)``, ``"the
    14th century"`` and ``"the 1300s"`` -> ``(.., "year", 1300)``. Two sentences that
    state the same amount in different units agree on it; ``"three quarters of an hour"``
    is ``("0.75", "minute", 45)``."""
    tokens = _TOKENS.findall(_spelled_out(text))
    out: set[tuple[str, str, float]] = set()
    for i, token in enumerate(tokens):
        value = _value(token)
        if value is None:
            continue
        written = _norm(value)
        low = token.lower()
        if low.endswith("0s") and value >= 100:  # "the 1300s"
            out.add((written, "year", value))
            continue
        after = i + 1
        if after < len(tokens) and tokens[after].lower() in _SCALES:  # "two hundred years"
            value *= _SCALES[tokens[after].lower()]
            written, after = _norm(value), after + 1
        if (value < 1 and after + 2 < len(tokens) and tokens[after].lower() == "of"
                and tokens[after + 1].lower() in ("a", "an")):
            after += 2  # "0.75 of an hour"
        unit = _unit(tokens[after]) if after < len(tokens) else ""
        if unit == "century" and low.endswith(("st", "nd", "rd", "th")):
            out.add((written, "year", (value - 1) * 100))  # the 14th century: the 1300s
            continue
        if low in ("a", "an") and i and tokens[i - 1].lower() == "half":
            written, value = "0.5", 0.5  # "half an hour"
        for scale, table in (("minute", _MINUTES), ("month", _MONTHS)):
            if unit in table:
                out.add((written, scale, round(value * table[unit], 6)))
    return frozenset(out)


#: a percentage: "50%", "25 per cent", "10 percent".
_PERCENT = re.compile(r"(?<![\d.,])(\d+(?:\.\d+)?)\s*(?:%|per ?cent\b)", re.IGNORECASE)


def _percents(text: str) -> frozenset[int]:
    """The whole percentages ``text`` states (``"50%"`` -> ``{50}``)."""
    return frozenset(round(float(p)) for p in _PERCENT.findall(text))


def _as_percent(number: str) -> int | None:
    """A fraction below 1 as a whole percentage (``"0.5"`` -> 50), else None."""
    value = float(number)
    return round(value * 100) if 0 < value < 1 else None


def converted(claim: str, support: str) -> frozenset[str]:
    """Numbers of ``claim`` that state, in another unit, a span of time ``support`` states
    (``"half an hour"`` against ``"30 minutes"``: ``{"0.5"}``), or as a fraction what
    it states as a percentage, or the reverse (``"half the total"`` against ``"50% of
    the total"``: ``{"0.5"}``; ``"25%"`` against ``"a quarter"``: ``{"25"}``)."""
    theirs = {(scale, amount) for _, scale, amount in quantities(support)}
    out = {n for n, scale, amount in quantities(claim) if (scale, amount) in theirs}
    their_percents = _percents(support)
    if their_percents:
        out.update(n for n in numbers(claim) if _as_percent(n) in their_percents)
    my_percents = _percents(claim)
    if my_percents:
        fractions = {_as_percent(n) for n in numbers(support)}
        out.update(str(p) for p in my_percents if p in fractions)
    return frozenset(out)


def unit_changed(claim: str, support: str) -> frozenset[str]:
    """Numbers of ``claim`` that count a span of time ``support`` counts with the same
    number in another unit (``"six months"`` against ``"six weeks"``): the number agrees,
    the amount does not."""
    theirs = quantities(support)
    amounts = {(scale, amount) for _, scale, amount in theirs}
    counted = {n for n, _, _ in theirs}
    return frozenset(n for n, scale, amount in quantities(claim)
                     if n in counted and (scale, amount) not in amounts)
