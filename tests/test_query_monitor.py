"""The out-of-distribution share test and its combination with PRADA, on synthetic
near-binary images (a stand-in for digits) against noise and mid-tone images."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.errors import ConfigError, InputError
from bastion.privacy.prada import PradaMonitor
from bastion.privacy.query_monitor import CombinedMonitor, QueryShareMonitor


def _digits(n: int, seed: int) -> np.ndarray:
    """(n, 64) near-binary images: a random bar of ones on zeros."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 8, 8))
    for i, (r, c) in enumerate(rng.integers(0, 6, size=(n, 2))):
        x[i, r:r + 3, c] = 1.0
    return x.reshape(n, 64)


def test_benign_clients_pass_and_out_of_distribution_ones_are_flagged_early() -> None:
    share = QueryShareMonitor(components=5, quantile=0.99, alpha=1e-6).fit(_digits(2000, 0))
    assert share.p0 is not None and share.p0 <= 0.05
    benign = [share.observe("benign", row) for row in _digits(1000, 1)]
    assert not benign[-1]["flagged"]
    noise = np.random.default_rng(2).random((200, 64))
    flags = [share.observe("thief", row) for row in noise]
    assert flags[-1]["flagged"] and flags[-1]["flagged_at"] == 20  # the first test
    assert share.score(noise).min() > 1 >= np.median(share.score(_digits(100, 3)))


def test_a_client_flagged_stays_flagged_and_clients_are_bounded() -> None:
    share = QueryShareMonitor(components=5, max_clients=2).fit(_digits(400, 0))
    for row in np.random.default_rng(0).random((25, 64)):
        share.observe("a", row)
    for row in _digits(30, 1):
        verdict = share.observe("a", row)
    assert verdict["flagged"] and verdict["flagged_at"] == 20
    share.observe("b", _digits(1, 2)[0])
    share.observe("c", _digits(1, 3)[0])
    assert share.observe("a", _digits(1, 4)[0])["queries"] == 1  # "a" was forgotten


def test_bad_settings_and_inputs_are_refused() -> None:
    with pytest.raises(ConfigError, match="alpha"):
        QueryShareMonitor(alpha=0)
    with pytest.raises(InputError, match="at least 12"):
        QueryShareMonitor(components=5).fit(_digits(10, 0))
    with pytest.raises(ConfigError, match="fit"):
        QueryShareMonitor().score(_digits(1, 0))
    share = QueryShareMonitor(components=5).fit(_digits(100, 0))
    with pytest.raises(InputError, match="64"):
        share.score(np.zeros((1, 10)))


def test_combined_monitor_reports_which_test_flagged_first() -> None:
    share = QueryShareMonitor(components=5).fit(_digits(400, 0))
    monitor = CombinedMonitor(PradaMonitor(0.5, min_distances=10, window=50), share)
    rng = np.random.default_rng(1)
    for row in rng.random((30, 64)):
        verdict = monitor.observe("thief", row, int(rng.integers(10)))
    assert verdict["flagged"] and verdict["by"][0] == "share"
    assert verdict["flagged_at"] == verdict["share"]["flagged_at"] == 20
