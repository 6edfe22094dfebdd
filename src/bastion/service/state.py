"""What one service instance holds, and the checks every endpoint shares.

:class:`Service` bundles the guard, the store, the rate limiter, the anomaly detector,
the metrics and the upstream. Its :meth:`Service.check` is the one path from a text to a
verdict: scan, count, file a review item for a ``review`` verdict, feed the anomaly
detector, file an escalation when a session tips over, and log ids and numbers only.

Logs never hold prompt or answer text, nor the client's session id as given (it may be
an e-mail address): a session shows up as the first 12 hex digits of its SHA-256.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from bastion.guard import Guard
from bastion.guard.pipeline import Pipeline, PipelineResult
from bastion.service import keys as keylib
from bastion.service.anomaly import AnomalyDetector
from bastion.service.config import ServiceConfig
from bastion.service.limits import ServiceError
from bastion.service.metrics import Metrics
from bastion.service.ratelimit import Limiter, LimiterUnavailable
from bastion.service.storage import Principal, Store
from bastion.service.upstream import Upstream
from bastion.service.workload import ScanBudget

__all__ = ["Checked", "Gate", "Service", "ServiceError", "session_tag"]
log = logging.getLogger("bastion.service")
SESSION_HEADER = "X-Bastion-Session"
#: scanner kinds of the rule layers, run on the roles ``role_scan`` maps to ``rules``
RULE_KINDS = frozenset({"sanitizer", "decoder", "rules"})
#: the session of requests that name none: all of a key's session-less traffic
DEFAULT_SESSION = "default"


@dataclass(frozen=True)
class Checked:
    """A guard result plus what the service did about it."""

    result: PipelineResult
    review_id: int | None
    escalation_id: int | None

    def to_dict(self) -> dict[str, Any]:
        """The guard's ``to_dict()`` plus ``review_id`` and ``escalation_id``."""
        return {**self.result.to_dict(), "review_id": self.review_id,
                "escalation_id": self.escalation_id}


def session_tag(session_id: str) -> str:
    """A short stable stand-in for a session id in logs."""
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()[:12]


class Gate:
    """What every bastion service checks before its endpoint's work: the caller's API key
    and its rate limit. The guard service (:class:`Service`) and the model endpoint
    (``bastion serve-model``) both extend it; subclasses say who is throttled."""

    def __init__(self, config: ServiceConfig, *, store: Store, limiter: Limiter) -> None:
        self.config = config
        self.store = store
        self.limiter = limiter
        self.metrics = Metrics()

    def throttled(self, who: Principal, session_id: str) -> bool:
        """Whether the caller is under an escalation throttle now (none here)."""
        return False

    def throttle_reason(self, who: Principal) -> str:
        """What a throttled caller's 429 says."""
        return "this session was escalated for review and is throttled"

    # -- auth and limits (sync: FastAPI runs them in its thread pool; they do I/O) --------

    def principal(self, request: Request, needed: str = "client") -> Principal:
        """The caller, from ``Authorization: Bearer KEY``; 401 or 403 otherwise."""
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ServiceError(401, "send an API key as 'Authorization: Bearer KEY' "
                               "(make one with `bastion keys create --name NAME`)",
                               "authentication_error", "missing_key",
                               {"WWW-Authenticate": "Bearer"})
        who = self.store.authenticate(key.strip())
        if who is None:
            raise ServiceError(401, "the API key is unknown or revoked",
                               "authentication_error", "invalid_key",
                               {"WWW-Authenticate": "Bearer"})
        if not keylib.allows(who.role, needed):
            raise ServiceError(403, f"this endpoint needs a {needed} key; key {who.key_id} "
                               f"is a {who.role} key", "permission_error", "forbidden")
        return who

    def rate_limit(self, who: Principal, session_id: str) -> None:
        """Take a token from the key's bucket (and the session's throttle); 429 otherwise."""
        rl = self.config.rate_limit
        throttled = False
        try:
            decision = self.limiter.take(f"key:{who.key_id}", rl.rate_per_s, rl.burst)
            if decision.allowed and self.throttled(who, session_id):
                throttled = True
                decision = self.limiter.take(
                    f"throttle:{who.key_id}:{session_tag(session_id)}",
                    self.config.anomaly.throttle_rate_per_s, 1)
        except LimiterUnavailable as exc:
            # Fail closed: without the shared limiter, limits would silently stop holding.
            log.error("rate limiter unavailable: %s", exc)
            raise ServiceError(503, "the rate limiter (Redis) is unreachable; retry later",
                               "service_unavailable", "limiter_down",
                               {"Retry-After": "5"}) from None
        if not decision.allowed:
            self.metrics.rate_limited.inc()
            log.info("rate_limited key=%s session=%s throttled=%s retry_after=%.2fs",
                     who.key_id, session_tag(session_id), throttled, decision.retry_after_s)
            why = (self.throttle_reason(who) if throttled
                   else f"key {who.key_id} is over its rate limit")
            raise ServiceError(429, f"{why}; retry after {decision.retry_after_header} s",
                               "rate_limit_error", "rate_limited",
                               {"Retry-After": decision.retry_after_header})


