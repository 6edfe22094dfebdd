"""Spatial and corruption threat models: known worst cases and seeded determinism."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bastion.data.base import Dataset
from bastion.errors import ConfigError
from bastion.threats.corruptions import NAMES, SEVERITIES, corrupt, corrupted_datasets
from bastion.threats.spatial import SpatialThreat, first_order_attack, grid_attack, grid_params


def dot_images(n: int = 4) -> torch.Tensor:
    """(n, 1, 9, 9) black images with one bright pixel at the centre."""
    x = torch.zeros(n, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0
    return x


class CentreDetector(nn.Module):
    """Class 0 while the bright mass inside the centre 3x3 window exceeds 0.5: a shift of
    2 pixels or more takes the dot out of the window, a rotation about the centre never."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mass = x[:, 0, 3:6, 3:6].sum(dim=(1, 2))
        return torch.stack([mass, torch.full_like(mass, 0.5)], dim=1)


def test_identity_and_integer_shifts_move_pixels_exactly() -> None:
    x = dot_images(1)
    threat = SpatialThreat(max_angle=30, max_shift=3)
    assert torch.allclose(threat.apply(x, torch.zeros(1, 3)), x, atol=1e-6)
    moved = threat.apply(x, torch.tensor([[0.0, 2.0, -1.0]]))  # 2 right, 1 up
    assert moved[0, 0, 3, 6].item() == pytest.approx(1.0, abs=1e-5)
    assert moved.sum().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(("max_shift", "breakable"), [(1.0, False), (1.5, False), (2.0, True),
                                                      (3.0, True)])
def test_grid_search_finds_the_known_worst_transform(max_shift: float, breakable: bool) -> None:
    x, y = dot_images(), torch.zeros(4, dtype=torch.long)
    threat = SpatialThreat(max_angle=30, max_shift=max_shift)
    fooled, params = grid_attack(CentreDetector(), x, y, threat, angles=7)
    assert bool((fooled == breakable).all())
    if breakable:  # the transform that fooled it shifts the dot by 2 pixels or more
        assert bool((params[:, 1:].abs().amax(1) >= 2).all())


def test_rotation_alone_cannot_move_the_centre_dot() -> None:
    x, y = dot_images(), torch.zeros(4, dtype=torch.long)
    fooled, _ = grid_attack(CentreDetector(), x, y, SpatialThreat(max_angle=90, max_shift=0),
                            angles=19)
    assert not bool(fooled.any())


def test_first_order_attack_breaks_the_detector_only_when_the_budget_allows() -> None:
    x, y = dot_images(), torch.zeros(4, dtype=torch.long)
    model = CentreDetector()
    gen = torch.Generator().manual_seed(0)
    wide, _ = first_order_attack(model, x, y, SpatialThreat(max_shift=3.0), steps=10,
                                 restarts=3, generator=gen)
    narrow, _ = first_order_attack(model, x, y, SpatialThreat(max_shift=1.0), steps=10,
                                   restarts=3, generator=gen)
    assert bool(wide.all())
    assert not bool(narrow.any())


def test_grid_lists_the_identity_first_and_every_combination() -> None:
    params = grid_params(SpatialThreat(max_angle=30, max_shift=3), angles=13)
    assert params.shape == (13 * 7 * 7, 3)
    assert torch.equal(params[0], torch.zeros(3))


def test_spatial_budget_parses_and_rejects_nonsense() -> None:
    threat = SpatialThreat.parse("30deg-3px")
    assert (threat.max_angle, threat.max_shift) == (30.0, 3.0)
    with pytest.raises(ConfigError, match="30deg-3px"):
        SpatialThreat.parse("30-3")
    with pytest.raises(ConfigError, match="max_angle"):
        SpatialThreat(max_angle=200)


def small_set() -> Dataset:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 12, 12, generator=gen)
    return Dataset(x, torch.arange(6) % 3, "toy", "test", ("a", "b", "c"), "memory")


def test_corruptions_are_deterministic_under_a_seed_and_differ_across_seeds() -> None:
    ds = small_set()
    first = corrupted_datasets(ds, seed=3)
    again = corrupted_datasets(ds, names=["fog", "gaussian-noise"], seed=3)
    other = corrupted_datasets(ds, names=["fog"], seed=4)
    assert len(first) == len(NAMES) * len(SEVERITIES)
    for key in again:  # same seed: same images whatever else was built
        assert torch.equal(first[key].x, again[key].x)
    assert not torch.equal(first[("fog", 3)].x, other[("fog", 3)].x)


@pytest.mark.parametrize("name", NAMES)
def test_every_corruption_keeps_shape_and_range_and_grows_with_severity(name: str) -> None:
    x = small_set().x
    change = []
    for sev in SEVERITIES:
        out = corrupt(x, name, sev, seed=0)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        change.append(float((out - x).abs().mean()))
    assert change[-1] > change[0] > 0  # harsher at severity 5 than at 1, never a no-op


def test_corrupt_rejects_unknown_names_and_severities() -> None:
    x = small_set().x
    with pytest.raises(ConfigError, match="unknown corruption"):
        corrupt(x, "snow", 1)
    with pytest.raises(ConfigError, match="severity"):
        corrupt(x, "fog", 6)
