"""Smoke test of bench/service_load.py: every mode runs end to end with no failed request.

Only the report's shape and the error count are checked; requests/s are measured by
running the benchmark itself on a quiet machine (docs/benchmarks.md), never here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import load_bench

pytestmark = pytest.mark.slow


def test_service_load_bench_runs_every_mode_without_errors(tmp_path: Path) -> None:
    bench = load_bench("service_load.py", "service_load")
    out = tmp_path / "load.json"
    generator = "wrk" if shutil.which("wrk") else "python"
    report = bench.main(["--modes", "rules,default,proxy", "--workers", "1",
                         "--duration", "1", "--connections", "4", "--prompts", "50",
                         "--generator", generator, "--out", str(out)])
    assert json.loads(out.read_text()) == report
    assert [(r["mode"], r["workers"]) for r in report["runs"]] == [
        ("rules", 1), ("default", 1), ("proxy", 1)]
    for run in report["runs"]:
        assert run["generator"] == generator
        assert run["errors"] == 0, run
        assert run["requests"] > 0 and run["requests_per_s"] > 0, run
        assert 0 < run["p50_ms"] <= run["p99_ms"] <= run["max_ms"], run
        assert run["cpu_ms_per_request"] > 0 and run["process_cpu_s"], run


def test_python_generator_and_fake_upstream() -> None:
    """The fallback generator (no wrk) against the fake upstream: answers count as served,
    a port where nothing listens counts every request as an error."""
    bench = load_bench("service_load.py", "service_load")
    port = bench.free_port()
    fake = subprocess.Popen([sys.executable, str(bench.__file__), "--fake-upstream", str(port)])
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.post(url, content=b"{}").json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the fake upstream did not start"
                time.sleep(0.1)
        assert answer["choices"][0]["message"]["content"].startswith("Paris")
        served = bench.load_python(url, "k", ['{"messages": []}'], 0.5, 2)
        assert served["errors"] == 0 and served["requests"] > 0
    finally:
        fake.kill()
        fake.wait(timeout=10)
    refused = bench.load_python(url, "k", ["{}"], 0.3, 1)  # the upstream is gone now
    assert refused["requests"] > 0 and refused["errors"] == refused["requests"]
