"""Guarded streams: an upstream stream released to the client a scanned window at a time.

Every streamed choice and every text field of its deltas (``content``, ``refusal``,
``reasoning_content``, ``tool_calls[*].function.arguments`` and ``.name``, any other
string a server adds) is a *channel* of its own, keyed by (choice index, field path).
A channel's text is held until a sentence ends or ``stream_window_chars`` gather; then
the channel's whole text so far is scanned (a canary split across chunks is still seen)
and only the new part released. A block cuts the stream with an error chunk; so does a
redaction that would change text already sent, and so does a delta value that is not
text (it cannot be scanned: fail closed).

Chunks sent to the client are rebuilt from the scanned text: fields the proxy does not
scan (``logprobs``, ``usage``, a server's extra top-level fields) are not forwarded.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from bastion.service.limits import error_body
from bastion.service.state import Checked, Service
from bastion.service.storage import Principal
from bastion.service.upstream import StreamPiece, UpstreamError

Path = tuple[str | int, ...]
#: a sentence ends at . ! ? followed by white space, or at a line break.
_BOUNDARY = re.compile(r"[.!?](?=\s)|\n")
#: (choice, field) channels one stream may open; more is refused (bounded memory).
MAX_CHANNELS = 256
_RANK = {"allow": 0, "flag": 1, "redact": 2, "review": 3, "block": 4}
DONE = b"data: [DONE]\n\n"


def summary(checked: Checked | None) -> dict[str, Any] | None:
    """The verdict of one scan as the ``bastion`` field shows it."""
    if checked is None:
        return None
    r = checked.result
    return {"verdict": r.verdict, "score": r.score,
            "layers": [{"name": x.scanner, "verdict": x.verdict, "score": x.score}
                       for x in r.layers],
            "review_id": checked.review_id, "escalation_id": checked.escalation_id}


def sse(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


def chunk(cid: str, model: str, delta: dict[str, Any], finish: str | None = None,
          index: int = 0) -> bytes:
    return sse({"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "choices": [{"index": index, "delta": delta,
                                             "finish_reason": finish}]})


def info_chunk(cid: str, model: str, info: dict[str, Any]) -> bytes:
    """The verdicts, as a chunk with no choices (the shape of OpenAI's usage chunk, which
    clients already skip over)."""
    return sse({"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "choices": [], "bastion": info})


def delta_leaves(obj: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """The leaves of a delta with their paths; a list item is named by its ``index``
    field when it has one (tool calls), so pieces of one call share a path."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "index" and path and isinstance(path[-1], int):
                continue  # the list item's own position, already in the path
            yield from delta_leaves(value, (*path, str(key)))
    elif isinstance(obj, list):
        for pos, item in enumerate(obj):
            at = item.get("index") if isinstance(item, dict) else None
            step = at if isinstance(at, int) and not isinstance(at, bool) else pos
            yield from delta_leaves(item, (*path, step))
    elif obj is not None:
        yield path, obj


def rebuild(path: Path, text: str) -> dict[str, Any]:
    """The delta that carries ``text`` at ``path`` (list steps become ``[{"index": k}]``)."""
    node: Any = text
    for step in reversed(path):
        if isinstance(step, int):
            node = [{"index": step, **node}] if isinstance(node, dict) else [node]
        else:
            node = {step: node}
    return node if isinstance(node, dict) else {"content": text}


@dataclass
class _Channel:
    raw: str = ""       # upstream text scanned and released
    shown: str = ""     # what the client has (raw, or raw as redacted)
    pending: str = ""   # upstream text not yet scanned
    last: Checked | None = None


