"""End to end: `bastion serve` as a real process, and the embedded SmolLM2 upstream."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from test_service_support import (
    BENIGN,
    FakeUpstream,
    app_and_keys,
    config,
    free_port,
    sse_events,
    streamed_text,
)

pytestmark = pytest.mark.slow


def _bastion(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bastion", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_bastion_serve_answers_scans_and_proxies(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'served.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BASTION_DATABASE_URL": db}
    made = _bastion("keys", "create", "--name", "e2e", env=env)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    port = free_port()
    with FakeUpstream() as up:
        server = subprocess.Popen(
            [sys.executable, "-m", "bastion", "serve", "--port", str(port),
             "--upstream-url", up.url, "--workers", "1", "--log-level", "warning"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert server.poll() is None, server.stdout.read() if server.stdout else ""
                assert time.monotonic() < deadline, "bastion serve did not become ready"
                time.sleep(0.3)
            auth = {"Authorization": f"Bearer {key}"}
            scan = httpx.post(f"{base}/v1/scan/input", json={"text": BENIGN}, headers=auth)
            assert scan.status_code == 200 and scan.json()["verdict"] == "allow"
            chat = httpx.post(f"{base}/v1/chat/completions", headers=auth, timeout=30,
                              json={"messages": [{"role": "user", "content": BENIGN}]})
            assert chat.json()["choices"][0]["message"]["content"] == up.answer(BENIGN)
            # A bounded request head: a 4xx, or, when the server closes while the client
            # is still sending the 70 KB head, a reset (the kernel discards the unread
            # bytes with an RST). Never a 5xx, and the server keeps serving.
            try:
                huge = httpx.get(f"{base}/healthz", headers={"X-Big": "a" * 70_000})
                assert 400 <= huge.status_code < 500
            except httpx.ReadError as exc:
                assert "reset" in str(exc).lower(), exc
            assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        finally:
            server.terminate()
            out, _ = server.communicate(timeout=30)
    assert BENIGN not in out  # nothing the client sent is in the server's output


def test_embedded_smollm2_answers_through_the_guard(tmp_path: Path) -> None:
    app, h = app_and_keys(config(tmp_path, upstream={"max_tokens": 8, "timeout_s": 120}))
    chat = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
    with TestClient(app) as client:
        got = client.post("/v1/chat/completions", headers=h["client"], json=chat)
        assert got.status_code == 200
        answer = got.json()["choices"][0]["message"]["content"]
        assert isinstance(answer, str) and answer.strip()
        assert got.json()["bastion"]["output"]["verdict"] in ("allow", "redact", "flag")
        with client.stream("POST", "/v1/chat/completions", headers=h["client"],
                           json={**chat, "stream": True}) as response:
            events = sse_events(response.iter_lines())
    assert streamed_text(events).strip() == answer.strip()  # greedy: the same words
    assert events[-1] == "[DONE]"
