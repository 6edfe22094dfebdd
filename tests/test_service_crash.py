"""Crash test: `bastion serve` killed with SIGKILL under load keeps every acknowledged write.

Threads file review items (scans of attacks under a policy whose rules answer ``review``)
and decide them while the server is killed mid-load; after a restart on the same
database, every item and every decision (with its audit record) that got a 2xx must be
there. Once on the SQLite default and once on PostgreSQL.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import test_service_support as support
from conftest import load_bench
from test_service_support import ATTACK, fresh_store, write_serve_config

pytestmark = pytest.mark.slow
pg_url = support.pg_url  # fixture, by name

SCANNERS, DECIDERS = 6, 2
# an upstream never called: the embedded SmolLM2 is not loaded in the background
#: acknowledged writes to wait for before the kill (items, decisions)
BEFORE_KILL = (60, 15)


def write_config(tmp_path: Path, database_url: str) -> Path:
    return write_serve_config(
        tmp_path, database_url=database_url,
        rate_limit={"rate_per_s": 100_000, "burst": 100_000},
        anomaly={"flagged_burst": 10**9, "near_duplicates": 10**9, "volume": 10**9,
                 "throttle": False})


class Load:
    """Scanner threads file items; decider threads decide them; only 2xx are recorded."""

    def __init__(self, base: str, client_key: str, reviewer_key: str) -> None:
        self.base = base
        self.client = {"Authorization": f"Bearer {client_key}"}
        self.reviewer = {"Authorization": f"Bearer {reviewer_key}"}
        self.items: dict[int, str] = {}  # acknowledged review items: id -> text
        self.decisions: dict[int, str] = {}  # acknowledged decisions: id -> state
        self.failures = 0  # requests that got no answer (the server was gone)
        self.unexpected: list[str] = []  # answers other than 2xx while it was up
        self.todo: queue.Queue[int] = queue.Queue()
        self.stop = threading.Event()
        self.killed = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.scan, args=(n,), daemon=True)
                        for n in range(SCANNERS)]
        self.threads += [threading.Thread(target=self.decide, daemon=True)
                         for _ in range(DECIDERS)]

    def _failed(self, what: str, exc: Exception) -> None:
        with self.lock:
            self.failures += 1
            if not self.killed.is_set():
                self.unexpected.append(f"{what}: {type(exc).__name__}: {exc}")
        time.sleep(0.05)

    def scan(self, n: int) -> None:
        with httpx.Client(base_url=self.base, headers=self.client, timeout=10) as http:
            for i in itertools.count():
                if self.stop.is_set():
                    return
                text = f"{ATTACK} (probe {n}-{i})"
                try:
                    got = http.post("/v1/scan/input", json={"text": text,
                                                            "session_id": f"s{n}"})
                except httpx.HTTPError as exc:
                    self._failed("scan", exc)
                    continue
                if got.status_code != 200 or got.json().get("review_id") is None:
                    with self.lock:
                        self.unexpected.append(f"scan: {got.status_code} {got.text[:200]}")
                    continue
                item = int(got.json()["review_id"])
                with self.lock:
                    self.items[item] = text
                self.todo.put(item)

    def decide(self) -> None:
        with httpx.Client(base_url=self.base, headers=self.reviewer, timeout=10) as http:
            while not self.stop.is_set():
                try:
                    item = self.todo.get(timeout=0.1)
                except queue.Empty:
                    continue
                decision = "approve" if item % 2 else "reject"
                try:
                    got = http.post(f"/v1/review/items/{item}/decision",
                                    json={"decision": decision, "note": "crash test"})
                except httpx.HTTPError as exc:
                    self._failed("decide", exc)
                    continue
                if got.status_code != 200:
                    with self.lock:
                        self.unexpected.append(f"decide: {got.status_code} {got.text[:200]}")
                    continue
                with self.lock:
                    self.decisions[item] = got.json()["state"]

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return len(self.items), len(self.decisions)


def all_items(base: str, headers: dict[str, str]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        for offset in itertools.count(0, 500):
            page = http.get("/v1/review/items", params={"state": "all", "limit": 500,
                                                        "offset": offset})
            assert page.status_code == 200, page.text
            items = page.json()["items"]
            out.update((item["id"], item) for item in items)
            if len(items) < 500:
                return out
    raise AssertionError("unreachable")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_under_load_keeps_every_acknowledged_write(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    bench = load_bench("service_load.py", "service_load")
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'crash.db'}"
        store = fresh_store(url)
    else:
        url = request.getfixturevalue("pg_url")
        store = fresh_store(url)
    client_key = store.create_key("load", "client").key
    reviewer = store.create_key("reviewer", "reviewer")
    store.close()
    config = write_config(tmp_path, url)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("BASTION_DATABASE_URL", None)
    env.pop("BASTION_REDIS_URL", None)
    args = ["--config", str(config), "--workers", "1", "--log-level", "warning"]

    first = bench.ServeProcess(args, env=env, log=tmp_path / "first.log").start()
    load = Load(first.url, client_key, reviewer.key)
    try:
        for t in load.threads:
            t.start()
        deadline = time.monotonic() + 60
        while not all(got >= want for got, want in zip(load.counts(), BEFORE_KILL,
                                                       strict=True)):
            assert time.monotonic() < deadline, (load.counts(), load.unexpected[:5],
                                                 first.output())
            time.sleep(0.05)
        load.killed.set()
        first.kill()  # SIGKILL, requests in flight
        time.sleep(0.5)  # the threads keep sending into the dead port
    finally:
        load.stop.set()
        for t in load.threads:
            t.join(timeout=15)
        first.stop()
    assert load.unexpected == []  # before the kill every request got a 2xx
    assert load.failures > 0  # the kill landed while requests were being sent
    acked_items, acked_decisions = dict(load.items), dict(load.decisions)

    with bench.ServeProcess(args, env=env, log=tmp_path / "second.log") as second:
        headers = {"Authorization": f"Bearer {reviewer.key}"}
        stored = all_items(second.url, headers)
        missing = sorted(set(acked_items) - set(stored))
        assert missing == [], f"{len(missing)} acknowledged items lost: {missing[:10]}"
        for item_id, text in acked_items.items():
            assert stored[item_id]["text"] == text
            assert stored[item_id]["verdict"] == "review"
        for item_id, state in acked_decisions.items():
            assert stored[item_id]["state"] == state, item_id
            assert stored[item_id]["decided_by"] == reviewer.key_id
            got = httpx.get(f"{second.url}/v1/review/items/{item_id}", headers=headers)
            decide = [a for a in got.json()["audit"] if a["action"] == "decide"]
            assert len(decide) == 1, got.json()["audit"]
            assert decide[0]["actor"] == reviewer.key_id
            assert decide[0]["detail"] == f"{state} crash test"
        # the restarted server takes new writes after the recovered ones
        scan = httpx.post(f"{second.url}/v1/scan/input", json={"text": ATTACK},
                          headers={"Authorization": f"Bearer {client_key}"})
        assert scan.status_code == 200 and scan.json()["review_id"] > max(acked_items)
