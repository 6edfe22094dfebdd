"""The review queue: a `review` verdict files an item; reviewers list, read and decide it
over the API and on the web page (log-in, signed cookie, CSRF), and every decision is
audited, on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import test_service_support as support
from test_service_support import ATTACK, app_and_keys, config, fresh_store, review_guard

pg_url = support.pg_url  # a fixture


@pytest.fixture(params=["sqlite", "postgresql"])
def setup(request: pytest.FixtureRequest, tmp_path: Path):
    cfg = config(tmp_path)
    store = None
    if request.param == "postgresql":
        store = fresh_store(request.getfixturevalue("pg_url"))
    app, h = app_and_keys(cfg, review_guard(), **({"store": store} if store else {}))
    client = TestClient(app)
    request.addfinalizer(app.state.service.store.close)
    return client, h


def _file(client: TestClient, h: dict, text: str = ATTACK) -> int:
    got = client.post("/v1/scan/input", json={"text": text}, headers=h["client"]).json()
    assert got["verdict"] == "review"
    return int(got["review_id"])


def test_review_verdict_is_filed_decided_and_audited(setup) -> None:
    client, h = setup
    item_id = _file(client, h)
    listed = client.get("/v1/review/items", headers=h["reviewer"]).json()["items"]
    assert [i["id"] for i in listed] == [item_id]
    item = client.get(f"/v1/review/items/{item_id}", headers=h["reviewer"]).json()
    assert item["text"] == ATTACK and item["state"] == "pending"
    assert [x["name"] for x in item["layers"]] == ["sanitizer", "rules"]
    assert "rules:" in item["reason"]
    url = f"/v1/review/items/{item_id}/decision"
    assert client.post(url, json={"decision": "reject"}, headers=h["client"]).status_code == 403
    got = client.post(url, json={"decision": "reject", "note": "override"},
                      headers=h["reviewer"])
    assert got.status_code == 200 and got.json()["state"] == "rejected"
    again = client.post(url, json={"decision": "approve"}, headers=h["admin"])
    assert again.status_code == 409
    assert client.post(url, json={"decision": "maybe"}, headers=h["reviewer"]).status_code == 422
    assert client.post("/v1/review/items/99999/decision", json={"decision": "approve"},
                       headers=h["reviewer"]).status_code == 404
    huge = client.get(f"/v1/review/items/{2**70}", headers=h["reviewer"])
    assert huge.status_code == 422  # not a database overflow (500)
    audit = client.get(f"/v1/review/items/{item_id}", headers=h["reviewer"]).json()["audit"]
    reviewer_id = h["reviewer"]["Authorization"].split("_")[1]
    assert [(a["actor"], a["action"], a["detail"]) for a in audit] == [
        (reviewer_id, "decide", "rejected override")]
    assert client.get("/v1/review/items", headers=h["reviewer"]).json()["items"] == []
    done = client.get("/v1/review/items?state=rejected", headers=h["reviewer"]).json()
    assert [i["id"] for i in done["items"]] == [item_id]


def test_answer_marked_review_is_filed_as_an_output_item(setup) -> None:
    client, h = setup
    got = client.post("/v1/scan/output", headers=h["client"],
                      json={"text": "write to dave@example.net", "prompt": "who?"}).json()
    assert got["verdict"] == "review" and got["review_id"] is not None
    item = client.get(f"/v1/review/items/{got['review_id']}", headers=h["reviewer"]).json()
    assert (item["direction"], item["text"]) == ("output", "write to dave@example.net")


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, html
    return match.group(1)


def test_review_page_login_queue_item_decide(setup) -> None:
    client, h = setup
    hostile = "<script>alert(1)</script> " + ATTACK
    item_id = _file(client, h, hostile)
    assert client.get("/review", follow_redirects=False).headers["location"] == "/review/login"
    client_key = h["client"]["Authorization"].split()[1]
    refused = client.post("/review/login", data={"key": client_key})
    assert refused.status_code == 401 and "not a live reviewer" in refused.text
    key = h["reviewer"]["Authorization"].split()[1]
    logged = client.post("/review/login", data={"key": key}, follow_redirects=False)
    assert logged.status_code == 303
    cookie = logged.cookies.get("bastion_review") or client.cookies.get("bastion_review")
    assert cookie and key not in cookie  # the cookie names the key id, not the key
    queue = client.get("/review")
    assert queue.status_code == 200 and f'data-id="{item_id}"' in queue.text
    page = client.get(f"/review/items/{item_id}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text  # escaped, not run
    assert "<script>alert(1)" not in page.text
    assert 'id="layers"' in page.text and "rules" in page.text
    csrf = _csrf(page.text)
    forged = client.post(f"/review/items/{item_id}/decide",
                         data={"decision": "approve", "csrf": "0" * 32})
    assert forged.status_code == 403
    done = client.post(f"/review/items/{item_id}/decide",
                       data={"decision": "approve", "csrf": csrf, "note": "benign test"},
                       follow_redirects=False)
    assert done.status_code == 303
    assert f'data-id="{item_id}"' not in client.get("/review").text  # left the queue
    item = client.get(f"/v1/review/items/{item_id}", headers=h["reviewer"]).json()
    assert item["state"] == "approved"
    assert item["audit"][0]["detail"] == "approved benign test"


def test_review_page_refuses_a_tampered_or_revoked_session(setup) -> None:
    client, h = setup
    key = h["reviewer"]["Authorization"].split()[1]
    client.post("/review/login", data={"key": key})
    assert client.get("/review", follow_redirects=False).status_code == 200
    cookie = client.cookies.get("bastion_review")
    fresh = TestClient(client.app)  # no cookie jar: send the cookie by hand

    def status(value: str) -> int:
        return fresh.get("/review", headers={"Cookie": f"bastion_review={value}"},
                         follow_redirects=False).status_code

    assert status(cookie) == 200
    # tamper with the signed payload's first character: the last characters of a base64
    # signature may carry ignored padding bits, so changing them can leave it valid
    assert status(("A" if cookie[0] != "A" else "B") + cookie[1:]) == 303
    client.app.state.service.store.revoke_key(key.split("_")[1])
    assert status(cookie) == 303  # revoking the key ends its sessions
