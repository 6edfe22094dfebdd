"""Bounds on every request, enforced before any endpoint code runs, and the error format.

:class:`RequestLimits` is plain ASGI middleware (not Starlette's ``BaseHTTPMiddleware``,
which buffers streaming responses) that

* refuses request headers over ``max_header_bytes`` in all with 431 (the server's own
  parser may accept a head of any size that arrives in one read);
* refuses a body over ``max_body_bytes`` with 413, from ``Content-Length`` when given
  and by counting otherwise, so a chunked upload cannot grow past the cap in memory;
* refuses a JSON body that is not UTF-8 or nests deeper than ``max_json_depth`` with 422
  (Python's JSON parser recurses: a 100,000-deep ``[[[...`` would otherwise be a 500);
* answers 504 when the whole request takes more than ``timeout_s`` seconds (a stream
  that already started is cut instead: its status line is gone).

Errors use OpenAI's shape, so clients of the proxy parse them as they parse OpenAI's:
``{"error": {"message": ..., "type": ..., "code": ...}}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("bastion.service")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


def error_body(message: str, type_: str, code: str | None = None) -> dict[str, Any]:
    """The JSON of an error answer (OpenAI's shape)."""
    return {"error": {"message": message, "type": type_, "code": code or type_}}


def json_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (0 for a scalar).

    Linear time and no recursion: strings are cut out with a regex, then a running sum
    of +1 for ``[``/``{`` and -1 for ``]``/``}`` is taken with numpy.
    """
    skeleton = _STRING.sub(b"", body)
    if not skeleton:
        return 0
    steps = _OPEN[np.frombuffer(skeleton, dtype=np.uint8)]
    return int(max(0, np.cumsum(steps, dtype=np.int64).max()))


class ServiceError(Exception):
    """An error answer: HTTP ``status``, a message that says what to do, OpenAI's shape."""

    def __init__(self, status: int, message: str, type_: str, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, type_, code)
        self.headers = headers or {}


async def _answer(send: Send, status: int, body: dict[str, Any],
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": data})


class _TooLarge(Exception):
    """The body passed the size cap while it streamed in (answered 413)."""


class RequestLimits:
    """ASGI middleware: body size, JSON sanity and a whole-request deadline."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_json_depth: int,
                 timeout_s: float, max_header_bytes: int = 16 * 1024) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            async with asyncio.timeout(self.timeout_s):
                await self._checked(scope, receive, tracked)
        except TimeoutError:
            log.warning("request timeout path=%s after=%.1fs started=%s",
                        scope.get("path"), self.timeout_s, started)
            if not started:
                await _answer(send, 504, error_body(
                    f"the request took longer than {self.timeout_s:g} s and was stopped",
                    "timeout"))

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("headers", [])
        if sum(len(k) + len(v) + 4 for k, v in raw) > self.max_header_bytes:
            await _answer(send, 431, error_body(
                f"the request headers are larger than the {self.max_header_bytes} bytes this "
                "service accepts", "invalid_request_error", "headers_too_large"))
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await self._too_large(send)
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(receive)
        except _TooLarge:
            await self._too_large(send)
            return
        if "json" in headers.get("content-type", ""):
            problem = self._json_problem(body)
            if problem:
                await _answer(send, 422, error_body(problem, "invalid_request_error",
                                                    "invalid_body"))
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls: wait for the client's disconnect

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(parts)

    async def _too_large(self, send: Send) -> None:
        await _answer(send, 413, error_body(
            f"the request body is larger than the {self.max_body_bytes} bytes this service "
            "accepts", "invalid_request_error", "body_too_large"))

    def _json_problem(self, body: bytes) -> str | None:
        """Why a JSON body cannot be parsed safely, or ``None``."""
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"the request body is not valid UTF-8 (bad byte at offset {exc.start})"
        depth = json_depth(body)
        if depth > self.max_json_depth:
            return (f"the JSON body nests {depth} levels deep; at most "
                    f"{self.max_json_depth} are accepted")
        return None
