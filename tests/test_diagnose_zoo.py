"""The diagnosis on real MNIST models: the PGD-trained bundled model passes every check,
and each deliberately broken zoo entry fails the check its kind of masking predicts.

Slow (tens of seconds each on one CPU thread); they still run in CI.
"""

from __future__ import annotations

import pytest

from bastion import data, zoo
from bastion.diagnostics import diagnose
from bastion.threat import ThreatModel

LINF = ThreatModel("Linf", 0.3)


def verdicts(diagnosis) -> dict[str, str]:
    return {c["name"]: c["verdict"] for c in diagnosis.checks}


@pytest.mark.slow
def test_pgd_trained_bundled_model_passes_every_check():
    got = diagnose(zoo.load("mnist-lenet5-pgd"), data.load("mnist", "test", 50), LINF,
                   surrogate=zoo.load("mnist-smallcnn-std"), surrogate_name="mnist-smallcnn-std")
    assert set(verdicts(got).values()) == {"pass"}, [
        (c["name"], c["evidence"]) for c in got.checks if c["verdict"] != "pass"]
    assert not any(c.get("skipped") for c in got.checks)
    assert not got.masking_suspected
    assert got.curves["security"][-1]["robust_accuracy"] <= 0.02


@pytest.mark.slow
@pytest.mark.parametrize(("name", "must_fail"), [
    ("broken-quantize", {"gradient-health", "finite-differences", "binarization-test"}),
    ("broken-random", {"randomness"}),
    ("broken-saturate", {"gradient-health"}),
])
def test_each_broken_zoo_entry_fails_its_check(name, must_fail):
    got = diagnose(zoo.load(name), data.load("mnist", "test", 50), LINF, steps=20,
                   square_queries=200, black_box_points=20,
                   surrogate=zoo.load("mnist-smallcnn-std"), surrogate_name="mnist-smallcnn-std")
    assert got.masking_suspected
    failed = {k for k, v in verdicts(got).items() if v == "fail"}
    assert must_fail <= failed, verdicts(got)
