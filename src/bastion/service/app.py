"""The FastAPI application: ``create_app(config)`` builds one service instance.

    from bastion.service import create_app, load_config
    app = create_app(load_config("service.yaml"))     # then: uvicorn, or TestClient(app)

Endpoints (the OpenAPI document is at ``/openapi.json``, browsable at ``/docs``):

* ``POST /v1/scan/input``, ``POST /v1/scan/output``: the guard's verdict (client key);
* ``POST /v1/chat/completions``: the OpenAI-compatible guarded proxy (client key);
* ``GET /v1/review/items``, ``GET /v1/review/items/{id}``,
  ``POST /v1/review/items/{id}/decision``: the review queue (reviewer key);
* ``GET|POST /v1/admin/keys``, ``DELETE /v1/admin/keys/{id}`` (admin key);
* ``/review``: the review web page (reviewer key, signed session cookie);
* ``GET /healthz`` (the process answers), ``GET /readyz`` (database and Redis answer),
  ``GET /metrics`` (Prometheus).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from bastion.errors import InputError
from bastion.guard import Guard
from bastion.service import proxy, review, web
from bastion.service.config import ServiceConfig
from bastion.service.deps import ClientKey, gate_of, service_of, session_of
from bastion.service.limits import RequestLimits, error_body
from bastion.service.models import ScanInputRequest, ScanOutputRequest, ScanResponse
from bastion.service.ratelimit import Limiter, make_limiter
from bastion.service.state import Service, ServiceError
from bastion.service.storage import Store
from bastion.service.upstream import EmbeddedUpstream, HTTPUpstream, Upstream

log = logging.getLogger("bastion.service")


def make_upstream(config: ServiceConfig) -> Upstream:
    up = config.upstream
    if up.url:
        return HTTPUpstream(up.url, api_key=up.api_key, model=up.model, timeout_s=up.timeout_s)
    return EmbeddedUpstream(max_tokens=up.max_tokens, timeout_s=up.timeout_s)


#: problems listed in one 422 answer (a body with 60,000 unknown fields is one line long).
MAX_PROBLEMS = 10
_MAX_WHERE = 120


def _validation_message(exc: RequestValidationError, content_type: str = "") -> str:
    """One clause per problem (at most :data:`MAX_PROBLEMS`): where, and what is wrong."""
    errors = exc.errors()
    if content_type and "json" not in content_type and any(
            tuple(e.get("loc", ())) == ("body",) for e in errors):
        return (f"invalid request: the body must be JSON sent with 'Content-Type: "
                f"application/json' (this request said {content_type[:80]!r})")
    parts = []
    for err in errors[:MAX_PROBLEMS]:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        if err.get("type") == "json_invalid":
            why = (err.get("ctx") or {}).get("error", "")
            parts.append(f"the body is not valid JSON ({why})" if why
                         else "the body is not valid JSON")
            continue
        where = ".".join(loc)[:_MAX_WHERE] or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    if len(errors) > MAX_PROBLEMS:
        parts.append(f"and {len(errors) - MAX_PROBLEMS} more problems")
    return "invalid request: " + "; ".join(parts)


def install_handlers(app: FastAPI) -> None:
    """The error answers every bastion service gives (OpenAI's shape; 422 for bad input)."""
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message = _validation_message(exc, request.headers.get("content-type", ""))
        return JSONResponse(error_body(message, "invalid_request_error", "invalid_body"),
                            status_code=422)

    @app.exception_handler(InputError)
    async def _input_error(_: Request, exc: InputError) -> JSONResponse:
        return JSONResponse(error_body(str(exc), "invalid_request_error"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail), "http_error", str(exc.status_code)),
                            status_code=exc.status_code, headers=exc.headers)


def create_app(config: ServiceConfig | None = None, *, guard: Guard | None = None,
               store: Store | None = None, limiter: Limiter | None = None,
               upstream: Upstream | None = None, warm: bool = False) -> FastAPI:
    """Build the service. Parts not given are made from ``config`` (tests pass shared ones).

    Args:
        warm: load the embedded model in the background at start-up (``bastion serve``).
    """
    config = config or ServiceConfig()
    svc = Service(config, guard=guard or Guard(config.policy),
                  store=store or Store(config.database_url),
                  limiter=limiter or make_limiter(config.redis_url, config.redis_prefix),
                  upstream=upstream or make_upstream(config))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if warm and isinstance(svc.upstream, EmbeddedUpstream):
            import threading
            threading.Thread(target=svc.upstream.warm, daemon=True).start()
        yield
        await svc.aclose()

    app = FastAPI(title="bastion guard service", version="1",
                  description="LLM guard as a service: scans, an OpenAI-compatible guarded "
                              "proxy, a human review queue.", lifespan=lifespan)
    app.state.service = svc
    install_handlers(app)
    _routes(app)
    ops_routes(app)
    app.include_router(proxy.router)
    app.include_router(review.router)
    app.include_router(web.router)
    app.add_middleware(RequestLimits, max_body_bytes=config.limits.max_body_bytes,
                       max_header_bytes=config.limits.max_header_bytes,
                       max_json_depth=config.limits.max_json_depth,
                       timeout_s=config.limits.request_timeout_s)
    return app


def _routes(app: FastAPI) -> None:
    @app.post("/v1/scan/input", response_model=ScanResponse, tags=["scan"])
    async def scan_input(body: ScanInputRequest, request: Request,
                         who: ClientKey) -> dict[str, Any]:
        """Scan a prompt with the policy's input layers. 200 whatever the verdict."""
        svc = service_of(request)
        session = session_of(request, body.session_id)
        await run_in_threadpool(svc.rate_limit, who, session)
        checked = await svc.check("input", body.text, who, session)
        svc.metrics.requests.labels("scan_input", "200").inc()
        return checked.to_dict()

    @app.post("/v1/scan/output", response_model=ScanResponse, tags=["scan"])
    async def scan_output(body: ScanOutputRequest, request: Request,
                          who: ClientKey) -> dict[str, Any]:
        """Scan a model's answer with the policy's output layers. 200 whatever the verdict."""
        svc = service_of(request)
        session = session_of(request, body.session_id)
        await run_in_threadpool(svc.rate_limit, who, session)
        checked = await svc.check("output", body.text, who, session, prompt=body.prompt,
                                  documents=body.documents, canary=body.canary)
        svc.metrics.requests.labels("scan_output", "200").inc()
        return checked.to_dict()


def ops_routes(app: FastAPI) -> None:
    """``/healthz``, ``/readyz`` and ``/metrics`` (any app whose state holds a Gate)."""
    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is up and serving."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> JSONResponse:
        """The database (and Redis, when configured) answer: 200, else 503 naming which."""
        svc = gate_of(request)
        problems = {}
        for name, ping in (("database", svc.store.ping), ("rate_limiter", svc.limiter.ping)):
            try:
                await run_in_threadpool(ping)
            except Exception as exc:  # any failure means not ready; the class says which
                problems[name] = type(exc).__name__
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems},
                                status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["ops"])
    async def metrics(request: Request) -> Response:
        """Prometheus text format."""
        return Response(gate_of(request).metrics.render(),
                        media_type="text/plain; version=0.0.4; charset=utf-8")
