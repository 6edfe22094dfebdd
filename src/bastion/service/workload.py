"""Bounds on the scanning work in flight, counted in characters (a scan's cost grows with
its length: the classifier layers read text a window at a time).

A scan runs in a worker thread that cannot be stopped once it started, so a request
that times out (504) leaves its scan running. :class:`ScanBudget` therefore counts a
scan's characters from admission until its thread *finishes*, not until the request
ends, and refuses new scans that would pass

* ``max_scan_chars`` for one scan (413 for a prompt; 502 for an upstream answer, which
  is then not delivered: fail closed);
* ``max_pending_chars_per_key`` for one API key (429): one client's burst of huge texts
  cannot queue minutes of CPU;
* ``max_pending_chars`` for the whole process (503): all clients together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from bastion.service.limits import ServiceError

T = TypeVar("T")
RETRY_AFTER_S = "2"


class ScanBudget:
    """Characters admitted and not yet scanned, per key and in all; thread-safe."""

    def __init__(self, *, max_scan_chars: int, max_pending_chars_per_key: int,
                 max_pending_chars: int) -> None:
        self.max_scan_chars = max_scan_chars
        self.max_per_key = max_pending_chars_per_key
        self.max_total = max_pending_chars
        self._lock = threading.Lock()
        self._per_key: dict[str, int] = {}
        self._total = 0

    def admit(self, key_id: str, chars: int, direction: str) -> None:
        """Reserve ``chars`` for ``key_id``; a :class:`ServiceError` when over a bound."""
        if chars > self.max_scan_chars:
            prompt = direction == "input"
            raise ServiceError(413 if prompt else 502,
                               f"the {'prompt' if prompt else 'answer'} to scan is {chars} "
                               f"characters; this service scans at most "
                               f"{self.max_scan_chars} (limits.max_scan_chars)",
                               "invalid_request_error" if prompt else "upstream_error",
                               "scan_too_large")
        with self._lock:
            mine = self._per_key.get(key_id, 0)
            if mine and mine + chars > self.max_per_key:
                raise ServiceError(429, f"key {key_id} already has {mine} characters being "
                                   f"scanned (at most {self.max_per_key}); retry after "
                                   f"{RETRY_AFTER_S} s", "rate_limit_error", "scan_backlog",
                                   {"Retry-After": RETRY_AFTER_S})
            if self._total and self._total + chars > self.max_total:
                raise ServiceError(503, "the service is busy scanning other requests; retry "
                                   f"after {RETRY_AFTER_S} s", "service_unavailable",
                                   "scan_backlog", {"Retry-After": RETRY_AFTER_S})
            self._per_key[key_id] = mine + chars
            self._total += chars

    def release(self, key_id: str, chars: int) -> None:
        with self._lock:
            left = self._per_key.get(key_id, 0) - chars
            if left > 0:
                self._per_key[key_id] = left
            else:
                self._per_key.pop(key_id, None)
            self._total -= chars

    def pending(self, key_id: str | None = None) -> int:
        """Characters admitted and not yet scanned (for one key, or in all)."""
        with self._lock:
            return self._total if key_id is None else self._per_key.get(key_id, 0)

    async def run(self, key_id: str, direction: str, chars: int, work: Callable[..., T],
                  *args: Any, **kwargs: Any) -> T:
        """Admit ``chars`` for ``key_id``, then run ``work`` in the thread pool; the
        reservation lasts until ``work`` returns, even if the request is cancelled."""
        self.admit(key_id, chars, direction)
        started = False

        def job() -> T:
            nonlocal started
            started = True
            try:
                return work(*args, **kwargs)
            finally:
                self.release(key_id, chars)

        try:
            return await run_in_threadpool(job)
        except BaseException:
            if not started:  # cancelled while waiting for a thread: nothing will run
                self.release(key_id, chars)
            raise
