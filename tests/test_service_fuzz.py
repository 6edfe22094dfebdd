"""Fuzz the service from its own OpenAPI document with schemathesis: no answer is a 5xx.

Every operation in ``/openapi.json`` gets up to 25 generated requests that fit the schema
and 25 that break it (``BASTION_FUZZ_EXAMPLES`` changes the number) with each key role:
client, reviewer and admin.
The app runs in-process (schemathesis's ASGI transport, so a crash is a traceback here)
with a review policy and a few items filed, and its chat proxy points at the benchmark's
fake upstream, which answers every request, so a 5xx can only be the service's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from conftest import load_bench
from test_service_support import ATTACK, app_and_keys, config, review_guard

schemathesis = pytest.importorskip(
    "schemathesis", reason="the fuzz test needs schemathesis (the dev extra)")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    bench = load_bench("service_load.py", "service_load")
    port = bench.free_port()
    proc = subprocess.Popen([sys.executable, str(bench.__file__), "--fake-upstream", str(port)])
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(f"{url}/chat/completions", content=b"{}")
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the fake upstream did not start"
                time.sleep(0.1)
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=10)


Service = tuple[Any, dict[str, dict[str, str]]]


@pytest.fixture
def service(tmp_path: Path, upstream: str) -> Service:
    """A fresh app per test: its shutdown (which schemathesis's ASGI transport may run)
    closes the upstream client for good."""
    cfg = config(tmp_path, upstream={"url": upstream, "timeout_s": 10},
                 rate_limit={"rate_per_s": 10**6, "burst": 10**6})
    app, headers = app_and_keys(cfg, review_guard())
    from fastapi.testclient import TestClient

    # A few items for the review endpoints to find. No `with`: leaving the block would run
    # the app's shutdown, which closes its upstream client.
    client = TestClient(app)
    for i in range(4):
        filed = client.post("/v1/scan/input", headers=headers["client"],
                            json={"text": f"{ATTACK} ({i})"})
        assert filed.json()["review_id"] is not None
    return app, headers


#: examples per operation and generation mode; raise it for a longer hunt
EXAMPLES = int(os.environ.get("BASTION_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def fuzz_one(operation: Any, mode: GenerationMode, headers: dict[str, str],
             sent: Counter[str]) -> None:
    """Send ``operation``'s generated requests; raises on the first 5xx."""

    @FUZZ
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        sent[operation.label] += 1
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    run()


def fuzz(app: Any, headers: dict[str, str]) -> list[str]:
    """Run every operation's generated requests (valid and invalid); the failures found."""
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 12  # the scan, proxy, review, admin and ops endpoints
    failures: list[str] = []
    sent: Counter[str] = Counter()
    for operation in operations:
        for mode in GenerationMode:
            try:
                fuzz_one(operation, mode, headers, sent)
            except Unsatisfiable:
                # No request breaks a schema with nothing in it (GET /healthz takes no
                # parameters): there is no negative case to send.
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as exc:  # a failed check: collect all, report together
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    # every operation was called; those that take a body, a query or a path parameter
    # many times
    assert all(sent[op.label] >= 1 for op in operations), sent
    assert sum(n >= 20 for n in sent.values()) >= 7, sent
    return failures


@pytest.mark.parametrize("role", ["client", "reviewer", "admin"])
def test_no_server_error_from_any_operation(role: str, service: Service) -> None:
    app, headers = service
    failures = fuzz(app, headers[role])
    assert failures == [], "\n\n".join(failures)
