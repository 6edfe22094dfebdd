"""Durable state of the guard service: API keys, the review queue, the audit trail.

One :class:`Store` per process wraps a SQLAlchemy 2 engine: a SQLite file by default
(``sqlite:///bastion-service.db``), PostgreSQL for several replicas
(``postgresql+psycopg://user@host/db``). Every write is one transaction that has
committed before the method returns, so an HTTP 2xx means the row is on disk.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bastion.errors import ConfigError, InputError
from bastion.service import keys as keylib
from bastion.service.schema import api_keys, audit, migrate, now, review_items, settings

STATES: tuple[str, ...] = ("pending", "approved", "rejected")
DECISIONS: dict[str, str] = {"approve": "approved", "reject": "rejected"}
#: seconds a successful key lookup is reused; a revocation in *another* process takes
#: effect within this time (the revoking process forgets its copy at once).
KEY_CACHE_S = 2.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, name and role (never the key itself)."""

    key_id: str
    name: str
    role: str


class NotFound(InputError):
    """No row with that id."""


class Conflict(InputError):
    """The item was already decided."""


def _utc(value: datetime | None) -> str | None:
    """ISO-8601 UTC; SQLite hands back naive datetimes, which we stored as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so threads share it."""
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False,
                                                      "timeout": 30})

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                # WAL lets readers run while one writer commits; synchronous=FULL keeps a
                # committed transaction through a crash of the process or of the machine.
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=FULL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

            return engine
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise ConfigError(f"cannot use database URL {_safe_url(url)!r}: {exc}") from None


def _safe_url(url: str) -> str:
    """``url`` with any password masked, for messages."""
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has nothing to hide that we can find
        return "<unparsable URL>"


