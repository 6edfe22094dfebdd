"""PII and secrets: find them, replace each with ``[REDACTED:<TYPE>]``.

Checks what can be checked instead of matching shapes alone: card numbers pass Luhn and
start with a known network's prefix, IBANs have their country's length and pass mod 97,
SSNs avoid the ranges never issued, IP addresses parse, phone numbers are valid numbers
for their region (``phonenumbers``). Patterns run on RE2, linear in the input's length.

Example::

    >>> PII().scan("Mail jane@example.com, card 4111 1111 1111 1111.").sanitized
    'Mail [REDACTED:EMAIL], card [REDACTED:CREDIT_CARD].'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import ClassVar

import phonenumbers

from bastion.errors import ConfigError
from bastion.guard.base import Finding, ScanContext, Scanner, Span
from bastion.guard.scanners.output import _pii_rules as rules
from bastion.guard.scanners.output import _secret_rules as secrets

#: every entity type, in the order that breaks ties between equally long overlapping matches
ENTITIES: tuple[str, ...] = (
    "private_key", "jwt", "aws_access_key", "github_token", "slack_token", "openai_key",
    "google_api_key", "email", "iban", "credit_card", "us_ssn", "uk_nino", "ipv6", "ipv4",
    "phone", "high_entropy",
)
#: names that stand for several entity types in ``entities``
GROUPS: dict[str, tuple[str, ...]] = {
    "secrets": ("private_key", "jwt", "aws_access_key", "github_token", "slack_token",
                "openai_key", "google_api_key", "high_entropy"),
    "national_id": ("us_ssn", "uk_nino"),
    "ip_address": ("ipv4", "ipv6"),
}

Detector = Callable[[str], Iterable[tuple[int, int]]]


def _phones(text: str, region: str) -> Iterable[tuple[int, int]]:
    # VALID: the number must exist in the numbering plan of its (or the default) region.
    # International "+CC ..." forms are read whatever the default region is.
    for match in phonenumbers.PhoneNumberMatcher(text, region,
                                                 leniency=phonenumbers.Leniency.VALID):
        yield match.start, match.end


def select_longest(candidates: Iterable[tuple[int, int, str]], length: int,
                   ) -> list[tuple[int, int, str]]:
    """Non-overlapping spans, longest first; ties go to the type listed first in ENTITIES.

    Args:
        candidates: ``(start, end, entity)`` triples, possibly overlapping.
        length: length of the scanned text.
    Returns:
        the kept triples, sorted by start.
    """
    rank = {name: i for i, name in enumerate(ENTITIES)}
    taken = bytearray(length)  # 1 where a kept span already covers the character
    kept = []
    for start, end, entity in sorted(candidates, key=lambda c: (c[0] - c[1], rank[c[2]], c[0])):
        if end > start and not any(taken[start:end]):
            taken[start:end] = b"\x01" * (end - start)
            kept.append((start, end, entity))
    return sorted(kept)


class PII(Scanner):
    """Detect and redact personal data and secrets.

    Entity types (``ENTITIES``; ``GROUPS`` names a few together): ``email``, ``phone``,
    ``credit_card``, ``iban``, ``us_ssn``, ``uk_nino``, ``ipv4``, ``ipv6``,
    ``aws_access_key``, ``github_token``, ``slack_token``, ``openai_key``,
    ``google_api_key``, ``private_key``, ``jwt`` and ``high_entropy`` (unnamed secrets).

    Args:
        entities: types (or group names) to look for; ``None`` for all.
        region: ISO 3166 region for phone numbers written without ``+<country code>``.
        secret_min_length: shortest token the generic high-entropy rule considers.
        secret_entropy: bits of Shannon entropy per character that rule requires.
        name, threshold, action: see :class:`~bastion.guard.base.Scanner`.

    Score: 1.0 when any entity is found, else 0.0 (one leaked card number is one too many;
    weights per type would only hide that). ``sanitized`` replaces each entity with
    ``[REDACTED:<TYPE>]``; overlapping matches resolve to the longest. Spans carry the type.
    """

    kind: ClassVar[str] = "pii"
    direction: ClassVar[str] = "both"

    def __init__(self, *, entities: Sequence[str] | None = None, region: str = "US",
                 secret_min_length: int = 24, secret_entropy: float = 3.5,
                 name: str | None = None, threshold: float = 0.5,
                 action: str = "redact") -> None:
        self._init_common(name, threshold, action)
        self.entities = entities
        self.region = region
        self.secret_min_length = secret_min_length
        self.secret_entropy = secret_entropy

    def validate(self) -> None:
        super().validate()
        self._selected()
        if self.region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(f"{self.name}: region must be an ISO 3166 code that "
                              f"phonenumbers knows (e.g. 'US', 'GB'), got {self.region!r}")
        length, entropy = self.secret_min_length, self.secret_entropy
        if isinstance(length, bool) or not isinstance(length, int) or not 16 <= length <= 1000:
            raise ConfigError(f"{self.name}: secret_min_length must be an integer in "
                              f"[16, 1000], got {self.secret_min_length!r}")
        if isinstance(entropy, bool) or not isinstance(entropy, int | float) or not (
                0.0 < entropy <= 8.0):
            raise ConfigError(f"{self.name}: secret_entropy must be a number of bits per "
                              f"character in (0, 8], got {self.secret_entropy!r}")

    def _selected(self) -> tuple[str, ...]:
        """The entity types to run, groups expanded, in ENTITIES order."""
        if self.entities is None:
            return ENTITIES
        if isinstance(self.entities, str):
            raise ConfigError(f"{self.name}: entities must be a list of names, not the "
                              f"string {self.entities!r}; write [{self.entities!r}]")
        wanted: set[str] = set()
        for entity in self.entities:
            if entity in GROUPS:
                wanted.update(GROUPS[entity])
            elif entity in ENTITIES:
                wanted.add(entity)
            else:
                raise ConfigError(f"{self.name}: unknown entity {entity!r}; choose from "
                                  f"{', '.join(ENTITIES + tuple(GROUPS))}")
        return tuple(e for e in ENTITIES if e in wanted)

    def _detectors(self) -> dict[str, Detector]:
        detectors: dict[str, Detector] = {
            "email": rules.emails,
            "phone": partial(_phones, region=self.region),
            "credit_card": rules.cards,
            "iban": rules.ibans,
            "us_ssn": rules.us_ssns,
            "uk_nino": rules.uk_ninos,
            "ipv4": rules.ipv4s,
            "ipv6": rules.ipv6s,
            "private_key": secrets.private_keys,
            "high_entropy": partial(secrets.high_entropy_tokens,
                                    min_length=int(self.secret_min_length),
                                    threshold=float(self.secret_entropy)),
        }
        for kind in secrets.SECRET_PATTERNS:
            detectors[kind] = partial(secrets.secrets_of, kind)
        return detectors

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """Entities in ``text`` as sorted, non-overlapping ``(start, end, type)`` triples."""
        detectors = self._detectors()
        candidates = [(start, end, entity) for entity in self._selected()
                      for start, end in detectors[entity](text)]
        return select_longest(candidates, len(text))

    def _scan(self, text: str, context: ScanContext) -> Finding:
        found = self.find(text)
        if not found:
            return Finding(score=0.0, reason="no PII or secrets found")
        sanitized = redact(text, found)
        # A rule that refused a candidate because of a neighbour ("0@0.AA" glued to a card
        # number is no e-mail address) may accept it once the neighbour is a marker:
        # redact again until nothing is left (rarely more than one extra pass).
        extra = 0
        for _ in range(3):
            more = self.find(sanitized)
            if not more:
                break
            extra += len(more)
            sanitized = redact(sanitized, more)
        counts = Counter(entity for _, _, entity in found)
        reason = f"found {len(found)}: " + ", ".join(f"{n} {e}" for e, n in counts.items())
        if extra:
            reason += f" (and {extra} more exposed by redaction)"
        return Finding(score=1.0, reason=reason, sanitized=sanitized,
                       spans=tuple(Span(s, e, entity) for s, e, entity in found))


def redact(text: str, found: Iterable[tuple[int, int, str]]) -> str:
    """``text`` with each sorted, non-overlapping ``(start, end, type)`` replaced by a marker."""
    pieces = []
    last = 0
    for start, end, entity in found:
        pieces.append(text[last:start])
        pieces.append(f"[REDACTED:{entity.upper()}]")
        last = end
    pieces.append(text[last:])
    return "".join(pieces)
