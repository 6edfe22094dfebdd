"""The review web page: log in with a reviewer key, read the queue, decide items.

The key is checked once, at log-in; the browser then holds a cookie signed with
itsdangerous that names the key's *id* (never the key) and expires after
``SESSION_MAX_AGE_S``. Every page re-checks that the key is still live and a reviewer's,
so revoking a key logs it out. Forms carry a CSRF token (an HMAC of the cookie) and the
cookie is ``SameSite=Strict``: a page elsewhere cannot make a reviewer's browser decide.

Logging out (a form with the CSRF token) records the time in the database, shared by
replicas: every cookie of that key issued earlier stops working at once, on every
browser, rather than living on until it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool

from bastion.service import keys as keylib
from bastion.service.deps import service_of
from bastion.service.review import ItemId, decide
from bastion.service.state import Service, ServiceError
from bastion.service.storage import NotFound, Principal
from bastion.service.templates import ENV

router = APIRouter(include_in_schema=False)
COOKIE = "bastion_review"
SESSION_MAX_AGE_S = 8 * 3600
#: setting name prefix: when each key last logged out (Unix seconds)
_LOGOUT = "review_logout:"


def _secret(svc: Service) -> str:
    secret: str | None = getattr(svc, "_session_secret", None)
    if secret is None:
        secret = svc.config.session_secret or svc.store.session_secret()
        svc._session_secret = secret  # type: ignore[attr-defined]
    return secret


def _signer(svc: Service) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_secret(svc), salt="bastion-review")


def _csrf(svc: Service, cookie: str) -> str:
    return hmac.new(_secret(svc).encode(), cookie.encode(), hashlib.sha256).hexdigest()[:32]


def _who(request: Request) -> Principal | None:
    """The reviewer this browser is logged in as, or ``None``."""
    svc = service_of(request)
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    try:
        payload = _signer(svc).loads(cookie, max_age=SESSION_MAX_AGE_S)
        key_id, issued = str(payload["k"]), float(payload["t"])
    except (BadSignature, KeyError, TypeError, ValueError):
        return None
    if issued <= float(svc.store.setting(_LOGOUT + key_id, "0")):
        return None  # logged out after this cookie was issued
    who = svc.store.principal(key_id)
    return who if who is not None and keylib.allows(who.role, "reviewer") else None


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(ENV.get_template(name).render(**context), status_code=status,
                        headers={"Cache-Control": "no-store",
                                 "Content-Security-Policy": "default-src 'self'; "
                                                            "style-src 'unsafe-inline'"})


def _to_login() -> RedirectResponse:
    return RedirectResponse("/review/login", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _authorized_post(request: Request) -> tuple[Principal | None, dict[str, str]]:
    """The logged-in reviewer and the form, if the form's CSRF token matches the cookie."""
    who = await run_in_threadpool(_who, request)
    form = await _form(request)
    cookie = request.cookies.get(COOKIE, "")
    if who is None or not hmac.compare_digest(form.get("csrf", ""),
                                              _csrf(service_of(request), cookie)):
        return None, form
    return who, form


@router.get("/review/login")
async def login_page() -> HTMLResponse:
    return _page("login.html", who=None)


@router.post("/review/login")
async def login(request: Request) -> Response:
    svc = service_of(request)
    key = (await _form(request)).get("key", "").strip()
    who = await run_in_threadpool(svc.store.authenticate, key) if key else None
    if who is None or not keylib.allows(who.role, "reviewer"):
        why = "that key is not a live reviewer or admin key"
        return _page("login.html", 401, who=None, error=why)
    response = RedirectResponse("/review", status_code=303)
    response.set_cookie(COOKIE, _signer(svc).dumps({"k": who.key_id, "t": time.time()}),
                        max_age=SESSION_MAX_AGE_S, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/review")
    return response


@router.post("/review/logout")
async def logout(request: Request) -> Response:
    who, _ = await _authorized_post(request)
    if who is None:
        return _page("login.html", 403, who=None,
                     error="log in again: the session expired or the form is stale")
    await run_in_threadpool(service_of(request).store.put_setting, _LOGOUT + who.key_id,
                            repr(time.time()))
    response = _to_login()
    response.delete_cookie(COOKIE, path="/review")
    return response


@router.get("/review")
async def queue(request: Request, state: str = "pending") -> Response:
    who = await run_in_threadpool(_who, request)
    if who is None:
        return _to_login()
    svc = service_of(request)
    if state not in ("pending", "approved", "rejected"):
        state = "pending"
    items = await run_in_threadpool(svc.store.list_items, state, 200, 0)
    pending = await run_in_threadpool(svc.store.count_items, "pending")
    return _page("queue.html", who=who, items=items, state=state, pending=pending,
                 csrf=_csrf(svc, request.cookies.get(COOKIE, "")))


@router.get("/review/items/{item_id}")
async def item_page(item_id: ItemId, request: Request) -> Response:
    who = await run_in_threadpool(_who, request)
    if who is None:
        return _to_login()
    svc = service_of(request)
    try:
        item = await run_in_threadpool(svc.store.get_item, item_id)
    except NotFound:
        return _page("queue.html", 404, who=who, items=[], state=f"with id {item_id}",
                     pending=0, csrf="")
    audit = await run_in_threadpool(svc.store.audit_log, item_id)
    return _page("item.html", who=who, item=item, audit=audit,
                 csrf=_csrf(svc, request.cookies.get(COOKIE, "")))


@router.post("/review/items/{item_id}/decide")
async def decide_page(item_id: ItemId, request: Request) -> Response:
    who, form = await _authorized_post(request)
    if who is None:
        return _page("login.html", 403, who=None,
                     error="log in again: the session expired or the form is stale")
    try:
        await decide(request, item_id, form.get("decision", ""), form.get("note", ""), who)
    except ServiceError as exc:
        return Response(exc.body["error"]["message"], status_code=exc.status)
    except ValueError as exc:  # an unknown decision value
        return Response(str(exc), status_code=422)
    return RedirectResponse("/review", status_code=303)
