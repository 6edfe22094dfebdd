"""Detectors for API keys and secrets, used by the PII scanner (see :mod:`._pii_rules`)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import re2

from bastion.guard.scanners.output._pii_rules import ALNUM, HEX, Spans, isolated

_TOKEN_INNER = ALNUM | frozenset("_-")
SECRET_PATTERNS: dict[str, Any] = {  # values: compiled RE2 patterns
    "aws_access_key": re2.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}"),
    "github_token": re2.compile(r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,255}"),
    "slack_token": re2.compile(r"xox[bpars]-[A-Za-z0-9-]{10,250}"),
    "openai_key": re2.compile(r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,250}"),
    "google_api_key": re2.compile(r"AIza[0-9A-Za-z_-]{35}"),
    "jwt": re2.compile(r"eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"),
}
# The header alone, or header through footer: the body between is the secret.
_PEM = re2.compile(r"-----BEGIN [A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?-----(?:"
                   r"[A-Za-z0-9+/=\s:,.-]*?-----END [A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?-----"
                   r"|(?:\s+[A-Za-z0-9+/=]{8,})*)")


def secrets_of(kind: str, text: str) -> Spans:
    for m in SECRET_PATTERNS[kind].finditer(text):
        start, end = m.span()
        if not isolated(text, start, end, _TOKEN_INNER):
            continue
        if kind == "openai_key":  # "sk-" + kebab-case words is not a key; keys mix in digits
            body = text[start + 3:end]
            if not (any(c.isdigit() for c in body) and any(c.isalpha() for c in body)):
                continue
        yield start, end


def private_keys(text: str) -> Spans:
    for m in _PEM.finditer(text):
        yield m.span()


def shannon_entropy(token: str) -> float:
    """Bits per character of the token's own character distribution."""
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in Counter(token).values())


_WORDLIKE = re2.compile(r"[A-Z]?[a-z]{3,}")
_SEPARATORS = re2.compile(r"[+/_=-]+")


def wordlike_share(token: str) -> float:
    """Share of characters in lower-case runs of 3+ letters, with a capital in front.

    Identifiers are made of words ("AbstractProxyFactoryBean1": 0.97); in random base62
    or base64 such runs are short and rare (median about 0.15, 95% below 0.5 at 24
    characters, and lower the longer the token).
    """
    return sum(m.end() - m.start() for m in _WORDLIKE.finditer(token)) / max(1, len(token))


def high_entropy_tokens(text: str, min_length: int, threshold: float) -> Spans:
    """Long random-looking tokens: unnamed API keys, passwords, signed-URL parameters.

    Kept quiet on ordinary text and code: a token must be ``min_length`` long and mix
    upper case, lower case and digits; it must not be hexadecimal (commit ids, checksums
    and UUIDs are not secrets); it must not be short parts joined by more than one
    separator per 12 characters (``ResNet50_Weights-IMAGENET1K_V2`` is a name); it must
    reach ``threshold`` bits of Shannon entropy per character; and fewer than half its
    characters may sit in word-like runs (see :func:`wordlike_share`).
    """
    pattern = re2.compile(f"[A-Za-z0-9+/_-]{{{min_length},}}={{0,2}}")  # cached by re2
    for m in pattern.finditer(text):
        token = m.group()
        if all(ch in HEX or ch == "-" for ch in token):
            continue
        if not (any(c.islower() for c in token) and any(c.isupper() for c in token)
                and any(c.isdigit() for c in token)):
            continue
        pieces = _SEPARATORS.split(token)
        if len(pieces) - 1 > len(token) / 12 and max(len(piece) for piece in pieces) < 16:
            continue  # short parts joined by many separators: a name, not random
        if shannon_entropy(token) >= threshold and wordlike_share(token) < 0.5:
            yield m.span()