class Store:
    """Keys, review items and audit records in one database; thread-safe."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._cache: dict[str, tuple[float, Principal, str]] = {}
        self._lock = threading.Lock()
        self.migrate()

    def migrate(self) -> int:
        """Create or upgrade the schema (see :mod:`bastion.service.schema`)."""
        for attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    return migrate(conn)
            except IntegrityError:
                if attempt:  # another process migrated between our read and our write
                    raise
            except SQLAlchemyError as exc:
                raise ConfigError(f"cannot reach or migrate the database "
                                  f"{_safe_url(self.url)}: {exc.__class__.__name__}: "
                                  f"{str(exc).splitlines()[0]}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def ping(self) -> None:
        """Raise if the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()

    # -- settings shared by replicas ------------------------------------------------------

    def setting(self, name: str, default: str) -> str:
        """The stored value of ``name``; the first caller's ``default`` wins a race."""
        with self.engine.begin() as conn:
            row = conn.execute(select(settings.c.value).where(settings.c.name == name)).first()
            if row is not None:
                return str(row[0])
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(settings).values(name=name, value=default))
            return default
        except IntegrityError:
            with self.engine.begin() as conn:
                return str(conn.execute(select(settings.c.value)
                                        .where(settings.c.name == name)).scalar_one())

    def put_setting(self, name: str, value: str) -> None:
        """Set ``name`` to ``value`` (the last writer wins)."""
        with self.engine.begin() as conn:
            if conn.execute(update(settings).where(settings.c.name == name)
                            .values(value=value)).rowcount:
                return
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(settings).values(name=name, value=value))
        except IntegrityError:  # inserted meanwhile by another replica: overwrite it
            with self.engine.begin() as conn:
                conn.execute(update(settings).where(settings.c.name == name)
                             .values(value=value))

    def session_secret(self) -> str:
        """The secret that signs review-page cookies, made once and shared by replicas."""
        return self.setting("session_secret", secrets.token_urlsafe(32))

    # -- API keys -------------------------------------------------------------------------

    def create_key(self, name: str, role: str = "client", actor: str = "cli") -> keylib.NewKey:
        """Make and store a key; the returned ``key`` is the only copy of the secret."""
        keylib.check_role(role)
        if not name or len(name) > 200:
            raise InputError("a key needs a name of 1 to 200 characters")
        made = keylib.new_key()
        with self.engine.begin() as conn:
            conn.execute(insert(api_keys).values(id=made.key_id, name=name, role=role,
                                                 digest=made.digest, created_at=now()))
            conn.execute(insert(audit).values(at=now(), actor=actor, action="key.create",
                                              key_id=made.key_id, detail=f"role {role}"))
        return made

    def list_keys(self) -> list[dict[str, Any]]:
        """Every key's id, name, role, created_at and revoked_at (no digests)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).mappings()
            return [{"id": r["id"], "name": r["name"], "role": r["role"],
                     "created_at": _utc(r["created_at"]), "revoked_at": _utc(r["revoked_at"])}
                    for r in rows]

    def revoke_key(self, key_id: str, actor: str = "cli") -> None:
        """Revoke ``key_id``; NotFound if there is no such live key."""
        with self.engine.begin() as conn:
            done = conn.execute(update(api_keys)
                                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                                .values(revoked_at=now()))
            if done.rowcount != 1:
                raise NotFound(f"no live key with id {key_id!r}; `bastion keys list` shows "
                               "the ids")
            conn.execute(insert(audit).values(at=now(), actor=actor, action="key.revoke",
                                              key_id=key_id, detail=""))
        with self._lock:
            self._cache.pop(key_id, None)

    def principal(self, key_id: str) -> Principal | None:
        """The live key ``key_id`` as a Principal (for signed review cookies)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id,
                                                      api_keys.c.revoked_at.is_(None))
                               ).mappings().first()
        return None if row is None else Principal(row["id"], row["name"], row["role"])

    def authenticate(self, key: str) -> Principal | None:
        """The Principal of a live ``key``; ``None`` for a malformed, unknown or revoked key."""
        key_id = keylib.key_id_of(key)
        if key_id is None:
            return None
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is not None and hit[0] > time.monotonic() and keylib.matches(key, hit[2]):
            return hit[1]
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id,
                                                      api_keys.c.revoked_at.is_(None))
                               ).mappings().first()
        if row is None or not keylib.matches(key, row["digest"]):
            return None
        who = Principal(row["id"], row["name"], row["role"])
        with self._lock:
            self._cache[key_id] = (time.monotonic() + KEY_CACHE_S, who, row["digest"])
        return who

    # -- review queue ---------------------------------------------------------------------

    def add_item(self, *, kind: str, direction: str, text: str, verdict: str, score: float,
                 layers: list[dict[str, Any]], reason: str, key_id: str | None,
                 session_id: str | None) -> int:
        """File a pending review item; returns its id once committed.

        NUL characters are stored as U+FFFD: PostgreSQL text cannot hold them, and a
        prompt must not be able to make the review queue fail.
        """
        text, reason = text.replace("\x00", "\ufffd"), reason.replace("\x00", "\ufffd")
        with self.engine.begin() as conn:
            result = conn.execute(insert(review_items).values(
                created_at=now(), kind=kind, direction=direction, key_id=key_id,
                session_id=session_id, text=text, verdict=verdict, score=float(score),
                layers=layers, reason=reason, state="pending"))
            key = result.inserted_primary_key
            assert key is not None  # an INSERT into a table with a primary key has one
            return int(key[0])

    @staticmethod
    def _item(row: Any) -> dict[str, Any]:
        return {"id": row["id"], "created_at": _utc(row["created_at"]), "kind": row["kind"],
                "direction": row["direction"], "key_id": row["key_id"],
                "session_id": row["session_id"], "text": row["text"],
                "verdict": row["verdict"], "score": row["score"], "layers": row["layers"],
                "reason": row["reason"], "state": row["state"],
                "decided_by": row["decided_by"], "decided_at": _utc(row["decided_at"])}

    def list_items(self, state: str | None = "pending", limit: int = 50,
                   offset: int = 0) -> list[dict[str, Any]]:
        """Items in ``state`` (``None``: all), oldest first."""
        if state is not None and state not in STATES:
            raise InputError(f"state must be one of {', '.join(STATES)}, got {state!r}")
        query = select(review_items).order_by(review_items.c.id).limit(limit).offset(offset)
        if state is not None:
            query = query.where(review_items.c.state == state)
        with self.engine.connect() as conn:
            return [self._item(r) for r in conn.execute(query).mappings()]

    def count_items(self, state: str = "pending") -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(review_items)
                                    .where(review_items.c.state == state)).scalar_one())

    def get_item(self, item_id: int) -> dict[str, Any]:
        """One item; NotFound if absent."""
        with self.engine.connect() as conn:
            row = conn.execute(select(review_items).where(review_items.c.id == item_id)
                               ).mappings().first()
        if row is None:
            raise NotFound(f"no review item {item_id}")
        return self._item(row)

    def decide(self, item_id: int, decision: str, actor: str, note: str = "") -> dict[str, Any]:
        """Approve or reject a pending item and audit it, in one transaction.

        Raises:
            InputError: ``decision`` is not approve/reject.
            NotFound: no such item. Conflict: it was already decided (by anyone).
        """
        if decision not in DECISIONS:
            raise InputError(f"decision must be approve or reject, got {decision!r}")
        state = DECISIONS[decision]
        with self.engine.begin() as conn:
            # The state guard in WHERE makes two reviewers (or replicas) racing on one
            # item safe: exactly one UPDATE matches.
            done = conn.execute(update(review_items)
                                .where(review_items.c.id == item_id,
                                       review_items.c.state == "pending")
                                .values(state=state, decided_by=actor, decided_at=now()))
            if done.rowcount != 1:
                exists = conn.execute(select(review_items.c.state)
                                      .where(review_items.c.id == item_id)).first()
                if exists is None:
                    raise NotFound(f"no review item {item_id}")
                raise Conflict(f"review item {item_id} is already {exists[0]}")
            conn.execute(insert(audit).values(at=now(), actor=actor, action="decide",
                                              item_id=item_id, detail=f"{state} {note}".strip()))
        return self.get_item(item_id)

    def audit_log(self, item_id: int | None = None) -> list[dict[str, Any]]:
        """Audit records, oldest first; only ``item_id``'s when given."""
        query = select(audit).order_by(audit.c.id)
        if item_id is not None:
            query = query.where(audit.c.item_id == item_id)
        with self.engine.connect() as conn:
            return [{"id": r["id"], "at": _utc(r["at"]), "actor": r["actor"],
                     "action": r["action"], "item_id": r["item_id"], "key_id": r["key_id"],
                     "detail": r["detail"]} for r in conn.execute(query).mappings()]

    def decided(self) -> Iterator[dict[str, Any]]:
        """Every decided item, oldest decision first (the export's source)."""
        query = (select(review_items).where(review_items.c.state != "pending")
                 .order_by(review_items.c.decided_at, review_items.c.id))
        with self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                yield self._item(row)
