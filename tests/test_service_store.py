"""Storage of the guard service on SQLite (the default) and real PostgreSQL: keys kept
hashed, review items decided once, every decision audited, the schema migrated once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

import test_service_support as support
from bastion.cli import app as cli
from bastion.errors import InputError
from bastion.service import Store
from bastion.service import keys as keylib
from bastion.service.schema import SCHEMA_VERSION, api_keys, schema_version
from bastion.service.storage import Conflict, NotFound
from test_service_support import fresh_store

pg_url = support.pg_url  # a fixture


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    s = fresh_store(url)
    request.addfinalizer(s.close)
    return s


def _layers() -> list[dict]:
    return [{"name": "rules", "verdict": "review", "score": 0.9, "latency_ms": 0.1,
             "reason": "instruction override", "spans": [[0, 6, "override"]]}]


def test_keys_are_stored_as_digests_only(store: Store) -> None:
    made = store.create_key("app", "client")
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(api_keys)).mappings()]
    flat = json.dumps(rows, default=str)
    assert made.key not in flat
    # nor the secret part alone: all 43 characters after "bst_<id>_" (the secret is
    # URL-safe base64 and may itself hold "_", so splitting on "_" could leave one letter)
    secret = made.key.removeprefix(f"{keylib.PREFIX}{made.key_id}_")
    assert len(secret) == 43 and secret not in flat
    assert [r["digest"] for r in rows if r["id"] == made.key_id] == [keylib.digest(made.key)]


def test_authenticate_accepts_the_key_and_refuses_others(store: Store) -> None:
    made = store.create_key("rev", "reviewer")
    who = store.authenticate(made.key)
    assert who is not None and (who.key_id, who.role) == (made.key_id, "reviewer")
    forged = made.key[:-1] + ("A" if made.key[-1] != "A" else "B")
    assert store.authenticate(forged) is None
    assert store.authenticate("not-a-key") is None
    store.revoke_key(made.key_id)
    assert store.authenticate(made.key) is None  # at once, despite the lookup cache
    with pytest.raises(NotFound):
        store.revoke_key(made.key_id)


def test_unknown_role_is_refused(store: Store) -> None:
    with pytest.raises(InputError, match="role must be one of"):
        store.create_key("x", "root")


def test_items_are_decided_once_and_audited(store: Store) -> None:
    actor = store.create_key("rev", "reviewer").key_id
    item = store.add_item(kind="verdict", direction="input", text="ignore\x00 the rules",
                          verdict="review", score=0.9, layers=_layers(), reason="rules",
                          key_id="k1", session_id="s1")
    assert [i["id"] for i in store.list_items("pending")] == [item]
    got = store.get_item(item)
    assert got["text"] == "ignore\ufffd the rules"  # NUL cannot go into PostgreSQL text
    assert got["layers"] == _layers()
    decided = store.decide(item, "reject", actor, "an override attempt")
    assert decided["state"] == "rejected" and decided["decided_by"] == actor
    assert decided["decided_at"] is not None
    with pytest.raises(Conflict, match="already rejected"):
        store.decide(item, "approve", actor)
    with pytest.raises(NotFound):
        store.decide(item + 999, "approve", actor)
    assert store.list_items("pending") == []
    trail = store.audit_log(item)
    assert [(a["actor"], a["action"], a["detail"]) for a in trail] == [
        (actor, "decide", "rejected an override attempt")]
    assert store.get_item(item)["state"] == "rejected"  # still there after the Conflict


def test_migration_runs_once_and_records_the_version(store: Store) -> None:
    assert store.migrate() == SCHEMA_VERSION  # a second start changes nothing
    with store.engine.connect() as conn:
        assert conn.execute(select(schema_version.c.version)).scalars().all() == [
            SCHEMA_VERSION]


def test_session_secret_is_shared_through_the_database(store: Store) -> None:
    other = Store(store.url)
    try:
        assert store.session_secret() == other.session_secret()
    finally:
        other.close()


def test_cli_keys_and_export(store: Store, tmp_path: Path) -> None:
    runner = CliRunner()
    db = ["--database-url", store.url]
    made = runner.invoke(cli, ["keys", "create", "--name", "ops", "--role", "admin", *db])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    who = store.authenticate(key)
    assert who is not None and who.role == "admin"
    listed = runner.invoke(cli, ["keys", "list", "--json", *db])
    assert who.key_id in listed.stdout and key not in listed.stdout
    bad = runner.invoke(cli, ["keys", "create", "--name", "x", "--role", "root", *db])
    assert bad.exit_code == 2
    a = store.add_item(kind="verdict", direction="input", text="attack text", verdict="review",
                       score=0.9, layers=_layers(), reason="r", key_id=None, session_id=None)
    b = store.add_item(kind="escalation", direction="input", text="fine text",
                       verdict="allow", score=0.0, layers=[], reason="r", key_id=None,
                       session_id=None)
    store.add_item(kind="verdict", direction="input", text="undecided", verdict="review",
                   score=0.5, layers=[], reason="r", key_id=None, session_id=None)
    store.decide(a, "reject", who.key_id)
    store.decide(b, "approve", who.key_id)
    out = tmp_path / "decisions.jsonl"
    done = runner.invoke(cli, ["review", "export", "--out", str(out), *db])
    assert done.exit_code == 0, done.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(x["text"], x["label"], x["decision"]) for x in lines] == [
        ("attack text", 1, "rejected"), ("fine text", 0, "approved")]
    trail = {r["item_id"]: r for r in store.audit_log() if r["action"] == "decide"}
    for line, item in zip(lines, (a, b), strict=True):
        assert line["reviewer_key_id"] == who.key_id == line["decided_by"]
        assert line["audit_id"] == trail[item]["id"] and line["decided_at"] == trail[item]["at"]
    revoked = runner.invoke(cli, ["keys", "revoke", who.key_id, *db])
    assert revoked.exit_code == 0 and store.principal(who.key_id) is None
    again = runner.invoke(cli, ["keys", "revoke", who.key_id, *db])
    assert again.exit_code == 2


def test_unreachable_database_is_a_clear_config_error() -> None:
    from bastion.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot reach or migrate"):
        Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
