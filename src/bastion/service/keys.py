"""API keys: made at random, shown once, stored only as a SHA-256 digest.

A key reads ``bst_<id>_<secret>``: ``id`` is 12 hex characters that name the key in
logs, the database and ``bastion keys revoke``; ``secret`` is 32 random bytes,
url-safe base64. The database keeps the id and ``sha256(key)``. A plain hash (no salt,
no slow KDF) is enough here because the secret has 256 bits of entropy: there is no
dictionary to run, unlike a password.

Roles are ordered: ``admin`` can do what a ``reviewer`` can, who can do what a
``client`` can.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from bastion.errors import InputError

ROLES: tuple[str, ...] = ("client", "reviewer", "admin")
RANK: dict[str, int] = {role: i for i, role in enumerate(ROLES)}
PREFIX = "bst_"
_KEY = re.compile(r"bst_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class NewKey:
    """A freshly made key: ``key`` is shown once; ``key_id`` and ``digest`` are stored."""

    key_id: str
    key: str
    digest: str


def digest(key: str) -> str:
    """Hex SHA-256 of the whole key string (64 characters)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> NewKey:
    """A new random key, its id and its digest."""
    key_id = secrets.token_hex(6)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(key_id=key_id, key=key, digest=digest(key))


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key; ``None`` for anything else (no lookup needed)."""
    match = _KEY.fullmatch(key)
    return match.group(1) if match else None


def matches(key: str, stored_digest: str) -> bool:
    """Whether ``key`` hashes to ``stored_digest``, compared in constant time."""
    return hmac.compare_digest(digest(key), stored_digest)


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`, else an InputError listing them."""
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return role


def allows(role: str, needed: str) -> bool:
    """Whether a key of ``role`` may use an endpoint that needs ``needed``."""
    return RANK.get(role, -1) >= RANK[needed]
