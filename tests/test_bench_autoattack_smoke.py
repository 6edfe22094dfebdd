"""Smoke test of bench/autoattack.py: it runs end to end and reports every tool.

Only the shape of the report is checked; how strong and fast each tool is gets measured
by running the benchmark itself (docs/benchmarks.md), never in a unit test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import load_bench


@pytest.mark.slow
def test_autoattack_bench_reports_every_tool(tmp_path: Path) -> None:
    pytest.importorskip("torchattacks", reason="the benchmark compares against torchattacks")
    pytest.importorskip("art", reason="the benchmark compares against ART")
    pytest.importorskip("multiprocess", reason="ART's AutoAttack imports multiprocess")
    bench = load_bench("autoattack.py", "autoattack_bench")
    out = tmp_path / "aa.json"
    numpy_state, torch_state = np.random.get_state(), torch.get_rng_state()
    try:
        bench.main(["--n", "6", "--peer-n", "3", "--n-iter", "2", "--n-queries", "4",
                    "--batch-size", "3", "--models", "advertorch-lenet5-adv",
                    "--out", str(out)])
    finally:
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
    report = json.loads(out.read_text())
    rows = report["models"][0]["rows"]
    assert [(r["tool"], r["n"]) for r in rows] == [
        ("bastion", 6), ("bastion", 3), ("torchattacks", 3), ("art", 3)]
    for row in rows:
        assert 0.0 <= row["robust_accuracy"] <= 1.0
        assert row["seconds"] > 0
        assert row["forward_passes"] >= row["n"]
        assert row["backward_passes"] >= 0
    assert report["settings"]["n_iter"] == 2


@pytest.mark.slow
def test_autoattack_bench_runs_the_reference_on_a_user_model_file(tmp_path: Path) -> None:
    bench = load_bench("autoattack.py", "autoattack_bench")
    try:
        bench.reference_autoattack(None)
    except RuntimeError:
        pytest.skip("the reference AutoAttack (fra31/auto-attack) is not installed")
    model_file = Path(bench.__file__).parent / "wong_mnist.py"
    weights = tmp_path / "wong.pt"
    torch.manual_seed(0)
    torch.save(bench.load_model(str(model_file), None).state_dict(), weights)
    out = tmp_path / "aa.json"
    torch_state = torch.get_rng_state()
    try:
        bench.main(["--n", "3", "--peer-n", "3", "--n-iter", "2", "--n-queries", "4",
                    "--batch-size", "3", "--models", str(model_file), "--checkpoint",
                    str(weights), "--tools", "bastion", "reference", "--out", str(out)])
    finally:
        torch.set_rng_state(torch_state)
    rows = json.loads(out.read_text())["models"][0]["rows"]
    assert [r["tool"] for r in rows] == ["bastion", "reference"]
    for row in rows:
        assert 0.0 <= row["robust_accuracy"] <= 1.0
        assert row["forward_passes"] >= row["n"]
