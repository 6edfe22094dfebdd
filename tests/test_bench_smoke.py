"""Smoke test of bench/pgd_speed.py: it runs end to end and reports every tool.

Only the shape of the report is checked here. How fast anything is gets measured by
running the benchmark itself (docs/benchmarks.md), never in a unit test.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import load_bench


def test_pgd_speed_bench_reports_every_tool(tmp_path: Path) -> None:
    pytest.importorskip("torchattacks", reason="the PGD benchmark compares against torchattacks")
    pytest.importorskip("art", reason="the PGD benchmark compares against ART "
                                      "(adversarial-robustness-toolbox)")
    bench = load_bench("pgd_speed.py", "pgd_speed")
    out = tmp_path / "pgd.json"
    argv = ["--n", "8", "--batch-size", "4", "--steps", "2", "--repeats", "1",
            "--models", "advertorch-lenet5-adv", "--out", str(out)]
    # The peers draw their random starts from the global generators: leave them as found.
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        report = bench.main(argv)
    np.random.set_state(numpy_state)

    assert json.loads(out.read_text()) == report
    assert report["command"].endswith(shlex.join(argv))
    assert report["machine"]["torch_threads"] >= 1
    assert report["settings"]["steps"] == 2
    assert set(report["models"]) == {"advertorch-lenet5-adv"}
    result = report["models"]["advertorch-lenet5-adv"]
    assert result["limit"]["median_s"] > 0
    assert 0.0 <= result["clean_accuracy"] <= 1.0
    assert set(result["tools"]) == set(bench.TOOLS)
    for tool, r in result["tools"].items():
        assert r["median_s"] > 0, tool
        assert r["min_s"] <= r["median_s"] <= r["max_s"], tool
        assert r["ratio_to_limit"] > 0 and math.isfinite(r["ratio_to_limit"]), tool
        assert r["ratio_to_torchattacks"] > 0, tool
        assert 0.0 <= r["robust_accuracy"] <= 1.0, tool
        assert r["max_linf"] <= bench.EPS + 1e-5, tool
    assert result["tools"][bench.TORCHATTACKS]["ratio_to_torchattacks"] == 1.0