class StreamGuard:
    """Release an upstream stream to the client a scanned window at a time."""

    def __init__(self, svc: Service, model: str, inp: Checked, who: Principal, session: str,
                 context: dict[str, Any]) -> None:
        self.svc, self.model, self.inp = svc, model, inp
        self.who, self.session, self.context = who, session, context
        self.cid = f"chatcmpl-{uuid.uuid4().hex}"
        self.channels: dict[tuple[int, Path], _Channel] = {}
        self.opened: set[int] = {0}          # choices whose role was sent
        self.finish: dict[int, str] = {}
        self.worst: Checked | None = None

    async def run(self, first: StreamPiece,
                  pieces: AsyncIterator[StreamPiece]) -> AsyncIterator[bytes]:
        yield chunk(self.cid, self.model, {"role": "assistant", "content": ""})
        try:
            piece: StreamPiece | None = first
            while piece is not None:
                problem = self._take(piece)
                if problem:
                    yield self._cut_stream(problem, "output_unscannable")
                    return
                async for out, ok in self._release_all(final=False):
                    yield out
                    if not ok:
                        return
                piece = await anext(pieces, None)
            async for out, ok in self._release_all(final=True):
                yield out
                if not ok:
                    return
            if self.worst is None:  # nothing streamed: the summary still has a verdict
                self.worst = await self.svc.check("output", "", self.who, self.session,
                                                  **self.context)
        except UpstreamError as exc:
            yield sse(error_body(exc.message, "upstream_error", "upstream_failed"))
            yield DONE
            return
        for index in sorted(self.opened | set(self.finish)):
            yield chunk(self.cid, self.model, {}, self.finish.get(index, "stop"), index)
        yield info_chunk(self.cid, self.model, {"blocked": None, "input": summary(self.inp),
                                                "output": summary(self.worst)})
        yield DONE

    def _take(self, piece: StreamPiece) -> str | None:
        """Add one upstream chunk's text to its channels; why it cannot be, or ``None``."""
        for choice in piece.get("choices") or []:
            index = choice.get("index", 0)
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                return "the upstream streamed a choice without a valid index"
            if isinstance(choice.get("finish_reason"), str):
                self.finish[index] = choice["finish_reason"]
            for path, value in delta_leaves(choice.get("delta") or {}):
                if path == ("role",):
                    continue
                if not isinstance(value, str):
                    where = ".".join(str(p) for p in path)
                    return f"the upstream streamed a value that is not text at delta.{where}"
                key = (index, path)
                if key not in self.channels and len(self.channels) >= MAX_CHANNELS:
                    return f"the upstream streamed more than {MAX_CHANNELS} text fields"
                self.channels.setdefault(key, _Channel()).pending += value
        return None

    async def _release_all(self, final: bool) -> AsyncIterator[tuple[bytes, bool]]:
        for key in list(self.channels):
            out, ok = await self._release(key, final)
            if out or not ok:
                yield out, ok
            if not ok:
                return

    def _cut(self, pending: str) -> int:
        """How much of ``pending`` to scan and release now: up to the last sentence end,
        or all of it once the window is full; 0 to keep waiting."""
        ends = [m.end() for m in _BOUNDARY.finditer(pending)]
        if ends:
            return ends[-1]
        return len(pending) if len(pending) >= self.svc.config.limits.stream_window_chars else 0

    async def _release(self, key: tuple[int, Path], final: bool) -> tuple[bytes, bool]:
        """Scan channel ``key``'s text so far plus what is ready; the bytes to send, and
        whether to go on."""
        ch = self.channels[key]
        cut = len(ch.pending) if final else self._cut(ch.pending)
        if not cut:
            return b"", True
        whole = ch.raw + ch.pending[:cut]
        first_review = ch.last is None or ch.last.result.verdict != "review"
        checked = await self.svc.check("output", whole, self.who, self.session,
                                       file_review=first_review, **self.context)
        ch.last = checked
        if self.worst is None or _RANK[checked.result.verdict] >= \
                _RANK[self.worst.result.verdict]:
            self.worst = checked
        verdict = checked.result.verdict
        if verdict == "block":
            return self._cut_stream("the guard blocked the rest of the answer",
                                    "output_blocked"), False
        seen = checked.result.sanitized if verdict == "redact" else whole
        if not seen.startswith(ch.shown):
            return self._cut_stream("the guard redacted text that was already sent; the "
                                    "stream is stopped", "output_redacted"), False
        new = seen[len(ch.shown):]
        ch.raw, ch.shown, ch.pending = whole, seen, ch.pending[cut:]
        if not new:
            return b"", True
        index, path = key
        delta = rebuild(path, new)
        if index not in self.opened:
            self.opened.add(index)
            delta = {"role": "assistant", **delta}
        return chunk(self.cid, self.model, delta, None, index), True

    def _cut_stream(self, message: str, code: str) -> bytes:
        body = {**error_body(message, "guard_blocked", code),
                "bastion": {"blocked": "output", "input": summary(self.inp),
                            "output": summary(self.worst)}}
        ends = b"".join(chunk(self.cid, self.model, {}, "content_filter", index)
                        for index in sorted(self.opened))
        return ends + sse(body) + DONE
