"""The OpenAI-compatible proxy against a real (fake) upstream server on loopback:
answers pass, attacks are refused, leaks are cut (also mid-stream), a down upstream is a
502 and a slow one a 504, and nothing hangs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from test_service_support import (
    ATTACK,
    BENIGN,
    FakeUpstream,
    app_and_keys,
    config,
    free_port,
    sse_events,
    streamed_text,
)

pytestmark = pytest.mark.slow  # real servers on loopback


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(delay=2.0) as up:
        yield up


def _client(tmp_path: Path, url: str, **overrides) -> tuple[TestClient, dict[str, str]]:
    upstream = {"url": url, "timeout_s": 1.0, **overrides.pop("upstream", {})}
    app, headers = app_and_keys(config(tmp_path, upstream=upstream, **overrides))
    return TestClient(app), headers["client"]


# the fake upstream answers with an e-mail address to a prompt holding EMAIL
EMAIL_PROMPT = "How do I write an EMAIL to my landlord"


def _chat(text: str, **extra) -> dict:
    return {"model": "fake", "messages": [{"role": "system", "content": "be brief"},
                                          {"role": "user", "content": text}], **extra}


def test_benign_prompt_gets_the_upstream_answer(tmp_path: Path, upstream: FakeUpstream) -> None:
    client, h = _client(tmp_path, upstream.url)
    with client:
        got = client.post("/v1/chat/completions", headers=h,
                          json=_chat(BENIGN, temperature=0, user=12345,
                                     bastion={"canary": "CANARY-1"}))
    assert got.status_code == 200
    body = got.json()
    assert body["choices"][0]["message"]["content"] == upstream.answer(BENIGN)
    assert body["bastion"]["input"]["verdict"] == "allow"
    assert body["bastion"]["output"]["verdict"] == "allow"
    sent = upstream.seen[-1]
    assert "bastion" not in sent and sent["temperature"] == 0  # extension stripped, rest kept
    assert sent["user"] == 12345 and sent["messages"][0] == {"role": "system",
                                                             "content": "be brief"}


@pytest.mark.parametrize("mode", ["refusal", "error"])
def test_attack_is_refused_without_reaching_upstream(tmp_path: Path, upstream: FakeUpstream,
                                                     mode: str) -> None:
    client, h = _client(tmp_path, upstream.url, block_response=mode)
    before = len(upstream.seen)
    with client:
        got = client.post("/v1/chat/completions", headers=h, json=_chat(ATTACK))
    assert len(upstream.seen) == before
    if mode == "refusal":
        assert got.status_code == 200
        assert got.json()["choices"][0]["finish_reason"] == "content_filter"
    else:
        assert got.status_code == 400
        assert got.json()["error"]["code"] == "input_blocked"
    assert got.json()["bastion"]["blocked"] == "input"


def test_canary_leak_in_the_answer_is_blocked(tmp_path: Path, upstream: FakeUpstream) -> None:
    client, h = _client(tmp_path, upstream.url)
    with client:
        got = client.post("/v1/chat/completions", headers=h,
                          json=_chat("Use the word tangerine in a sentence please",
                                     bastion={"canary": "tangerine"}))
    assert got.status_code == 200
    assert "tangerine" not in got.text
    assert got.json()["bastion"]["blocked"] == "output"


def test_pii_in_the_answer_is_redacted(tmp_path: Path, upstream: FakeUpstream) -> None:
    client, h = _client(tmp_path, upstream.url)
    with client:
        got = client.post("/v1/chat/completions", headers=h, json=_chat(EMAIL_PROMPT))
    content = got.json()["choices"][0]["message"]["content"]
    assert "alice.smith@example.com" not in content and "[REDACTED" in content


def test_stream_passes_scanned_text_in_order(tmp_path: Path, upstream: FakeUpstream) -> None:
    client, h = _client(tmp_path, upstream.url)
    with client, client.stream("POST", "/v1/chat/completions", headers=h,
                               json=_chat(BENIGN, stream=True)) as response:
        assert response.status_code == 200
        events = sse_events(response.iter_lines())
    assert streamed_text(events) == upstream.answer(BENIGN)
    assert events[-1] == "[DONE]"
    finishes = [e["choices"][0]["finish_reason"] for e in events
                if isinstance(e, dict) and e.get("choices")]
    assert finishes[-1] == "stop"
    info = [e["bastion"] for e in events if isinstance(e, dict) and "bastion" in e]
    assert info and info[0]["output"]["verdict"] == "allow"
    assert all(e["object"] == "chat.completion.chunk" for e in events if isinstance(e, dict))


def test_streamed_attack_gets_a_streamed_refusal(tmp_path: Path,
                                                 upstream: FakeUpstream) -> None:
    client, h = _client(tmp_path, upstream.url)
    with client, client.stream("POST", "/v1/chat/completions", headers=h,
                               json=_chat(ATTACK, stream=True)) as response:
        events = sse_events(response.iter_lines())
    assert streamed_text(events) == "I can't help with that request."
    finishes = [e["choices"][0]["finish_reason"] for e in events
                if isinstance(e, dict) and e.get("choices")]
    assert finishes[-1] == "content_filter" and events[-1] == "[DONE]"


def test_stream_is_cut_when_a_leak_appears(tmp_path: Path, upstream: FakeUpstream) -> None:
    client, h = _client(tmp_path, upstream.url)
    body = _chat("Use the word marmalade in a sentence", stream=True,
                 bastion={"canary": "marmalade"})
    with client, client.stream("POST", "/v1/chat/completions", headers=h,
                               json=body) as response:
        events = sse_events(response.iter_lines())
    text = streamed_text(events)
    assert text == "Sure, here it is."  # the first sentence was clean and went out
    assert "marmalade" not in "".join(str(e) for e in events)
    errors = [e for e in events if isinstance(e, dict) and "error" in e]
    assert errors and errors[0]["error"]["code"] == "output_blocked"
    assert events[-1] == "[DONE]"


def test_stream_redacts_pii_before_it_leaves(tmp_path: Path, upstream: FakeUpstream) -> None:
    client, h = _client(tmp_path, upstream.url)
    with client, client.stream("POST", "/v1/chat/completions", headers=h,
                               json=_chat(EMAIL_PROMPT, stream=True)) as response:
        text = streamed_text(sse_events(response.iter_lines()))
    assert "alice.smith@example.com" not in text and "[REDACTED" in text


def test_upstream_down_is_502(tmp_path: Path) -> None:
    client, h = _client(tmp_path, f"http://127.0.0.1:{free_port()}/v1")
    with client:
        for stream in (False, True):
            got = client.post("/v1/chat/completions", headers=h,
                              json=_chat(BENIGN, stream=stream))
            assert got.status_code == 502
            assert "unreachable" in got.json()["error"]["message"]


def test_upstream_error_status_is_502(tmp_path: Path, upstream: FakeUpstream) -> None:
    client, h = _client(tmp_path, upstream.url)
    with client:
        got = client.post("/v1/chat/completions", headers=h,
                          json=_chat("Why would a web server FAIL500"))
    assert got.status_code == 502 and "HTTP 500" in got.json()["error"]["message"]


def test_slow_upstream_is_504_within_the_timeout(tmp_path: Path,
                                                 upstream: FakeUpstream) -> None:
    client, h = _client(tmp_path, upstream.url)  # upstream timeout 1 s, it takes 2 s
    with client:
        began = time.monotonic()
        got = client.post("/v1/chat/completions", headers=h, json=_chat("Why are snails so SLOW"))
        took = time.monotonic() - began
        assert got.status_code == 504 and "did not answer within 1 s" in got.text
        assert took < 1.9
        stream = client.post("/v1/chat/completions", headers=h,
                             json=_chat("Why are snails so SLOW", stream=True))
        assert stream.status_code == 504


def test_stalling_stream_ends_with_an_error_chunk(tmp_path: Path,
                                                  upstream: FakeUpstream) -> None:
    client, h = _client(tmp_path, upstream.url, upstream={"timeout_s": 3.0})
    with client, client.stream("POST", "/v1/chat/completions", headers=h,
                               json=_chat("Why do taps DRIP at night", stream=True)) as response:
        events = sse_events(response.iter_lines())
    errors = [e for e in events if isinstance(e, dict) and "error" in e]
    assert errors and errors[0]["error"]["type"] == "upstream_error"


def test_request_deadline_is_504(tmp_path: Path, upstream: FakeUpstream) -> None:
    client, h = _client(tmp_path, upstream.url, upstream={"timeout_s": 10.0},
                        limits={"request_timeout_s": 0.5})
    with client:
        got = client.post("/v1/chat/completions", headers=h, json=_chat("Why are snails so SLOW"))
    assert got.status_code == 504 and "longer than 0.5 s" in got.json()["error"]["message"]
