"""Find instructions smuggled inside encodings, decode them and run the rules on them.

An attacker who writes "ignore previous instructions" in base64, hex, percent-encoding,
``\\u`` escapes, HTML entities, rot13, leetspeak or backwards gets past signature and
classifier layers unless someone decodes it first. The decoder finds each of these,
decodes it and runs a :class:`RulesScanner` on the result:

- base64 (standard and URL-safe; 76-column lines joined) and hex runs of at least
  ``min_length`` characters count only when they decode to UTF-8 text with at least
  ``min_printable`` printable characters, mostly letters and spaces or a nested run of
  base64/hex (a hash, a UUID or an image header decodes to bytes, not text). Their text
  is decoded again, up to ``max_depth`` levels (base64 of base64, hex inside base64).
- escapes (``%69``, ``\\u0069``, ``\\x69``, ``&#105;``, ``&amp;``) are decoded in place.
  Writing a plain letter or digit as an escape is never needed, so three or more such
  escapes count as a payload; a URL's ``%20`` does not.
- rot13, reversed text and leetspeak of the whole text count only through rules that
  match the transformed text but not the text itself (rot13 of English is gibberish
  that matches nothing, so a match there was written on purpose).

Score: the largest of ``base_score`` (a payload decodes to text) and the rules score of
what it decodes to. Spans point at the encoded text, labelled with the encoding
("base64", "base64>hex" when nested, "percent", "rot13", ...). Work is bounded: at most
``max_decoded_chars`` decoded characters and 4,096 decode attempts per level. The
decoder does not rewrite the text (``sanitized`` is the input).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from bastion.errors import ConfigError
from bastion.guard.base import Finding, ScanContext, Scanner, Span
from bastion.guard.codecs import (
    ESCAPE,
    ESCAPE_KIND,
    LEET_I,
    LEET_L,
    LEETY,
    ROT13,
    decode_b64,
    decode_hex,
    runs,
    unescape,
)
from bastion.guard.scanners.input.rules import RuleMatch, RulesScanner

#: decode attempts per level, and escapes decoded per text: bounds on the work per scan
MAX_ATTEMPTS = 4096
MAX_ESCAPES = 4096

@dataclass
class _Budget:
    left: int  # characters that may still be decoded in this scan


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    label: str
    score: float
    detail: str


class DecoderScanner(Scanner):
    """Decodes smuggled payloads (base64, hex, escapes, rot13, reversed, leet) and rescans them.

    Args:
        name: instance name (default ``"decoder"``).
        threshold: default 0.5, the rules scanner's: a decoded injection blocks, a
            payload that decodes to harmless text (``base_score``) does not.
        action: default ``"block"``.
        rules: the :class:`RulesScanner` to run on decoded text (default: the built-in
            rules, built on first use).
        max_depth: how many encodings deep to decode (default 3).
        max_decoded_chars: total characters decoded per scan (default 65,536).
        min_length: shortest base64 or hex run considered (default 16 characters).
        min_printable: share of printable characters decoded text needs (default 0.9).
        base_score: score of a payload that decodes to text the rules find harmless.
    """

    kind = "decoder"
    direction = "input"

    def __init__(self, *, name: str | None = None, threshold: float = 0.5,
                 action: str = "block", rules: RulesScanner | None = None,
                 max_depth: int = 3, max_decoded_chars: int = 65536, min_length: int = 16,
                 min_printable: float = 0.9, base_score: float = 0.2) -> None:
        self._init_common(name, threshold, action)
        self.rules = rules
        self.max_depth = max_depth
        self.max_decoded_chars = max_decoded_chars
        self.min_length = min_length
        self.min_printable = min_printable
        self.base_score = base_score

    def validate(self) -> None:
        super().validate()
        for key in ("max_depth", "max_decoded_chars", "min_length"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{self.name}: {key} must be a positive integer, got {value!r}")
        for key in ("min_printable", "base_score"):
            if not 0.0 <= float(getattr(self, key)) <= 1.0:
                raise ConfigError(f"{self.name}: {key} must be in [0, 1], got "
                                  f"{getattr(self, key)!r}")
        self._rules().validate()

    def _rules(self) -> RulesScanner:
        if self.rules is not None:
            return self.rules
        cached: RulesScanner | None = getattr(self, "_default_rules", None)
        if cached is None:
            cached = self._default_rules = RulesScanner()
        return cached

    def _scan(self, text: str, context: ScanContext) -> Finding:
        hits = self._analyse(text, 0, _Budget(int(self.max_decoded_chars)))
        if not hits:
            return Finding(0.0, "no encoded payload found")
        score = max(h.score for h in hits)
        kinds = sorted({h.label for h in hits})
        details = dict.fromkeys(h.detail for h in sorted(hits, key=lambda h: -h.score))
        detail = "; ".join(list(details)[:4])
        spans = tuple(Span(h.start, h.end, h.label) for h in hits[:64])
        return Finding(score, f"{len(hits)} payload(s) ({', '.join(kinds)}): {detail}",
                       spans=spans)

    # --- the three kinds of hiding -------------------------------------------------------
    def _analyse(self, text: str, depth: int, budget: _Budget,
                 own: list[RuleMatch] | None = None) -> list[_Hit]:
        own = self._rules().matches(text) if own is None else own
        hits = self._segments(text, depth, budget)
        hits += self._escapes(text, own)
        hits += self._transforms(text, own)
        return hits

    def _segments(self, text: str, depth: int, budget: _Budget) -> list[_Hit]:
        hits: list[_Hit] = []
        b64, hexa = runs(int(self.min_length))
        candidates = itertools.chain(
            itertools.islice((("hex", m) for m in hexa.finditer(text)), MAX_ATTEMPTS),
            itertools.islice((("base64", m) for m in b64.finditer(text)), MAX_ATTEMPTS))
        taken: list[tuple[int, int]] = []
        for kind, m in candidates:
            if budget.left <= 0:
                break
            token = m.group()
            if any(s <= m.start() < e for s, e in taken):
                continue
            cap = max(budget.left // 2, 1)
            decoded = (decode_hex if kind == "hex" else decode_b64)(token, cap, self.min_printable)
            if decoded is None and kind == "base64" and "\n" in token:
                line = token.split("\n")[0].strip()
                decoded = decode_b64(line, cap, self.min_printable) \
                    if len(line) >= self.min_length else None
            if decoded is None:
                continue
            taken.append((m.start(), m.end()))
            budget.left -= len(decoded)
            matches = self._rules().matches(decoded)
            nested = self._analyse(decoded, depth + 1, budget, matches) \
                if depth + 1 < self.max_depth else []
            score = max([self.base_score, _combine(matches)] + [h.score for h in nested])
            inner = max(nested, key=lambda h: h.score) if nested else None
            label = kind + (f">{inner.label}" if inner and inner.score > self.base_score else "")
            found = _ids(matches) or (inner.detail if inner else "no rule")
            hits.append(_Hit(m.start(), m.end(), label, score,
                             f"{label} at {m.start()}-{m.end()} decodes to "
                             f"{decoded[:60]!r} ({found})"))
        return hits

    def _escapes(self, text: str, own: list[RuleMatch]) -> list[_Hit]:
        found = list(itertools.islice(ESCAPE.finditer(text), MAX_ESCAPES))
        if not found:
            return []
        parts, last, needless = [], 0, 0
        runs: list[list[int]] = []  # [start, end] of escapes that touch each other
        for m in found:
            value, letters = unescape(m.group())
            parts += [text[last:m.start()], value]
            last, needless = m.end(), needless + letters
            if runs and runs[-1][1] == m.start():
                runs[-1][1] = m.end()
            else:
                runs.append([m.start(), m.end()])
        decoded = "".join([*parts, text[last:]])
        new = _new(self._rules().matches(decoded), own)
        score = max(self.base_score if needless >= 3 else 0.0, _combine(new))
        if score <= 0.0:
            return []
        detail = f"escapes decode to {decoded[:60]!r} ({_ids(new) or 'no rule'})"
        return [_Hit(s, e, ESCAPE_KIND[text[s]], score, detail) for s, e in runs[:16]]

    def _transforms(self, text: str, own: list[RuleMatch]) -> list[_Hit]:
        views = [("rot13", text.translate(ROT13)), ("reversed", text[::-1])]
        if LEETY.search(text):
            views.append(("leet", text.translate(LEET_I)))
            if "1" in text:
                views.append(("leet", text.translate(LEET_L)))
        hits: list[_Hit] = []
        n = len(text)
        for label, view in views:
            new = _new(self._rules().matches(view), own)
            for m in new:
                start, end = (n - m.end, n - m.start) if label == "reversed" else (m.start, m.end)
                hits.append(_Hit(start, end, label, _combine(new),
                                 f"{label} text matches {_ids(new)}"))
        return hits


def _combine(matches: list[RuleMatch]) -> float:
    weights = {m.rule.id: m.rule.weight for m in matches}
    return 1.0 - math.prod(1.0 - w for w in weights.values())


def _new(matches: list[RuleMatch], own: list[RuleMatch]) -> list[RuleMatch]:
    seen = {m.rule.id for m in own}
    return [m for m in matches if m.rule.id not in seen]


def _ids(matches: list[RuleMatch]) -> str:
    return ", ".join(sorted({m.rule.id for m in matches}))
