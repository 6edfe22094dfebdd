"""Smoke test of bench/apgd_l1.py: it runs end to end and scores every tool it is given.

How strong each tool is gets measured by running the benchmark itself
(docs/benchmarks.md), never in a unit test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import load_bench


@pytest.mark.slow
def test_apgd_l1_bench_scores_every_tool(tmp_path: Path) -> None:
    pytest.importorskip("torchattacks", reason="the benchmark reports its version")
    pytest.importorskip("art", reason="the benchmark compares against ART")
    bench = load_bench("apgd_l1.py", "apgd_l1_bench")
    out = tmp_path / "l1.json"
    numpy_state, torch_state = np.random.get_state(), torch.get_rng_state()
    try:
        bench.main(["--n", "4", "--n-iter", "3", "--tools", "bastion-apgd", "art-pgd",
                    "--out", str(out)])
    finally:
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
    report = json.loads(out.read_text())
    rows = report["models"][0]["rows"]
    assert [r["tool"] for r in rows] == ["bastion-apgd", "art-pgd"]
    for row in rows:
        low, high = row["interval"]
        assert 0.0 <= low <= row["robust_accuracy"] <= high <= 1.0
        assert row["n"] == 4
