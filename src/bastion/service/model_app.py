"""``bastion serve-model``: a classifier behind API keys, rate limits, an output defence
and a PRADA extraction monitor.

    from bastion.service.model_app import create_model_app
    from bastion.service.predict import load_served
    app = create_model_app(config, load_served("mnist-smallcnn-std", answer="topk:3"))

Endpoints: ``POST /v1/predict`` (client key) with ``{"inputs": [[...], ...]}``; the review
queue and key API of the guard service (``/v1/review/...``, ``/v1/admin/keys``);
``/healthz``, ``/readyz``, ``/metrics``. Keys, rate limits (in-process or Redis), the
error format and the request bounds are the guard service's own.

Every query of a key goes through :class:`bastion.privacy.prada.PradaMonitor`, in
order. When it flags a key, the service files one ``escalation`` review item (the W
statistic and the query count, never the inputs), counts
``bastion_escalations_total{signal="prada"}`` and, with ``predict.prada_throttle``,
throttles the key like the guard's anomaly detector (``anomaly.throttle_rate_per_s`` for
``anomaly.throttle_s``). Answers to a flagged key are unchanged and its 429s read like
any rate limit's: the client is not told that it was flagged. With
``predict.share_reference`` (the training images, ``DATASET[:SPLIT]``) each query also
goes through :class:`bastion.privacy.query_monitor.QueryShareMonitor`, whose flag is
filed and throttled the same way under ``signal="share"``. The monitors live in this
process: run one worker per model replica (several would each see a share of a key).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import torch
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from bastion.privacy.prada import PradaMonitor, PradaVerdict
from bastion.privacy.query_monitor import QueryShareMonitor
from bastion.service import review
from bastion.service.app import install_handlers, ops_routes
from bastion.service.config import ServiceConfig
from bastion.service.deps import ClientKey
from bastion.service.limits import RequestLimits
from bastion.service.predict import ServedModel
from bastion.service.ratelimit import Limiter, make_limiter
from bastion.service.state import DEFAULT_SESSION, Gate
from bastion.service.storage import Principal, Store

log = logging.getLogger("bastion.service")
#: JSON bytes allowed per input value when sizing the body cap (``0.123456789012345,``)
_BYTES_PER_VALUE = 24


class PredictRequest(BaseModel):
    """``inputs``: N rows of C*H*W numbers in [0, 1]."""

    model_config = ConfigDict(extra="forbid")
    inputs: Annotated[list[list[float]], Field(description="rows of C*H*W values in [0, 1]")]


class ModelService(Gate):
    """Keys, limits, the served model and the PRADA monitor of one endpoint."""

    def __init__(self, config: ServiceConfig, served: ServedModel, *, store: Store,
                 limiter: Limiter) -> None:
        super().__init__(config, store=store, limiter=limiter)
        self.served = served
        p = config.predict
        self.monitor = PradaMonitor(p.prada_delta, min_distances=p.prada_min_distances,
                                    window=p.prada_window, max_per_class=p.prada_max_per_class,
                                    max_clients=p.prada_max_clients) if p.prada else None
        self.share = _share_monitor(p.share_reference, p.share_reference_n)
        self._throttled_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def throttled(self, who: Principal, session_id: str) -> bool:
        with self._lock:
            return time.monotonic() < self._throttled_until.get(who.key_id, -1.0)

    def throttle_reason(self, who: Principal) -> str:
        return f"key {who.key_id} is over its rate limit"  # the same words as any 429

    def predict(self, who: Principal, x: torch.Tensor) -> dict[str, Any]:
        """Answer (N, C, H, W) ``x`` for ``who`` and feed the monitor (sync: a pool
        thread runs it)."""
        probs = self.served.probabilities(x)
        if self.monitor is not None:
            verdict = self.monitor.observe_batch(who.key_id, x.reshape(len(x), -1).numpy(),
                                                 probs.argmax(1).numpy())
            if verdict.new:
                self._escalate(who, verdict)
        if self.share is not None:
            for row in x.reshape(len(x), -1).numpy():
                seen = self.share.observe(who.key_id, row)
                if seen["flagged_at"] == seen["queries"]:  # flagged by this query
                    self._file(who, "share", 1.0 - seen["p_value"], seen,
                               f"model extraction suspected: {seen['out']} of "
                               f"{seen['queries']} queries unlike the training data "
                               f"(binomial p {seen['p_value']:.1e}) to {self.served.name}")
        return self.served.answer(probs)

    def _escalate(self, who: Principal, verdict: PradaVerdict) -> None:
        delta = self.config.predict.prada_delta
        w = verdict.w_at_flag if verdict.w_at_flag is not None else float("nan")
        reason = (f"model extraction suspected (PRADA): Shapiro-Wilk W {w:.3f} < "
                  f"{delta:g} after {verdict.flagged_at} queries to {self.served.name}")
        self._file(who, "prada", 1 - w, verdict.to_dict(), reason)

    def _file(self, who: Principal, signal: str, score: float, facts: dict[str, Any],
              reason: str) -> None:
        """One escalation item (the facts, never the inputs), the metric, the throttle."""
        layer = {"name": signal, "verdict": "review", "score": round(score, 4),
                 "latency_ms": 0.0, "reason": reason, "spans": [], **facts}
        item = self.store.add_item(kind="escalation", direction="input", text=reason,
                                   verdict="review", score=score, layers=[layer],
                                   reason=reason, key_id=who.key_id,
                                   session_id=DEFAULT_SESSION)
        self.metrics.escalations.labels(signal).inc()
        if self.config.predict.prada_throttle:
            with self._lock:
                self._throttled_until[who.key_id] = (time.monotonic()
                                                     + self.config.anomaly.throttle_s)
        log.warning("escalation key=%s signal=%s item=%s: %s", who.key_id, signal, item,
                    reason)


def _share_monitor(reference: str | None, n: int) -> QueryShareMonitor | None:
    """The query-distribution test fitted on ``n`` images of ``reference``
    (``DATASET[:SPLIT]``, the model's training data), or None when not configured."""
    if reference is None:
        return None
    from bastion import data

    name, _, split = reference.partition(":")
    images = data.load(name, split or "train", n).x
    return QueryShareMonitor().fit(images.reshape(len(images), -1).numpy())


def create_model_app(config: ServiceConfig, served: ServedModel, *, store: Store | None = None,
                     limiter: Limiter | None = None) -> FastAPI:
    """The ``serve-model`` app for ``served``; parts not given are made from ``config``."""
    svc = ModelService(config, served, store=store or Store(config.database_url),
                       limiter=limiter or make_limiter(config.redis_url, config.redis_prefix))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        svc.store.close()

    app = FastAPI(title="bastion model endpoint", version="1", lifespan=lifespan,
                  description=f"{served.name} behind API keys, rate limits, the output "
                              f"defence {served.defense!r} and a PRADA extraction monitor.")
    app.state.service = svc
    install_handlers(app)
    ops_routes(app)
    app.include_router(review.router)

    @app.post("/v1/predict", tags=["predict"])
    async def predict(body: PredictRequest, request: Request,
                      who: ClientKey) -> dict[str, Any]:
        """Classify a batch: labels, top-k or probabilities after the output defence."""
        await run_in_threadpool(svc.rate_limit, who, DEFAULT_SESSION)
        x = svc.served.check(body.inputs, config.predict.max_batch)  # InputError -> 422
        answer = await run_in_threadpool(svc.predict, who, x)
        svc.metrics.requests.labels("predict", "200").inc()
        return answer

    @app.get("/v1/model", tags=["predict"])
    async def model_info(who: ClientKey) -> dict[str, Any]:
        """The served model's name, defence, answer mode, input shape and class count."""
        return {**served.describe(), "max_batch": config.predict.max_batch}

    # A full batch of full-precision floats must fit, whatever the guard's body cap.
    body_cap = max(config.limits.max_body_bytes,
                   config.predict.max_batch * served.size * _BYTES_PER_VALUE + 4096)
    app.add_middleware(RequestLimits, max_body_bytes=body_cap,
                       max_header_bytes=config.limits.max_header_bytes,
                       max_json_depth=config.limits.max_json_depth,
                       timeout_s=config.limits.request_timeout_s)
    return app
