"""``POST /v1/chat/completions``: OpenAI's chat API with the guard on both sides.

1. The text of every ``user`` and ``tool`` message is scanned as one prompt (the client
   controls the whole conversation, so an injection can sit in any turn it sends).
   ``block`` (or ``review`` with ``on_input_review: block``) ends the request.
2. The request, minus bastion's ``bastion`` field, goes upstream.
3. The answer is scanned with the last user message as its prompt. ``block`` replaces it,
   ``redact`` answers the sanitized text.

A block answers, per ``block_response``, an OpenAI completion whose finish_reason is
``content_filter`` and whose content is a refusal (200: apps keep working), or an error
(400, type ``guard_blocked``). Either way a ``bastion`` field carries the verdicts.

Streams (``stream: true``) are scanned as they pass: upstream text is held until a
sentence ends or ``stream_window_chars`` gather, then the whole answer so far is scanned
(a canary split across chunks is still seen) and only then released. A block cuts the
stream with an error chunk; a redaction that would change text already sent does too.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from bastion.service.app import ClientKey, service_of, session_of
from bastion.service.limits import error_body
from bastion.service.models import ChatRequest
from bastion.service.state import Checked, Service, ServiceError
from bastion.service.storage import Principal
from bastion.service.upstream import StreamPiece, UpstreamError, completion, message_text

router = APIRouter(tags=["proxy"])
REFUSAL = "I can't help with that request."
SCANNED_ROLES = ("user", "tool")
#: a sentence ends at . ! ? followed by white space, or at a line break.
_BOUNDARY = re.compile(r"[.!?](?=\s)|\n")


def _summary(checked: Checked | None) -> dict[str, Any] | None:
    if checked is None:
        return None
    r = checked.result
    return {"verdict": r.verdict, "score": r.score,
            "layers": [{"name": x.scanner, "verdict": x.verdict, "score": x.score}
                       for x in r.layers],
            "review_id": checked.review_id, "escalation_id": checked.escalation_id}


def _blocked_body(svc: Service, side: str, model: str, inp: Checked,
                  out: Checked | None) -> tuple[int, dict[str, Any]]:
    info = {"blocked": side, "input": _summary(inp), "output": _summary(out)}
    if svc.config.block_response == "error":
        body = error_body(f"the guard blocked the {'prompt' if side == 'input' else 'answer'}",
                          "guard_blocked", f"{side}_blocked")
        return 400, {**body, "bastion": info}
    return 200, completion(model, REFUSAL, "content_filter", bastion=info)


def _chunk(cid: str, model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    data = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "delta": delta,
                                         "finish_reason": finish}]}
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _info_chunk(cid: str, model: str, info: dict[str, Any]) -> bytes:
    """The verdicts, as a chunk with no choices (the shape of OpenAI's usage chunk, which
    clients already skip over)."""
    return _sse({"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
                 "model": model, "choices": [], "bastion": info})


def _sse(obj: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()


DONE = b"data: [DONE]\n\n"


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatRequest, request: Request,
                           who: ClientKey) -> Any:
    """OpenAI-compatible chat completion, guarded on the way in and on the way out."""
    svc = service_of(request)
    opts = body.bastion
    user = (body.model_extra or {}).get("user")  # OpenAI's end-user id, if the app sends it
    session = session_of(request, (opts.session_id if opts else None) or
                         (str(user)[:200] if user is not None else None))
    await run_in_threadpool(svc.rate_limit, who, session)
    texts = [message_text(m.content) for m in body.messages if m.role in SCANNED_ROLES]
    prompt = "\n\n".join(t for t in texts if t)
    last_user = next((message_text(m.content) for m in reversed(body.messages)
                      if m.role == "user"), "")
    model = svc.config.upstream.model or body.model or getattr(svc.upstream, "model", None) \
        or "bastion"
    inp = await svc.check("input", prompt, who, session)
    verdict = inp.result.verdict
    if verdict == "block" or (verdict == "review" and svc.config.on_input_review == "block"):
        status, answer = _blocked_body(svc, "input", model, inp, None)
        svc.metrics.requests.labels("chat", str(status)).inc()
        if body.stream and status == 200:
            return StreamingResponse(_refusal_stream(model, answer["bastion"]),
                                     media_type="text/event-stream")
        return JSONResponse(answer, status_code=status)
    # exclude_unset: forward what the client sent, as sent (an explicit null included)
    upstream_body = body.model_dump(exclude={"bastion"}, exclude_unset=True)
    context: dict[str, Any] = {"prompt": last_user,
                               "documents": list(opts.documents) if opts else [],
                               "canary": opts.canary if opts else None}
    if body.stream:
        return await _start_stream(svc, upstream_body, model, inp, who, session, context)
    try:
        answer = await svc.upstream.complete(upstream_body)
    except UpstreamError as exc:
        svc.metrics.requests.labels("chat", str(exc.status)).inc()
        raise ServiceError(exc.status, exc.message, "upstream_error") from None
    text = message_text(answer["choices"][0]["message"]["content"])
    out = await svc.check("output", text, who, session, **context)
    if out.result.verdict == "block":
        status, blocked = _blocked_body(svc, "output", model, inp, out)
        svc.metrics.requests.labels("chat", str(status)).inc()
        return JSONResponse(blocked, status_code=status)
    if out.result.verdict == "redact":
        answer["choices"][0]["message"]["content"] = out.result.sanitized
    answer["bastion"] = {"blocked": None, "input": _summary(inp), "output": _summary(out)}
    svc.metrics.requests.labels("chat", "200").inc()
    return JSONResponse(answer)


async def _refusal_stream(model: str, info: dict[str, Any]) -> AsyncIterator[bytes]:
    cid = f"chatcmpl-{uuid.uuid4().hex}"
    yield _chunk(cid, model, {"role": "assistant", "content": REFUSAL})
    yield _chunk(cid, model, {}, "content_filter")
    yield _info_chunk(cid, model, info)
    yield DONE


async def _start_stream(svc: Service, upstream_body: dict[str, Any], model: str,
                        inp: Checked, who: Principal, session: str,
                        context: dict[str, Any]) -> Any:
    """Open the upstream stream; a failure before its first piece is a plain 502/504."""
    pieces = svc.upstream.stream(upstream_body)
    try:
        first = await anext(pieces)
    except StopAsyncIteration:
        first = ("", "stop")
    except UpstreamError as exc:
        svc.metrics.requests.labels("chat", str(exc.status)).inc()
        raise ServiceError(exc.status, exc.message, "upstream_error") from None
    svc.metrics.requests.labels("chat", "200").inc()
    guard = StreamGuard(svc, model, inp, who, session, context)
    return StreamingResponse(guard.run(first, pieces), media_type="text/event-stream")


class StreamGuard:
    """Release an upstream stream to the client a scanned window at a time."""

    def __init__(self, svc: Service, model: str, inp: Checked, who: Principal, session: str,
                 context: dict[str, Any]) -> None:
        self.svc, self.model, self.inp = svc, model, inp
        self.who, self.session, self.context = who, session, context
        self.cid = f"chatcmpl-{uuid.uuid4().hex}"
        self.raw = ""      # upstream text scanned and released
        self.shown = ""    # what the client has (raw, or raw as redacted)
        self.last: Checked | None = None

    async def run(self, first: StreamPiece,
                  pieces: AsyncIterator[StreamPiece]) -> AsyncIterator[bytes]:
        yield _chunk(self.cid, self.model, {"role": "assistant", "content": ""})
        pending, finish = "", None
        try:
            piece: StreamPiece | None = first
            while piece is not None:
                text, reason = piece
                pending += text
                finish = reason or finish
                cut = self._cut(pending)
                if cut:
                    out, ok = await self._release(pending[:cut])
                    if out:
                        yield out
                    if not ok:
                        return
                    pending = pending[cut:]
                piece = await anext(pieces, None)
            if pending or self.last is None:
                out, ok = await self._release(pending)
                if out:
                    yield out
                if not ok:
                    return
        except UpstreamError as exc:
            yield _sse(error_body(exc.message, "upstream_error", "upstream_failed"))
            yield DONE
            return
        yield _chunk(self.cid, self.model, {}, finish or "stop")
        yield _info_chunk(self.cid, self.model, {"blocked": None, "input": _summary(self.inp),
                                                 "output": _summary(self.last)})
        yield DONE

    def _cut(self, pending: str) -> int:
        """How much of ``pending`` to scan and release now: up to the last sentence end,
        or all of it once the window is full; 0 to keep waiting."""
        ends = [m.end() for m in _BOUNDARY.finditer(pending)]
        if ends:
            return ends[-1]
        return len(pending) if len(pending) >= self.svc.config.limits.stream_window_chars else 0

    async def _release(self, text: str) -> tuple[bytes, bool]:
        """Scan everything so far plus ``text``; the bytes to send, and whether to go on."""
        whole = self.raw + text
        first_review = self.last is None or self.last.result.verdict != "review"
        checked = await self.svc.check("output", whole, self.who, self.session,
                                       file_review=first_review, **self.context)
        self.last = checked
        verdict = checked.result.verdict
        if verdict == "block":
            return self._cut_stream("the guard blocked the rest of the answer",
                                    "output_blocked"), False
        seen = checked.result.sanitized if verdict == "redact" else whole
        if not seen.startswith(self.shown):
            return self._cut_stream("the guard redacted text that was already sent; the "
                                    "stream is stopped", "output_redacted"), False
        new = seen[len(self.shown):]
        self.raw, self.shown = whole, seen
        return (_chunk(self.cid, self.model, {"content": new}) if new else b""), True

    def _cut_stream(self, message: str, code: str) -> bytes:
        body = {**error_body(message, "guard_blocked", code),
                "bastion": {"blocked": "output", "input": _summary(self.inp),
                            "output": _summary(self.last)}}
        return _chunk(self.cid, self.model, {}, "content_filter") + _sse(body) + DONE
