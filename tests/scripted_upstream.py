"""An in-process upstream for the proxy's tests: it answers whatever the test scripted.

``ScriptedUpstream(answer=..., chunks=...)`` gives ``answer`` (an OpenAI
``chat.completion`` dict) to a plain request and ``chunks`` (``chat.completion.chunk``
dicts) to a streamed one, with no network, so tests can hand the proxy any shape an
OpenAI-compatible server might send.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

CANARY = "ZEBRA-7Q4-CANARY"
CARD = "4111 1111 1111 1111"
EMAIL = "alice.smith@example.com"
SECRETS = (CANARY, CARD, EMAIL)
LEAKY = f"The code is {CANARY}, pay with {CARD} and write to {EMAIL} today."


class ScriptedUpstream:
    """Answers ``answer`` to ``complete`` and streams ``chunks``; keeps each request body."""

    name = "scripted"
    model = "scripted"

    def __init__(self, *, answer: dict[str, Any] | None = None,
                 chunks: list[dict[str, Any]] | None = None) -> None:
        self.answer = answer or completion_with([message("fine")])
        self.chunks = chunks or []
        self.seen: list[dict[str, Any]] = []

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        self.seen.append(body)
        return copy.deepcopy(self.answer)

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        self.seen.append(body)
        for chunk in self.chunks:
            yield copy.deepcopy(chunk)

    async def aclose(self) -> None:
        return None


def message(content: str | None, **fields: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content, **fields}


def completion_with(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``chat.completion`` with one choice per message."""
    return {"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": i, "message": m, "finish_reason": "stop"}
                        for i, m in enumerate(messages)]}


def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 0,
            "model": "m", "choices": [{"index": index, "delta": delta,
                                       "finish_reason": finish}]}


def tool_call(arguments: str, name: str = "lookup", index: int = 0) -> dict[str, Any]:
    return {"index": index, "id": f"call_{index}", "type": "function",
            "function": {"name": name, "arguments": arguments}}