class Service(Gate):
    """The parts of one running service; endpoints reach it as ``request.app.state.service``."""

    def __init__(self, config: ServiceConfig, *, guard: Guard, store: Store, limiter: Limiter,
                 upstream: Upstream, detector: AnomalyDetector | None = None) -> None:
        super().__init__(config, store=store, limiter=limiter)
        self.guard = guard
        self.upstream = upstream
        self.detector = detector or AnomalyDetector(config.anomaly)
        lim = config.limits
        self.budget = ScanBudget(max_scan_chars=lim.max_scan_chars,
                                 max_pending_chars_per_key=lim.max_pending_chars_per_key,
                                 max_pending_chars=lim.max_pending_chars)

    def throttled(self, who: Principal, session_id: str) -> bool:
        """Whether the anomaly detector throttles this (key, session) now."""
        return self.detector.throttled(self._session_key(who, session_id))

    @staticmethod
    def _session_key(who: Principal, session_id: str) -> str:
        return f"{who.key_id}:{session_id}"

    # -- the one path from text to verdict ------------------------------------------------

    @functools.cached_property
    def rules_pipeline(self) -> Pipeline:
        """The guard's input pipeline with only its rule layers (:data:`RULE_KINDS`)."""
        source = self.guard.policy.input
        return Pipeline([layer for layer in source.layers
                         if getattr(layer.scanner, "kind", None) in RULE_KINDS],
                        fail_mode=source.fail_mode, early_exit=source.early_exit,
                        budget_ms=source.budget_ms)

    async def check(self, direction: str, text: str, who: Principal, session_id: str,
                    file_review: bool = True, observed: str | None = None,
                    rules_only: bool = False, **output_context: Any) -> Checked:
        """Scan ``text`` (``direction`` input or output) and act on the verdict.

        ``file_review``: file a review item for a ``review`` verdict (a stream, scanned
        once per window, files only its first). ``observed``: the text the anomaly
        detector compares (default ``text``; the proxy passes the last user turn, since
        the system prompt every request repeats would make all prompts look alike).
        ``rules_only``: an input scan with :attr:`rules_pipeline`, not fed to the anomaly
        detector. ``output_context``: ``prompt``, ``documents``, ``canary`` for output scans.
        """
        if rules_only:
            result = await self.budget.run(who.key_id, direction, len(text),
                                           self.rules_pipeline.run, text)
        elif direction == "input":
            result = await self.budget.run(who.key_id, direction, len(text),
                                           self.guard.scan_input, text)
        else:
            result = await self.budget.run(who.key_id, direction, len(text),
                                           self.guard.scan_output, text, **output_context)
        self.metrics.record(direction, result)
        review_id = escalation_id = None
        if result.verdict == "review" and file_review:
            review_id = await run_in_threadpool(self._file, "verdict", direction, text, result,
                                                who, session_id, self._reasons(result))
        if direction == "input" and not rules_only:
            escalation_id = await self._observe(observed or text, result, who, session_id)
        log.info("scan direction=%s key=%s session=%s verdict=%s score=%.3f ms=%.1f "
                 "review=%s", direction, who.key_id, session_tag(session_id), result.verdict,
                 result.score, result.latency_ms, review_id)
        return Checked(result, review_id, escalation_id)

    async def _observe(self, text: str, result: PipelineResult, who: Principal,
                       session_id: str) -> int | None:
        """Feed the anomaly detector (per session and per key); the escalation item's id
        when one was filed."""
        flagged = result.verdict != "allow"
        escalation = self.detector.observe(self._session_key(who, session_id), text,
                                           flagged=flagged,
                                           shared=session_id == DEFAULT_SESSION)
        per_key = self.detector.observe_key(who.key_id, flagged)  # always: it counts
        escalation = escalation or per_key
        if escalation is None:
            return None
        for signal in escalation.signals:
            self.metrics.escalations.labels(signal).inc()
        escalation_id: int = await run_in_threadpool(
            self._file, "escalation", "input", text, result, who, session_id,
            f"session escalated: {escalation.reason}")
        log.warning("escalation key=%s session=%s signals=%s item=%s", who.key_id,
                    session_tag(session_id), ",".join(escalation.signals), escalation_id)
        return escalation_id

    @staticmethod
    def _reasons(result: PipelineResult) -> str:
        return "; ".join(f"{r.scanner}: {r.reason}" for r in result.layers
                         if r.verdict != "allow") or "no layer objected"

    def _file(self, kind: str, direction: str, text: str, result: PipelineResult,
              who: Principal, session_id: str, reason: str) -> int:
        layers = [r.to_dict() for r in result.layers]
        return self.store.add_item(kind=kind, direction=direction, text=text,
                                   verdict=result.verdict, score=result.score, layers=layers,
                                   reason=reason, key_id=who.key_id, session_id=session_id)

    async def aclose(self) -> None:
        await self.upstream.aclose()
        self.store.close()
