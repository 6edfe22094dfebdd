"""Rate limits per key: a token bucket in one process, and in real Redis shared by two
service instances (replicas) so that a key's limit holds across both."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

import test_service_support as support
from bastion.service import Store
from bastion.service.ratelimit import MemoryLimiter, RedisLimiter
from test_service_support import app_and_keys, config, guard

# fixtures, by name
redis_url, redis_prefix = support.redis_url, support.redis_prefix


def test_memory_bucket_allows_a_burst_then_refills() -> None:
    limiter = MemoryLimiter()
    got = [limiter.take("k", rate=20.0, burst=3).allowed for _ in range(4)]
    assert got == [True, True, True, False]
    refused = limiter.take("k", rate=20.0, burst=3)
    assert 0 < refused.retry_after_s <= 0.05 and refused.retry_after_header == "1"
    assert limiter.take("other", rate=20.0, burst=3).allowed  # buckets are per key
    time.sleep(0.06)
    assert limiter.take("k", rate=20.0, burst=3).allowed


def test_memory_limiter_forgets_only_refilled_buckets() -> None:
    limiter = MemoryLimiter(max_buckets=2)
    limiter.take("slow", rate=0.001, burst=1)  # empty for ~1000 s
    limiter.take("fast", rate=1e6, burst=1)
    time.sleep(0.01)
    limiter.take("third", rate=1e6, burst=1)  # over max_buckets: prune
    assert not limiter.take("slow", rate=0.001, burst=1).allowed  # still remembered


def test_429_with_retry_after(tmp_path: Path) -> None:
    app, h = app_and_keys(config(tmp_path, rate_limit={"rate_per_s": 0.5, "burst": 2}))
    client = TestClient(app)
    codes = [client.post("/v1/scan/input", json={"text": "hi"}, headers=h["client"]).status_code
             for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = client.post("/v1/scan/input", json={"text": "hi"}, headers=h["client"])
    assert refused.headers["retry-after"] in ("1", "2")
    assert refused.json()["error"]["type"] == "rate_limit_error"
    # another key has its own bucket
    assert client.post("/v1/scan/input", json={"text": "hi"},
                       headers=h["reviewer"]).status_code == 200
    assert "bastion_rate_limited_total 2.0" in client.get("/metrics").text


def test_redis_bucket_is_atomic_and_shared(redis_url: str, redis_prefix: str) -> None:
    a, b = RedisLimiter(redis_url, redis_prefix), RedisLimiter(redis_url, redis_prefix)
    got = [lim.take("k", rate=0.01, burst=4).allowed for lim in (a, b, a, b, a, b)]
    assert got == [True, True, True, True, False, False]
    refused = a.take("k", rate=0.01, burst=4)
    assert 90 < refused.retry_after_s <= 100  # one token per 100 s
    assert RedisLimiter(redis_url, redis_prefix + "x:").take("k", 0.01, 4).allowed


def test_key_limit_holds_across_two_replicas(tmp_path: Path, redis_url: str,
                                             redis_prefix: str) -> None:
    cfg = config(tmp_path, redis_url=redis_url, redis_prefix=redis_prefix,
                 rate_limit={"rate_per_s": 0.01, "burst": 4})
    first, h = app_and_keys(cfg)
    second_store = Store(cfg.database_url)  # the replicas share the database and Redis
    from bastion.service import create_app
    second = create_app(cfg, guard=guard(), store=second_store)
    one, two = TestClient(first), TestClient(second)
    codes = [c.post("/v1/scan/input", json={"text": "hi"}, headers=h["client"]).status_code
             for c in (one, two, one, two, one, two)]
    assert codes == [200, 200, 200, 200, 429, 429]
    assert two.get("/readyz").json() == {"status": "ready"}


def test_readyz_reports_a_dead_redis(tmp_path: Path) -> None:
    cfg = config(tmp_path, redis_url="redis://127.0.0.1:1/0")
    app, _ = app_and_keys(cfg)
    got = TestClient(app).get("/readyz")
    assert got.status_code == 503 and "rate_limiter" in got.json()["problems"]


def test_dead_redis_fails_the_request_closed(tmp_path: Path) -> None:
    app, h = app_and_keys(config(tmp_path, redis_url="redis://127.0.0.1:1/0"))
    client = TestClient(app, raise_server_exceptions=False)
    got = client.post("/v1/scan/input", json={"text": "hi"}, headers=h["client"])
    assert got.status_code == 503
    assert "rate limiter" in got.json()["error"]["message"]
