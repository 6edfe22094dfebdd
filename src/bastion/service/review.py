"""The review queue's JSON API (reviewer keys) and key management (admin keys).

    GET  /v1/review/items?state=pending&limit=50&offset=0
    GET  /v1/review/items/{id}            the item and its audit trail
    POST /v1/review/items/{id}/decision   {"decision": "approve"|"reject", "note": "..."}
    GET  /v1/admin/keys                   ids, names, roles (never digests)
    POST /v1/admin/keys                   {"name": ..., "role": ...}: the key, once
    DELETE /v1/admin/keys/{id}

Deciding an item that is already decided answers 409; the first decision stands.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from bastion.service.deps import AdminKey, ReviewerKey, gate_of
from bastion.service.models import Decision, NewKeyRequest
from bastion.service.state import ServiceError
from bastion.service.storage import Conflict, NotFound, Principal

router = APIRouter()
#: item ids fit a 32-bit integer column; a larger one would be a database error (a 500).
ItemId = Annotated[int, Path(ge=1, le=2**31 - 1)]
log = logging.getLogger("bastion.service")


@router.get("/v1/review/items", tags=["review"])
async def list_items(request: Request, who: ReviewerKey,
                     state: Literal["pending", "approved", "rejected", "all"] = "pending",
                     limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0) -> dict[str, Any]:
    """Review items in ``state``, oldest first."""
    store = gate_of(request).store
    items = await run_in_threadpool(store.list_items, None if state == "all" else state,
                                    limit, offset)
    return {"items": items}


@router.get("/v1/review/items/{item_id}", tags=["review"])
async def get_item(item_id: ItemId, request: Request,
                   who: ReviewerKey) -> dict[str, Any]:
    """One item, with the audit records about it."""
    store = gate_of(request).store
    try:
        item = await run_in_threadpool(store.get_item, item_id)
    except NotFound as exc:
        raise ServiceError(404, str(exc), "not_found") from None
    item["audit"] = await run_in_threadpool(store.audit_log, item_id)
    return item


async def decide(request: Request, item_id: int, decision: str, note: str,
                 who: Principal) -> dict[str, Any]:
    """Record a decision (shared by the API and the web page); 404 or 409 otherwise."""
    store = gate_of(request).store
    try:
        item = await run_in_threadpool(store.decide, item_id, decision, who.key_id, note)
    except NotFound as exc:
        raise ServiceError(404, str(exc), "not_found") from None
    except Conflict as exc:
        raise ServiceError(409, str(exc), "conflict") from None
    log.info("decide item=%s state=%s by=%s", item_id, item["state"], who.key_id)
    return item


@router.post("/v1/review/items/{item_id}/decision", tags=["review"])
async def post_decision(item_id: ItemId, body: Decision, request: Request,
                        who: ReviewerKey) -> dict[str, Any]:
    """Approve (the text was fine) or reject (it was an attack or a leak) a pending item."""
    return await decide(request, item_id, body.decision, body.note, who)


@router.get("/v1/admin/keys", tags=["admin"])
async def list_keys(request: Request, who: AdminKey) -> dict[str, Any]:
    """Every key's id, name, role, created_at, revoked_at."""
    return {"keys": await run_in_threadpool(gate_of(request).store.list_keys)}


@router.post("/v1/admin/keys", tags=["admin"], status_code=201)
async def create_key(body: NewKeyRequest, request: Request,
                     who: AdminKey) -> dict[str, Any]:
    """Make a key; the answer is the only time the key is shown."""
    made = await run_in_threadpool(gate_of(request).store.create_key, body.name,
                                   body.role, who.key_id)
    log.info("key.create id=%s role=%s by=%s", made.key_id, body.role, who.key_id)
    return {"id": made.key_id, "key": made.key, "name": body.name, "role": body.role}


@router.delete("/v1/admin/keys/{key_id}", tags=["admin"])
async def revoke_key(key_id: str, request: Request,
                     who: AdminKey) -> dict[str, Any]:
    """Revoke a key (at once in this replica, within seconds in the others)."""
    try:
        await run_in_threadpool(gate_of(request).store.revoke_key, key_id, who.key_id)
    except NotFound as exc:
        raise ServiceError(404, str(exc), "not_found") from None
    log.info("key.revoke id=%s by=%s", key_id, who.key_id)
    return {"id": key_id, "revoked": True}
