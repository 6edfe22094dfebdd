"""Codecs for smuggled payloads: candidate patterns, decoders and text transforms (used by
the decoder layer and by the classifier layers, which read decoded payloads too).

Every pattern here is a run of one character class (no nested repeats), so Python's
backtracking engine walks each text once.
"""

from __future__ import annotations

import base64
import binascii
import functools
import html
import re
import urllib.parse

#: one escape (a run, for percent-encoding, whose bytes may form one UTF-8 character)
ESCAPE = re.compile(r"(?:%[0-9A-Fa-f]{2})+|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8}|\\x[0-9A-Fa-f]{2}"
                    r"|&#[0-9]{1,7};|&#[xX][0-9A-Fa-f]{1,6};|&[A-Za-z][A-Za-z0-9]{1,30};")
ROT13 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                      "NOPQRSTUVWXYZABCDEFGHIJKLMnopqrstuvwxyzabcdefghijklm")
#: span label of an escape, by its first character
ESCAPE_KIND = {"%": "percent", "&": "html-entity", "\\": "unicode-escape"}
# leetspeak, one character for one (so spans carry over); "1" reads as i or as l
LEET_I = str.maketrans("0134578@$!|+€", "oieastbasilte")
LEET_L = str.maketrans("0134578@$!|+€", "oleastbasilte")
#: a leet character next to a letter: only then is a leet reading worth a try
LEETY = re.compile(r"[A-Za-z][0-9@$!|+€]|[0-9@$!|+€][A-Za-z]")


@functools.lru_cache(maxsize=8)
def runs(min_length: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(base64, hex) runs of at least ``min_length`` characters."""
    b64 = re.compile(rf"[A-Za-z0-9+/_-]{{{min_length},}}(?:\r?\n[A-Za-z0-9+/_-]{{4,}})*={{0,2}}")
    pairs = max(min_length // 2 - 1, 1)
    hexa = re.compile(rf"(?:0x)?[0-9A-Fa-f]{{2}}(?:[ :,]?(?:0x)?[0-9A-Fa-f]{{2}}){{{pairs},}}")
    return b64, hexa


def unescape(token: str) -> tuple[str, int]:
    """What an escape stands for (itself if nothing valid), and how many ASCII letters
    or digits it spells: writing those as escapes is never needed."""
    try:
        if token.startswith("%"):
            value = urllib.parse.unquote(token, errors="strict")
        elif token.startswith("&"):
            value = html.unescape(token)
        else:
            code = int(token[2:], 16)
            value = token if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF else chr(code)
    except (ValueError, UnicodeDecodeError):
        return token, 0
    return value, 0 if value == token else sum(c.isascii() and c.isalnum() for c in value)


#: a run long enough to be another encoding (hex or base64) nested in decoded text
_NESTED = re.compile(r"[A-Za-z0-9+/=]{16,}")


def as_text(data: bytes, min_printable: float) -> str | None:
    """``data`` as text if it is UTF-8 that reads like text (at least ``min_printable``
    printable, at least half letters, spaces, or digits inside a run of 16 or more
    base64/hex characters), else None. The digits count because hex inside base64 or hex
    inside hex decodes to text that is mostly digits, yet holds a payload one level
    further down."""
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(decoded.strip()) < 4:
        return None
    printable = sum(c.isprintable() or c in "\t\n\r" for c in decoded)
    wordy = sum(c.isalpha() or c.isspace() for c in decoded)
    wordy += sum(not c.isalpha() for m in _NESTED.finditer(decoded) for c in m.group())
    if printable < min_printable * len(decoded) or wordy < 0.5 * len(decoded):
        return None
    return decoded


def decode_b64(token: str, cap: int, min_printable: float) -> str | None:
    """Base64 (either alphabet, lines joined) of text, at most ``cap`` characters of it."""
    token = re.sub(r"\s", "", token).rstrip("=").replace("-", "+").replace("_", "/")
    token = token[: (cap * 4) // 3 // 4 * 4 + 4]
    token = token[: len(token) - len(token) % 4] if len(token) % 4 == 1 else token
    try:
        data = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return as_text(data, min_printable)


def decode_hex(token: str, cap: int, min_printable: float) -> str | None:
    """Hex pairs (``0x``, space, colon or comma separated) of text, at most ``cap`` long."""
    digits = re.sub(r"0x|[ :,]", "", token)[: 2 * cap]
    try:
        return as_text(bytes.fromhex(digits[: len(digits) // 2 * 2]), min_printable)
    except ValueError:
        return None
