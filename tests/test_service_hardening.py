"""The service under careless or hostile clients: bounded scanning work, fair anomaly
counting, clear errors for wrong content types and huge invalid bodies."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bastion.service.cli import uvicorn_settings
from bastion.service.protocol import NoDelayH11Protocol
from test_service_support import ATTACK, BENIGN, app_and_keys, config, free_port, guard


class SlowGuard:
    """The test guard, with prompts starting ``SLOW`` taking ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.inner = guard()

    def scan_input(self, text: str, *args: Any, **kwargs: Any) -> Any:
        if text.startswith("SLOW"):
            time.sleep(self.delay)
        return self.inner.scan_input(text, *args, **kwargs)

    def scan_output(self, text: str, **kwargs: Any) -> Any:
        return self.inner.scan_output(text, **kwargs)


def _client(tmp_path: Path, g: Any = None, **overrides: Any) -> tuple[TestClient,
                                                                     dict[str, str]]:
    app, headers = app_and_keys(config(tmp_path, **overrides), g)
    return TestClient(app), headers["client"]


def test_a_timed_out_scan_still_counts_against_its_keys_backlog(tmp_path: Path) -> None:
    client, h = _client(tmp_path, SlowGuard(2.0),
                        limits={"request_timeout_s": 0.5, "max_pending_chars_per_key": 1000})
    with client:
        first = client.post("/v1/scan/input", headers=h, json={"text": "SLOW" + "a" * 600})
        assert first.status_code == 504
        second = client.post("/v1/scan/input", headers=h, json={"text": "SLOW" + "b" * 600})
        assert second.status_code == 429, second.text
        assert second.json()["error"]["code"] == "scan_backlog"
        assert "Retry-After" in second.headers
        budget = client.app.state.service.budget  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while budget.pending() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert budget.pending() == 0  # released when the orphaned scan finished
        third = client.post("/v1/scan/input", headers=h, json={"text": "SLOW" + "c" * 600})
        assert third.status_code == 504  # admitted again (and slow again)


def test_a_prompt_over_the_scan_size_limit_is_a_413(tmp_path: Path) -> None:
    client, h = _client(tmp_path, limits={"max_scan_chars": 100})
    with client:
        got = client.post("/v1/scan/input", headers=h, json={"text": "x" * 101})
    assert got.status_code == 413
    assert "max_scan_chars" in got.json()["error"]["message"]


def _scan(client: TestClient, h: dict[str, str], text: str,
          session: str | None = None) -> Any:
    headers = {**h, "X-Bastion-Session": session} if session else h
    return client.post("/v1/scan/input", headers=headers, json={"text": text})


def test_identical_benign_repeats_without_a_session_neither_escalate_nor_throttle(
        tmp_path: Path) -> None:
    client, h = _client(tmp_path)
    with client:
        answers = [_scan(client, h, BENIGN) for _ in range(10)]
        other = _scan(client, h, "How do I bake bread at home?")
    assert [a.status_code for a in answers] == [200] * 10
    assert all(a.json()["escalation_id"] is None for a in answers)
    assert other.status_code == 200


def test_probing_without_a_session_is_escalated_but_does_not_throttle_the_key(
        tmp_path: Path) -> None:
    client, h = _client(tmp_path)
    with client:
        answers = [_scan(client, h, f"{BENIGN} Answer in {n} words.") for n in range(10)]
        after = _scan(client, h, "How do I bake bread at home?")
    assert any(a.json()["escalation_id"] is not None for a in answers)
    assert after.status_code == 200


def test_flagged_prompts_are_counted_per_key_across_sessions(tmp_path: Path) -> None:
    client, h = _client(tmp_path)
    with client:
        answers = [_scan(client, h, ATTACK, session=f"s{n}") for n in range(10)]
    assert all(a.json()["verdict"] == "block" for a in answers)
    assert answers[-1].json()["escalation_id"] is not None


def _read_until_closed(sock: socket.socket, trickle: bytes, deadline_s: float) -> float:
    """Send ``trickle`` a byte every 0.2 s until the server closes; seconds it took."""
    start = time.monotonic()
    sock.settimeout(0.2)
    for byte in trickle:
        if time.monotonic() - start > deadline_s:
            break
        try:
            sock.send(bytes([byte]))
            if sock.recv(1024) == b"":
                return time.monotonic() - start
        except TimeoutError:
            continue
        except OSError:  # reset: closed as well
            return time.monotonic() - start
    return float("inf")


def test_a_request_head_sent_a_byte_at_a_time_is_cut_off(tmp_path: Path,
                                                         monkeypatch: Any) -> None:
    cfg = config(tmp_path, limits={"header_timeout_s": 1.0})
    monkeypatch.setattr(NoDelayH11Protocol, "header_timeout_s", cfg.limits.header_timeout_s)
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", **uvicorn_settings(cfg)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            took = _read_until_closed(sock, b"X-Slow: " + b"b" * 100, deadline_s=8)
        assert took < 3.0
        with socket.create_connection(("127.0.0.1", port)) as sock:  # prompt heads pass
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_json_body_without_a_json_content_type_is_told_so(tmp_path: Path) -> None:
    client, h = _client(tmp_path)
    with client:
        got = client.post("/v1/scan/input", content=b'{"text": "hi"}',
                          headers={**h, "Content-Type": "text/plain"})
    assert got.status_code == 422
    assert "application/json" in got.json()["error"]["message"]


def test_an_invalid_body_with_many_problems_gets_a_short_answer(tmp_path: Path) -> None:
    client, h = _client(tmp_path)
    body = {"text": "hi", **{f"unknown_field_{i}": 1 for i in range(20_000)}}
    with client:
        got = client.post("/v1/scan/input", headers=h, json=body)
    assert got.status_code == 422
    assert len(got.content) < 4_000
    assert "more" in got.json()["error"]["message"]


def _logged_in(client: TestClient, key: str) -> str:
    client.post("/review/login", data={"key": key})
    page = client.get("/review")
    assert page.status_code == 200
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert match
    return match.group(1)


def test_logout_needs_the_csrf_token_and_ends_the_session_on_the_server(
        tmp_path: Path) -> None:
    app, h = app_and_keys(config(tmp_path))
    key = h["reviewer"]["Authorization"].split()[1]
    with TestClient(app) as client:
        csrf = _logged_in(client, key)
        cookie = client.cookies.get("bastion_review")
        other = TestClient(app)

        def status(value: str) -> int:
            return other.get("/review", headers={"Cookie": f"bastion_review={value}"},
                             follow_redirects=False).status_code

        forged = client.post("/review/logout", data={"csrf": "0" * 32},
                             follow_redirects=False)
        assert forged.status_code == 403
        assert status(cookie) == 200
        done = client.post("/review/logout", data={"csrf": csrf}, follow_redirects=False)
        assert done.status_code == 303
        assert status(cookie) == 303  # the old cookie no longer logs anyone in
        _logged_in(client, key)  # logging in again works
