"""Smoke test of bench/certify_smoothing.py: it runs end to end and its report adds up.

Speed is measured by running the benchmark (docs/benchmarks.md), never in a unit test.
"""

from __future__ import annotations

from conftest import load_bench


def test_smoothing_bench_reports_accuracy_by_radius_and_throughput() -> None:
    bench = load_bench("certify_smoothing.py", "certify_smoothing")
    row = bench.run("mnist-smallcnn-std", n=4, sigma=0.25, samples=200, n0=20, alpha=0.001,
                    batch=100, plain_seconds=0.05, chunk=3)
    acc = [row["certified_accuracy"][str(r)] for r in bench.RADII]
    assert all(0.0 <= a <= 1.0 for a in acc)
    assert acc == sorted(acc, reverse=True)  # a radius certifies every smaller one
    assert row["forward_passes"] == 4 * (200 + 20)
    assert row["smoothing_samples_per_second"] > 0 and row["throughput_ratio"] > 0
    assert 0 <= row["abstained"] <= 4
    assert row["plain_images_per_second"]["timings"] == 3  # before chunks of 3 + 1, after
