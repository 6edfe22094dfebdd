"""Property: whatever shape an OpenAI-compatible upstream answers in (any number of
choices, tool calls, every text field, streamed or not), no canary, card number or
e-mail address it holds reaches the client unredacted under the default output policy.

The upstream is scripted in-process (no network); each generated answer plants the
secrets, whole, in randomly chosen text fields, and a stream cuts every field into
random pieces, so a secret is usually split across chunks.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scripted_upstream import CANARY, CARD, EMAIL, ScriptedUpstream, chunk
from test_service_support import BENIGN, app_and_keys, config

WORDS = st.sampled_from(["the", "river", "is", "calm", "today.", "we", "walked", "home",
                         "and", "saw", "birds", "near", "a", "bridge,", "then", "rain."])
SECRET = st.sampled_from([CANARY, CARD, EMAIL])
FORBIDDEN = (CANARY, CARD, CARD.replace(" ", ""), EMAIL)


@st.composite
def texts(draw: Any) -> str:
    """A short text, holding a secret (whole) about half of the time."""
    words = draw(st.lists(WORDS, min_size=0, max_size=12))
    if draw(st.booleans()):
        words.insert(draw(st.integers(0, len(words))), draw(SECRET))
    return " ".join(words)


@st.composite
def messages(draw: Any) -> dict[str, Any]:
    """An assistant message: content as text, parts or null; maybe tool calls, reasoning,
    a refusal, an unknown extra field."""
    form = draw(st.sampled_from(["text", "parts", "null"]))
    content: Any = {"text": draw(texts()), "null": None,
                    "parts": [{"type": "text", "text": draw(texts())}]}[form]
    message: dict[str, Any] = {"role": "assistant", "content": content}
    calls = draw(st.integers(0, 2))
    if calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": draw(st.sampled_from(["lookup", "send"])),
                          "arguments": json.dumps({"q": draw(texts())})}}
            for i in range(calls)]
    for field in ("reasoning_content", "refusal", "x_vendor_note"):
        if draw(st.booleans()):
            message[field] = draw(texts())
    return message


def _plain_text_fields(message: dict[str, Any]) -> list[tuple[dict[str, Any], int | None]]:
    """The delta pieces a stream of ``message`` carries (content parts become text)."""
    content = message.get("content")
    if isinstance(content, list):
        content = " ".join(p["text"] for p in content)
    deltas: list[tuple[dict[str, Any], int | None]] = []
    for field in ("content", "reasoning_content", "refusal", "x_vendor_note"):
        value = content if field == "content" else message.get(field)
        if isinstance(value, str):
            deltas.append(({field: value}, None))
    for i, call in enumerate(message.get("tool_calls") or []):
        deltas.append(({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                        "function": {"name": call["function"]["name"],
                                                     "arguments": call["function"]
                                                     ["arguments"]}}]}, i))
    return deltas


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points) if b > a] or [""]


@st.composite
def streams(draw: Any) -> list[dict[str, Any]]:
    """Chunks of a stream of 1-3 choices, each text cut into random pieces, the choices'
    chunks interleaved."""
    out: list[dict[str, Any]] = []
    for index, message in enumerate(draw(st.lists(messages(), min_size=1, max_size=3))):
        for delta, call in _plain_text_fields(message):
            cuts = draw(st.lists(st.integers(0, 400), max_size=4))
            if call is None:
                (field, value), = delta.items()
                out += [chunk(index, {field: part}) for part in _split(value, cuts)]
            else:
                head = delta["tool_calls"][0]
                parts = _split(head["function"]["arguments"], cuts)
                out.append(chunk(index, {"tool_calls": [{**head, "function": {
                    "name": head["function"]["name"], "arguments": parts[0]}}]}))
                out += [chunk(index, {"tool_calls": [{"index": call, "function": {
                    "arguments": part}}]}) for part in parts[1:]]
        out.append(chunk(index, {}, "stop"))
    return draw(st.permutations(out))


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: Any) -> Iterator[tuple[TestClient, dict[str, str],
                                                    ScriptedUpstream]]:
    upstream = ScriptedUpstream()
    # anomaly and rate limits out of the way: the property is about the answers
    app, headers = app_and_keys(config(tmp_path_factory.mktemp("prop"),
                                       rate_limit={"rate_per_s": 1e6, "burst": 10**6},
                                       anomaly={"throttle": False}), upstream=upstream)
    with TestClient(app) as client:
        yield client, headers["client"], upstream


def _request(stream: bool) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": BENIGN}],
            "stream": stream, "bastion": {"canary": CANARY}}


def _assert_clean(body: str) -> None:
    for secret in FORBIDDEN:
        assert secret not in body, f"{secret!r} reached the client"


@settings(max_examples=12, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(answer=st.lists(messages(), min_size=1, max_size=4))
def test_no_secret_in_any_answer_reaches_the_client(proxy: Any,
                                                    answer: list[dict[str, Any]]) -> None:
    client, h, upstream = proxy
    upstream.answer = {"id": "chatcmpl-p", "object": "chat.completion", "created": 0,
                       "model": "m", "choices": [{"index": i, "message": m,
                                                  "finish_reason": "stop"}
                                                 for i, m in enumerate(answer)]}
    got = client.post("/v1/chat/completions", headers=h, json=_request(False))
    assert got.status_code == 200, got.text
    _assert_clean(got.text)


@settings(max_examples=12, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(chunks=streams())
def test_no_secret_in_any_stream_reaches_the_client(proxy: Any,
                                                    chunks: list[dict[str, Any]]) -> None:
    client, h, upstream = proxy
    upstream.chunks = chunks
    with client.stream("POST", "/v1/chat/completions", headers=h,
                       json=_request(True)) as response:
        assert response.status_code == 200
        body = "".join(response.iter_text())
    _assert_clean(body)
    assert body.rstrip().endswith("data: [DONE]")
