"""Two `bastion serve` processes sharing PostgreSQL and Redis, as replicas behind a load
balancer: a key's rate limit holds across both, and what one writes the other reads.

(test_service_ratelimit.py checks the same with two app instances in one process; here
they are real, separate processes.)
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

import test_service_support as support
from conftest import load_bench
from test_service_support import ATTACK, BENIGN, fresh_store, write_serve_config

pytestmark = pytest.mark.slow
pg_url, redis_url, redis_prefix = support.pg_url, support.redis_url, support.redis_prefix

BURST = 10
RATE = 0.01  # tokens per second: a run of a few seconds refills well under one
# an upstream never called: the embedded SmolLM2 is not loaded in the background


def test_rate_limit_holds_across_two_server_processes(
        tmp_path: Path, pg_url: str, redis_url: str, redis_prefix: str) -> None:
    bench = load_bench("service_load.py", "service_load")
    store = fresh_store(pg_url)
    key = store.create_key("shared", "client").key
    reviewer = store.create_key("reviewer", "reviewer").key
    store.close()
    config = write_serve_config(
        tmp_path, database_url=pg_url, redis_url=redis_url, redis_prefix=redis_prefix,
        rate_limit={"rate_per_s": RATE, "burst": BURST})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("BASTION_DATABASE_URL", None)
    env.pop("BASTION_REDIS_URL", None)
    args = ["--config", str(config), "--workers", "1", "--log-level", "warning"]
    a = bench.ServeProcess(args, env=env, log=tmp_path / "a.log")
    b = bench.ServeProcess(args, env=env, log=tmp_path / "b.log")
    auth = {"Authorization": f"Bearer {key}"}
    with a, b:
        began = time.monotonic()
        # Alternating, one at a time: both replicas serve from the one bucket.
        first = [httpx.post(f"{s.url}/v1/scan/input", json={"text": BENIGN}, headers=auth)
                 for s in (a, b, a, b)]
        assert [r.status_code for r in first] == [200] * 4
        # Then 40 at once, 20 per replica, from 8 threads.
        codes: Counter[tuple[str, int]] = Counter()
        lock = threading.Lock()

        def hammer(server_url: str) -> None:
            with httpx.Client(headers=auth, timeout=30) as http:
                for _ in range(5):
                    got = http.post(f"{server_url}/v1/scan/input", json={"text": BENIGN})
                    with lock:
                        codes[server_url, got.status_code] += 1

        threads = [threading.Thread(target=hammer, args=(s.url,)) for s in (a, b) * 4]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        elapsed = time.monotonic() - began
        ok = sum(n for (_, code), n in codes.items() if code == 200)
        assert sum(codes.values()) == 40
        assert {code for _, code in codes} <= {200, 429}
        # One process alone would allow BURST; two unshared buckets would allow 2 * BURST.
        assert 4 + ok <= BURST + RATE * elapsed
        assert 4 + ok == BURST  # and the limiter does not refuse what the bucket holds
        for s in (a, b):
            refused = httpx.post(f"{s.url}/v1/scan/input", json={"text": BENIGN},
                                 headers=auth)
            assert refused.status_code == 429 and "retry-after" in refused.headers

        # Another key still has its own bucket; an item filed on one replica is decided
        # on the other.
        other = {"Authorization": f"Bearer {reviewer}"}
        filed = httpx.post(f"{a.url}/v1/scan/input", json={"text": ATTACK}, headers=other)
        assert filed.status_code == 200 and filed.json()["verdict"] == "review"
        item = filed.json()["review_id"]
        decided = httpx.post(f"{b.url}/v1/review/items/{item}/decision", headers=other,
                             json={"decision": "reject"})
        assert decided.status_code == 200 and decided.json()["state"] == "rejected"
        again = httpx.post(f"{a.url}/v1/review/items/{item}/decision", headers=other,
                           json={"decision": "approve"})
        assert again.status_code == 409


# -- several workers in one replica (`bastion serve --workers N`) ----------------------------

def test_worker_connections_get_tcp_nodelay() -> None:
    """uvicorn's workers listen on ``socket.socket(family)`` (proto 0), whose accepted
    sockets asyncio leaves with Nagle's algorithm on; the protocol turns it off."""
    from bastion.service.protocol import set_nodelay

    class Transport:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def get_extra_info(self, name: str) -> socket.socket | None:
            return self.sock if name == "socket" else None

    with socket.socket(socket.AF_INET) as listener:  # as uvicorn binds for --workers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as _client:
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
                assert set_nodelay(Transport(accepted))  # type: ignore[arg-type]
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    assert not set_nodelay(Transport(None))  # type: ignore[arg-type]


def test_two_workers_answer_keep_alive_requests_without_nagle_delay(tmp_path: Path) -> None:
    """Before the fix every request on a kept-alive connection to a worker waited for the
    client's delayed ACK (40 ms or more on Linux); a health check takes a few ms."""
    bench = load_bench("service_load.py", "service_load")
    config = write_serve_config(tmp_path, policy=None,
                                database_url=f"sqlite:///{tmp_path / 'w.db'}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("BASTION_DATABASE_URL", None)
    args = ["--config", str(config), "--workers", "2", "--log-level", "warning"]
    with bench.ServeProcess(args, env=env, log=tmp_path / "serve.log") as server, \
            httpx.Client(base_url=server.url) as http:
        took = []
        for _ in range(30):
            began = time.perf_counter()
            assert http.get("/healthz").status_code == 200
            took.append(time.perf_counter() - began)
    assert statistics.median(took) < 0.035, took
