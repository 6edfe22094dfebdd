"""The service's tables and the migration step that creates or upgrades them.

Migrations are a numbered list of functions, each run once, in order, inside one
transaction, and recorded in ``schema_version`` (one row). :func:`migrate` runs at every
start (``bastion serve``, ``bastion keys ...``); on PostgreSQL it first takes an advisory
lock, so replicas starting together do not race. Why not alembic: four tables and one
version so far; a plain list keeps the upgrade path readable in one file, and a later
version adds ``_v2`` here (``ALTER TABLE ...``) rather than editing ``_v1``.

Tables (times are timezone-aware UTC):

* ``api_keys``: id, name, role, digest (sha256 of the key), created_at, revoked_at;
* ``review_items``: a prompt or answer a person should judge, or a session escalation:
  kind (``verdict`` | ``escalation``), direction, key_id, session_id, text, verdict,
  score, layers (the guard's per-layer results, JSON), reason, state
  (``pending`` | ``approved`` | ``rejected``), decided_by, decided_at;
* ``audit``: who (key id, or ``cli``) did what (``decide``, ``key.create``,
  ``key.revoke``) to which item or key, when, with an optional note;
* ``settings``: name/value pairs the replicas share (the review cookie secret).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    text,
    update,
)

metadata = MetaData()

schema_version = Table("schema_version", metadata,
                       Column("id", Integer, primary_key=True),
                       Column("version", Integer, nullable=False))

api_keys = Table("api_keys", metadata,
                 Column("id", String(32), primary_key=True),
                 Column("name", String(200), nullable=False),
                 Column("role", String(16), nullable=False),
                 Column("digest", String(64), nullable=False),
                 Column("created_at", DateTime(timezone=True), nullable=False),
                 Column("revoked_at", DateTime(timezone=True), nullable=True))

review_items = Table("review_items", metadata,
                     Column("id", Integer, primary_key=True, autoincrement=True),
                     Column("created_at", DateTime(timezone=True), nullable=False),
                     Column("kind", String(16), nullable=False),
                     Column("direction", String(8), nullable=False),
                     Column("key_id", String(32), nullable=True),
                     Column("session_id", String(200), nullable=True),
                     Column("text", Text, nullable=False),
                     Column("verdict", String(16), nullable=False),
                     Column("score", Float, nullable=False),
                     Column("layers", JSON, nullable=False),
                     Column("reason", Text, nullable=False),
                     Column("state", String(16), nullable=False, index=True),
                     Column("decided_by", String(32), nullable=True),
                     Column("decided_at", DateTime(timezone=True), nullable=True))

audit = Table("audit", metadata,
              Column("id", Integer, primary_key=True, autoincrement=True),
              Column("at", DateTime(timezone=True), nullable=False),
              Column("actor", String(32), nullable=False),
              Column("action", String(32), nullable=False),
              Column("item_id", Integer, ForeignKey("review_items.id"), nullable=True),
              Column("key_id", String(32), nullable=True),
              Column("detail", Text, nullable=False, default=""))

settings = Table("settings", metadata,
                 Column("name", String(64), primary_key=True),
                 Column("value", Text, nullable=False))

#: an arbitrary constant naming bastion's migration lock among PostgreSQL advisory locks.
_PG_LOCK = 0x6261_7374


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _v1(conn: Connection) -> None:
    """The first schema: every table above."""
    metadata.create_all(conn, tables=[api_keys, review_items, audit, settings])


MIGRATIONS: list[Callable[[Connection], None]] = [_v1]
#: the schema version this code reads and writes.
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    """The applied schema version; 0 for an empty database."""
    metadata.create_all(conn, tables=[schema_version])
    row = conn.execute(select(schema_version.c.version)).first()
    return 0 if row is None else int(row[0])


def migrate(conn: Connection) -> int:
    """Apply the migrations not yet applied; returns the version now in place.

    Call inside a transaction (``engine.begin()``): all steps commit together or none.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
    version = current_version(conn)
    if version > SCHEMA_VERSION:
        from bastion.errors import ConfigError
        raise ConfigError(f"the database is at schema version {version}, newer than this "
                          f"bastion ({SCHEMA_VERSION}); upgrade bastion")
    for step in MIGRATIONS[version:]:
        step(conn)
    if version == 0:
        conn.execute(insert(schema_version).values(id=1, version=SCHEMA_VERSION))
    elif version < SCHEMA_VERSION:
        conn.execute(update(schema_version).values(version=SCHEMA_VERSION))
    return SCHEMA_VERSION
