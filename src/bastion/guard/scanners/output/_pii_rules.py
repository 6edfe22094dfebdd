"""Detectors behind the PII scanner: one function per entity type, each yielding spans.

Every detector takes the text and yields ``(start, end)`` character offsets of the entities
it is sure about (API keys and other secrets live in :mod:`._secret_rules`). Patterns run
on RE2 (linear time, whatever the input); what a regular expression cannot say (a Luhn or
mod-97 checksum, an SSN's unissued ranges, an address that :mod:`ipaddress` accepts, token
boundaries RE2 has no look-around for) is checked in Python on each candidate.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import re2

Spans = Iterator[tuple[int, int]]

ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_DIGITS = frozenset("0123456789")


def isolated(text: str, start: int, end: int, inner: frozenset[str]) -> bool:
    """True when the characters just outside ``text[start:end]`` are not in ``inner``."""
    return (start == 0 or text[start - 1] not in inner) and (
        end == len(text) or text[end] not in inner)


def _number_isolated(text: str, start: int, end: int) -> bool:
    """A number not glued to more digits, directly or through '.' or '-' (1.2.3.4.5)."""
    if start > 0 and (text[start - 1] in _DIGITS or (
            text[start - 1] in ".-" and start > 1 and text[start - 2] in _DIGITS)):
        return False
    return not (end < len(text) and (text[end] in _DIGITS or (
        text[end] in ".-" and end + 1 < len(text) and text[end + 1] in _DIGITS)))


# --- email ------------------------------------------------------------------------------
_EMAIL = re2.compile(r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                     r"[A-Za-z]{2,63}")


def emails(text: str) -> Spans:
    for m in _EMAIL.finditer(text):
        start, end = m.span()
        while text[start] in ".-":  # a local part never starts with these
            start += 1
        # The domain is greedy, so only a glued letter or digit ("a@b.com2") can follow.
        if text[start] != "@" and (end == len(text) or text[end] not in ALNUM):
            yield start, end


# --- payment cards ------------------------------------------------------------------------
# (first digits low, high, allowed lengths); public IIN ranges of the major networks.
_IIN: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),                    # Visa
    (51, 55, frozenset({16})), (2221, 2720, frozenset({16})),  # Mastercard
    (34, 34, frozenset({15})), (37, 37, frozenset({15})),      # American Express
    (6011, 6011, frozenset(range(16, 20))), (644, 649, frozenset(range(16, 20))),
    (65, 65, frozenset(range(16, 20))),                  # Discover
    (300, 305, frozenset(range(14, 20))), (36, 36, frozenset(range(14, 20))),
    (38, 39, frozenset(range(16, 20))),                  # Diners Club
    (3528, 3589, frozenset(range(16, 20))),              # JCB
    (62, 62, frozenset(range(16, 20))),                  # UnionPay
    (2200, 2204, frozenset(range(16, 20))),              # Mir
    (5018, 5018, frozenset(range(13, 20))), (5020, 5020, frozenset(range(13, 20))),
    (5038, 5038, frozenset(range(13, 20))), (5893, 5893, frozenset(range(13, 20))),
    (6304, 6304, frozenset(range(13, 20))), (6759, 6759, frozenset(range(13, 20))),
    (6761, 6763, frozenset(range(13, 20))),              # Maestro
)
_DIGIT_RUN = re2.compile(r"\d(?:[ -]?\d)*")
_GROUP = re2.compile(r"\d+")


def luhn_valid(digits: str) -> bool:
    """The Luhn mod-10 check every payment card number passes."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_number_valid(digits: str) -> bool:
    """Length and prefix of a known network, and the Luhn check."""
    for low, high, lengths in _IIN:
        prefix = int(digits[: len(str(low))])
        if low <= prefix <= high and len(digits) in lengths:
            return luhn_valid(digits)
    return False


def cards(text: str) -> Spans:
    for run in _DIGIT_RUN.finditer(text):
        if not _number_isolated(text, *run.span()):
            continue
        base = run.start()
        groups = [(base + g.start(), base + g.end()) for g in _GROUP.finditer(run.group())]
        # Try whole groups only ("4111 1111 1111 1111 2025" holds a card and a year):
        # from each group, the longest window of 13-19 digits that is a valid number.
        i = 0
        while i < len(groups):
            found = None
            digits = ""
            for j in range(i, len(groups)):
                digits += text[groups[j][0]:groups[j][1]]
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and card_number_valid(digits):
                    found = j
            if found is None:
                i += 1
                continue
            yield groups[i][0], groups[found][1]
            i = found + 1


# --- IBAN -------------------------------------------------------------------------------
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20,
    "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
    "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30,
    "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}
# Compact, or printed in groups of four separated by single spaces (the standard form).
_IBAN = re2.compile(r"\b[A-Z]{2}\d{2}"
                    r"(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)\b")


def iban_valid(iban: str) -> bool:
    """ISO 13616: the country's length, then mod 97 of the rearranged number equals 1."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isascii() or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def ibans(text: str) -> Spans:
    for m in _IBAN.finditer(text):
        start, end = m.span()
        length = IBAN_LENGTHS.get(text[start:start + 2])
        if length is None:
            continue
        # A spaced IBAN may be followed by a short code ("... 3201 EUR"): cut at its length.
        count = 0
        for k in range(start, end):
            if text[k] != " ":
                count += 1
            if count == length:
                if k + 1 == end or text[k + 1] == " ":
                    end = k + 1
                break
        if iban_valid(text[start:end].replace(" ", "")):
            yield start, end


# --- national identifiers ---------------------------------------------------------------------
_SSN = re2.compile(r"\b(\d{3})([- ])(\d{2})([- ])(\d{4})\b")


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """US SSNs never use area 000, 666 or 900-999, group 00 or serial 0000."""
    return (area not in ("000", "666") and area[0] != "9" and group != "00"
            and serial != "0000")


def us_ssns(text: str) -> Spans:
    # Only the dashed or spaced form: nine bare digits are far more often something else.
    for m in _SSN.finditer(text):
        if m.group(2) == m.group(4) and _number_isolated(text, *m.span()) and ssn_valid(
                m.group(1), m.group(3), m.group(5)):
            yield m.span()


# UK National Insurance numbers: two prefix letters (D, F, I, Q, U, V never used; O not
# second), six digits, suffix A-D; prefixes BG, GB, KN, NK, NT, TN, ZZ never allocated.
_NINO = re2.compile(r"\b([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_NINO_UNUSED = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def uk_ninos(text: str) -> Spans:
    for m in _NINO.finditer(text):
        if m.group(1) not in _NINO_UNUSED:
            yield m.span()


# --- IP addresses ---------------------------------------------------------------------------
_IPV4 = re2.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_IPV6 = re2.compile(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}")
HEX = frozenset("0123456789abcdefABCDEF")


def ipv4s(text: str) -> Spans:
    for m in _IPV4.finditer(text):
        if _number_isolated(text, *m.span()):
            try:
                ipaddress.IPv4Address(m.group())
            except ValueError:  # 999.1.1.1, leading zeros
                continue
            yield m.span()


def ipv6s(text: str) -> Spans:
    for m in _IPV6.finditer(text):
        start, end = m.span()
        if end > start + 1 and text[end - 1] == ":" and text[end - 2] != ":":
            end -= 1  # "... at 2001:db8::1:" ends a clause, not the address
        candidate = text[start:end]
        # Fewer than 5 hex digits is more often code ("a::b", "std::") than an address.
        if sum(ch in HEX for ch in candidate) < 5 or not isolated(
                text, start, end, ALNUM | frozenset(":")):
            continue
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield start, end
