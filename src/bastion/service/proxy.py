"""``POST /v1/chat/completions``: OpenAI's chat API with the guard on both sides.

1. Every text of every message is scanned (see :mod:`bastion.service.prompts`: every
   role, every content part, names and other text fields): the roles ``role_scan`` maps
   to ``full`` as one prompt with every input layer, those it maps to ``rules`` (by
   default system, developer and assistant) as another with the rule layers only.
   ``block`` (or ``review`` with ``on_input_review: block``) ends the request.
2. The request, minus bastion's ``bastion`` field, goes upstream.
3. The whole answer is scanned, every choice and every text field (see
   :mod:`bastion.service.answers`), with the last user message as its prompt. ``block``
   replaces it; ``redact`` answers it with each field redacted, or blocks when a finding
   cannot be redacted in place (fail closed).

A block answers, per ``block_response``, an OpenAI completion whose finish_reason is
``content_filter`` and whose content is a refusal (200: apps keep working), or an error
(400, type ``guard_blocked``). Either way a ``bastion`` field carries the verdicts.

Streams (``stream: true``) are scanned as they pass, per choice and per field (see
:mod:`bastion.service.streaming`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from bastion.guard.base import SEVERITY
from bastion.service.answers import answer_text, redact_answer
from bastion.service.deps import ClientKey, service_of, session_of
from bastion.service.limits import error_body
from bastion.service.models import ChatRequest
from bastion.service.prompts import last_user_text, prompt_texts
from bastion.service.state import Checked, Service, ServiceError
from bastion.service.storage import Principal
from bastion.service.streaming import DONE, StreamGuard, chunk, info_chunk, summary
from bastion.service.upstream import UpstreamError, completion

router = APIRouter(tags=["proxy"])
REFUSAL = "I can't help with that request."


def _blocked_body(svc: Service, side: str, model: str, inp: Checked,
                  out: Checked | None) -> tuple[int, dict[str, Any]]:
    info = {"blocked": side, "input": summary(inp), "output": summary(out)}
    if svc.config.block_response == "error":
        body = error_body(f"the guard blocked the {'prompt' if side == 'input' else 'answer'}",
                          "guard_blocked", f"{side}_blocked")
        return 400, {**body, "bastion": info}
    return 200, completion(model, REFUSAL, "content_filter", bastion=info)


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
    messages = [m.model_dump(exclude_unset=True) for m in body.messages]
    prompts = prompt_texts(messages, svc.config.role_scan)
    last_user = last_user_text(messages)
    model = svc.config.upstream.model or body.model or getattr(svc.upstream, "model", None) \
        or "bastion"
    inp = await svc.check("input", prompts["full"], who, session, observed=last_user or None)
    if prompts["rules"] and inp.result.verdict != "block":
        ruled = await svc.check("input", prompts["rules"], who, session, rules_only=True)
        if SEVERITY[ruled.result.verdict] > SEVERITY[inp.result.verdict]:
            inp = ruled
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
    out, shown = await _guarded_answer(svc, answer, who, session, context)
    if shown is None:
        status, blocked = _blocked_body(svc, "output", model, inp, out)
        svc.metrics.requests.labels("chat", str(status)).inc()
        return JSONResponse(blocked, status_code=status)
    answer = {**shown, "bastion": {"blocked": None, "input": summary(inp),
                                   "output": summary(out)}}
    svc.metrics.requests.labels("chat", "200").inc()
    return JSONResponse(answer)


async def _refusal_stream(model: str, info: dict[str, Any]) -> AsyncIterator[bytes]:
    cid = f"chatcmpl-{uuid.uuid4().hex}"
    yield chunk(cid, model, {"role": "assistant", "content": REFUSAL})
    yield chunk(cid, model, {}, "content_filter")
    yield info_chunk(cid, model, info)
    yield DONE


async def _start_stream(svc: Service, upstream_body: dict[str, Any], model: str,
                        inp: Checked, who: Principal, session: str,
                        context: dict[str, Any]) -> Any:
    """Open the upstream stream; a failure before its first piece is a plain 502/504."""
    pieces = svc.upstream.stream(upstream_body)
    try:
        first = await anext(pieces)
    except StopAsyncIteration:
        first = {"choices": []}
    except UpstreamError as exc:
        svc.metrics.requests.labels("chat", str(exc.status)).inc()
        raise ServiceError(exc.status, exc.message, "upstream_error") from None
    svc.metrics.requests.labels("chat", "200").inc()
    guard = StreamGuard(svc, model, inp, who, session, context)
    return StreamingResponse(guard.run(first, pieces), media_type="text/event-stream")


async def _guarded_answer(svc: Service, answer: dict[str, Any], who: Principal,
                          session: str, context: dict[str, Any]
                          ) -> tuple[Checked, dict[str, Any] | None]:
    """Scan every text of ``answer``; the verdict and what the client may see (``None``:
    block)."""
    out = await svc.check("output", answer_text(answer), who, session, **context)
    verdict = out.result.verdict
    if verdict == "block":
        return out, None
    if verdict == "redact":
        return out, await run_in_threadpool(redact_answer, svc.guard, answer, context)
    return out, answer
