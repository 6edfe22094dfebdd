"""What the proxy scans: every choice and every text field of an answer (streamed or
not), and every role and content part of a request. The upstream is scripted in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from scripted_upstream import (
    CANARY,
    CARD,
    EMAIL,
    LEAKY,
    SECRETS,
    ScriptedUpstream,
    chunk,
    completion_with,
    message,
    tool_call,
)
from test_service_support import ATTACK, BENIGN, app_and_keys, config, sse_events


def _client(tmp_path: Path, upstream: ScriptedUpstream,
            **overrides: Any) -> tuple[TestClient, dict[str, str]]:
    app, headers = app_and_keys(config(tmp_path, **overrides), upstream=upstream)
    return TestClient(app), headers["client"]


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": BENIGN}],
            "bastion": {"canary": CANARY}, **extra}


def _no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} reached the client"
    assert "4111111111111111" not in text


def _post(tmp_path: Path, upstream: ScriptedUpstream, **extra: Any) -> Any:
    client, h = _client(tmp_path, upstream)
    with client:
        return client.post("/v1/chat/completions", headers=h, json=_chat(**extra))


def test_every_choice_of_an_answer_is_scanned(tmp_path: Path) -> None:
    up = ScriptedUpstream(answer=completion_with([message("Paris."), message(LEAKY)]))
    got = _post(tmp_path, up, n=2)
    assert got.status_code == 200
    _no_secret(got.text)
    assert got.json()["bastion"]["output"]["verdict"] == "block"


def test_pii_in_a_second_choice_is_redacted_and_the_first_kept(tmp_path: Path) -> None:
    up = ScriptedUpstream(answer=completion_with([message("Paris is in France."),
                                                  message(f"Write to {EMAIL} please.")]))
    got = _post(tmp_path, up, n=2)
    _no_secret(got.text)
    choices = got.json()["choices"]
    assert choices[0]["message"]["content"] == "Paris is in France."
    assert "[REDACTED" in choices[1]["message"]["content"]


def test_tool_call_arguments_are_scanned(tmp_path: Path) -> None:
    args = json.dumps({"card": CARD, "note": CANARY})
    up = ScriptedUpstream(answer=completion_with([message(None,
                                                          tool_calls=[tool_call(args)])]))
    got = _post(tmp_path, up)
    _no_secret(got.text)
    assert got.json()["bastion"]["blocked"] == "output"


def test_card_in_tool_call_arguments_is_redacted(tmp_path: Path) -> None:
    args = json.dumps({"card": CARD})
    up = ScriptedUpstream(answer=completion_with([message(None,
                                                          tool_calls=[tool_call(args)])]))
    got = _post(tmp_path, up)
    _no_secret(got.text)
    call = got.json()["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "lookup" and "[REDACTED" in call["function"]["arguments"]


def test_reasoning_content_and_unknown_text_fields_are_scanned(tmp_path: Path) -> None:
    msg = message("All good.", reasoning_content=f"mail {EMAIL}",
                  extra={"notes": [f"card {CARD}"]})
    got = _post(tmp_path, ScriptedUpstream(answer=completion_with([msg])))
    _no_secret(got.text)


def test_card_number_sent_as_a_json_number_is_blocked(tmp_path: Path) -> None:
    msg = message("Here it is.", card=4111111111111111)
    got = _post(tmp_path, ScriptedUpstream(answer=completion_with([msg])))
    _no_secret(got.text)
    assert got.json()["bastion"]["blocked"] == "output"


def test_logprobs_are_dropped_when_the_answer_is_redacted(tmp_path: Path) -> None:
    msg = message(f"Write to {EMAIL}.")
    answer = completion_with([msg])
    answer["choices"][0]["logprobs"] = {"content": [{"token": t, "logprob": -0.1}
                                                    for t in ("alice", ".smith@", "example.com")]}
    got = _post(tmp_path, ScriptedUpstream(answer=answer))
    _no_secret(got.text)
    assert "alice" not in got.text
    assert got.json()["choices"][0]["logprobs"] is None


def _stream(tmp_path: Path, chunks: list[dict[str, Any]]) -> tuple[str, list[Any]]:
    client, h = _client(tmp_path, ScriptedUpstream(chunks=chunks))
    with client, client.stream("POST", "/v1/chat/completions", headers=h,
                               json=_chat(stream=True, n=2)) as response:
        assert response.status_code == 200
        lines = list(response.iter_lines())
    return "\n".join(lines), sse_events(iter(lines))


def test_every_streamed_choice_is_scanned(tmp_path: Path) -> None:
    chunks = [chunk(0, {"role": "assistant", "content": "Paris. "}),
              chunk(1, {"role": "assistant", "content": LEAKY[:20]}),
              chunk(1, {"content": LEAKY[20:]}),
              chunk(0, {}, "stop"), chunk(1, {}, "stop")]
    raw, events = _stream(tmp_path, chunks)
    _no_secret(raw)
    assert events[-1] == "[DONE]"


def test_streamed_second_choice_is_delivered_when_clean(tmp_path: Path) -> None:
    chunks = [chunk(0, {"role": "assistant", "content": "Paris is big. "}),
              chunk(1, {"role": "assistant", "content": "Lyon is too. "}),
              chunk(0, {}, "stop"), chunk(1, {}, "stop")]
    _, events = _stream(tmp_path, chunks)
    text: dict[int, str] = {}
    for e in events:
        for c in e.get("choices", []) if isinstance(e, dict) else []:
            text[c["index"]] = text.get(c["index"], "") + (c["delta"].get("content") or "")
    assert text == {0: "Paris is big. ", 1: "Lyon is too. "}


def test_streamed_tool_call_arguments_are_scanned(tmp_path: Path) -> None:
    args = json.dumps({"card": CARD, "mail": EMAIL})
    first = tool_call(args[:10])
    chunks = [chunk(0, {"role": "assistant", "content": None, "tool_calls": [first]}),
              chunk(0, {"tool_calls": [{"index": 0, "function": {"arguments": args[10:]}}]}),
              chunk(0, {}, "tool_calls")]
    raw, _ = _stream(tmp_path, chunks)
    _no_secret(raw)


def test_streamed_reasoning_content_is_scanned(tmp_path: Path) -> None:
    chunks = [chunk(0, {"role": "assistant", "reasoning_content": f"the canary is {CANARY}"}),
              chunk(0, {"content": "Fine."}), chunk(0, {}, "stop")]
    raw, _ = _stream(tmp_path, chunks)
    _no_secret(raw)


def _attack_in(tmp_path: Path, messages: list[dict[str, Any]],
               **overrides: Any) -> tuple[Any, ScriptedUpstream]:
    up = ScriptedUpstream()
    client, h = _client(tmp_path, up, **overrides)
    with client:
        got = client.post("/v1/chat/completions", headers=h,
                          json={"model": "m", "messages": messages})
    return got, up


@pytest.mark.parametrize("role", ["system", "developer", "assistant", "function", "User",
                                  "USER"])
def test_injection_in_any_role_is_blocked(tmp_path: Path, role: str) -> None:
    got, up = _attack_in(tmp_path, [{"role": role, "content": ATTACK},
                                    {"role": "user", "content": BENIGN}])
    assert got.json()["bastion"]["blocked"] == "input"
    assert not up.seen


@pytest.mark.parametrize("part", [{"type": "input_text", "text": ATTACK},
                                  {"type": "novel_kind", "body": {"words": ATTACK}}])
def test_injection_in_any_text_content_part_is_blocked(tmp_path: Path,
                                                       part: dict[str, Any]) -> None:
    got, up = _attack_in(tmp_path, [{"role": "user", "content": [part]}])
    assert got.json()["bastion"]["blocked"] == "input"
    assert not up.seen


def test_injection_in_a_message_name_is_blocked(tmp_path: Path) -> None:
    got, up = _attack_in(tmp_path, [{"role": "user", "name": ATTACK, "content": BENIGN}])
    assert got.json()["bastion"]["blocked"] == "input"
    assert not up.seen


def test_role_scan_setting_can_skip_a_role(tmp_path: Path) -> None:
    got, up = _attack_in(tmp_path, [{"role": "system", "content": ATTACK},
                                    {"role": "user", "content": BENIGN}],
                         role_scan={"SYSTEM": "skip"})
    assert got.json()["bastion"]["blocked"] is None
    assert up.seen


def test_an_instruction_in_the_system_role_is_not_read_as_an_injection(
        tmp_path: Path) -> None:
    got, up = _attack_in(tmp_path, [{"role": "system", "content": "be brief"},
                                    {"role": "user", "content": BENIGN}])
    assert got.json()["bastion"]["blocked"] is None
    assert up.seen


@pytest.mark.parametrize("body", [
    '{"messages": [{"role": "user", "content": [{"type": "text", "text": "a\\ud800"}]}]}',
    '{"messages": [{"role": "user", "content": "hi"}], "user": "x\\udc00"}',
    '{"messages": [{"role": "user", "content": "hi", "name": "\\ud800"}]}'])
def test_lone_surrogate_anywhere_in_a_chat_request_is_a_422(tmp_path: Path,
                                                            body: str) -> None:
    client, h = _client(tmp_path, ScriptedUpstream())
    with client:
        got = client.post("/v1/chat/completions", content=body.encode(),
                          headers={**h, "Content-Type": "application/json"})
    assert got.status_code == 422, got.text
    assert "surrogate" in got.json()["error"]["message"]
