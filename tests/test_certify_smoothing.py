"""Randomized smoothing: statistics, abstention, determinism, O(batch) memory, soundness
on a linear classifier whose exact robust radius is known."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from tests.conftest import Halfspace
from torch import nn

from bastion.certify import SmoothingConfig, certify
from bastion.certify.smoothing import (
    ABSTAIN,
    gaussian_augment,
    gaussian_augmentation_loss,
    lower_confidence_bound,
    predict,
)
from bastion.certify.smoothing import certify as smooth_certify
from bastion.errors import ConfigError
from bastion.threat import ThreatModel


class Constant(nn.Module):
    """Always class ``k`` of 3; records the largest batch it was given."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k, self.largest = k, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.largest = max(self.largest, x.shape[0])
        out = torch.zeros(x.shape[0], 3)
        out[:, self.k] = 1.0
        return out


class CoinFlip(nn.Module):
    """Class 0 or 1 by the sign of the first coordinate: 50/50 under noise around 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1)[:, :1]
        return torch.cat([s, -s], 1)


@given(k=st.integers(1, 500), extra=st.integers(0, 500), alpha=st.sampled_from([1e-3, 0.05]))
def test_clopper_pearson_lower_bound_has_tail_probability_alpha(k: int, extra: int,
                                                                alpha: float) -> None:
    n = k + extra
    p = lower_confidence_bound(k, n, alpha)
    # P(X >= k | p) = alpha at the bound: the defining property of the one-sided interval.
    assert stats.binom.sf(k - 1, n, p) == pytest.approx(alpha, rel=1e-4)
    assert p <= k / n


def test_constant_model_gets_the_closed_form_radius_and_batches_stay_small() -> None:
    model = Constant(2)
    x = torch.rand(2, 1, 4, 4)
    res = smooth_certify(model, x, sigma=0.5, n0=10, n=1000, alpha=0.001, batch=64)
    p_a = 0.001 ** (1 / 1000)  # all n votes agree: Clopper-Pearson gives alpha^(1/n)
    assert res.label.tolist() == [2, 2]
    assert res.radius[0].item() == pytest.approx(0.5 * stats.norm.ppf(p_a), rel=1e-6)
    assert model.largest == 64  # noise drawn 64 at a time, never all 1000 at once
    assert res.forward_passes == 2 * 1010


def test_coin_flip_model_abstains() -> None:
    x = torch.zeros(3, 1, 2, 2)
    res = smooth_certify(CoinFlip(), x, sigma=1.0, n0=50, n=500, alpha=0.001)
    assert (res.label == ABSTAIN).all() and (res.radius == 0).all()
    assert (predict(CoinFlip(), x, 1.0, 500, 0.001).label == ABSTAIN).all()


def test_same_seed_same_certificate_other_seed_other_estimate() -> None:
    w = torch.tensor([1.0, -1.0, 0.5, 0.0])
    model, x = Halfspace(w, 0.1), torch.rand(4, 1, 2, 2, generator=torch.Generator().manual_seed(1))

    def run(seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return smooth_certify(model, x, 0.5, 20, 300, 0.01, 50, generator=gen).p_lower

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_radius_never_exceeds_distance_to_a_linear_boundary() -> None:
    # A halfspace classifier's smoothed version is itself, and its exact L2 robust radius
    # at x is |w·x + b| / ||w||; the certificate may be smaller, never larger.
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(16, generator=gen)
    model = Halfspace(w, 0.3)
    x = torch.rand(12, 1, 4, 4, generator=gen)
    res = smooth_certify(model, x, 0.5, 50, 2000, 0.001, 500, generator=gen)
    distance = (x.flatten(1) @ w + 0.3).abs() / w.norm()
    kept = res.label != ABSTAIN
    assert kept.sum() >= 6  # most points are far enough from the boundary to certify
    assert bool((res.radius[kept] <= distance[kept]).all())
    truth = (x.flatten(1) @ w + 0.3 > 0).long()
    assert torch.equal(res.label[kept], truth[kept])


def test_certify_api_smoothing_requires_l2_and_reports_radii() -> None:
    x, y = torch.rand(3, 1, 4, 4), torch.tensor([2, 2, 0])
    with pytest.raises(ConfigError, match="L2"):
        certify(Constant(2), x, y, ThreatModel("Linf", 0.1), method="smoothing")
    cert = certify(Constant(2), x, y, ThreatModel("L2", 0.5), method="smoothing",
                   smoothing=SmoothingConfig(sigma=0.5, n0=10, n=500, batch=100))
    assert cert.certified.tolist() == [True, True, False]  # sample 2 is not class 2
    assert cert.radius is not None and cert.radius[2] == 0
    assert cert.certified_at(10.0).tolist() == [False, False, False]


def test_gaussian_augmentation() -> None:
    x = torch.full((2000, 3), 0.5)
    noisy = gaussian_augment(x, 0.25, torch.Generator().manual_seed(0))
    assert noisy.std().item() == pytest.approx(0.25, rel=0.05)
    assert noisy.mean().item() == pytest.approx(0.5, abs=0.01)
    model = nn.Linear(3, 2)
    loss = gaussian_augmentation_loss(model, x[:8], torch.zeros(8, dtype=torch.long), 0.25)
    loss.backward()
    assert model.weight.grad is not None and math.isfinite(loss.item())


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ConfigError, match="sigma"):
        predict(Constant(0), torch.rand(1, 2), 0.0, 10, 0.01)
    with pytest.raises(ConfigError, match="alpha"):
        smooth_certify(Constant(0), torch.rand(1, 2), 0.1, 10, 10, 1.5)
