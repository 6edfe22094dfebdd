"""ThreatModel: validation messages, and the geometry of project / contains / random_point."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bastion.errors import ConfigError
from bastion.threat import NORMS, ThreatModel

# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("norm", "hint"),
    [("linf", "Linf"), ("inf", "Linf"), ("L_inf", "Linf"), ("l2", "L2"), ("2", "L2"),
     ("l1", "L1"), ("1", "L1")],
)
def test_misspelt_norm_suggests_the_right_one(norm: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=f'norm must be one of .* Did you mean "{hint}"'):
        ThreatModel(norm=norm, eps=0.1)


@pytest.mark.parametrize("norm", ["L0", "Lzero", None, 2])
def test_unknown_norm_lists_the_supported_ones_without_a_wrong_hint(norm: object) -> None:
    with pytest.raises(ConfigError, match=r"norm must be one of \('Linf', 'L2', 'L1'\)") as info:
        ThreatModel(norm=norm, eps=0.1)  # type: ignore[arg-type]
    assert "Did you mean" not in str(info.value)


@pytest.mark.parametrize("eps", [-0.1, -1, float("nan"), float("inf"), -float("inf")])
def test_eps_must_be_finite_and_non_negative(eps: float) -> None:
    with pytest.raises(ConfigError, match="eps must be a finite number >= 0"):
        ThreatModel(norm="L2", eps=eps)


@pytest.mark.parametrize("eps", [True, False, "0.3", None, [0.3]])
def test_eps_must_be_a_number(eps: object) -> None:
    with pytest.raises(ConfigError, match="eps must be a number"):
        ThreatModel(norm="Linf", eps=eps)  # type: ignore[arg-type]


@pytest.mark.parametrize("eps", [np.float32(0.25), np.float64(0.25), np.int64(0), 1])
def test_numpy_and_int_eps_are_accepted_and_stored_as_float(eps: object) -> None:
    threat = ThreatModel(norm="Linf", eps=eps)  # type: ignore[arg-type]
    assert type(threat.eps) is float
    assert threat.eps == float(eps)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bounds", [(1.0, 0.0), (0.5, 0.5), (0.0, float("inf")), (float("nan"), 1.0)]
)
def test_bounds_must_be_finite_with_low_below_high(bounds: tuple[float, float]) -> None:
    with pytest.raises(ConfigError, match="bounds must be finite with low < high"):
        ThreatModel(norm="L2", eps=0.5, bounds=bounds)


@pytest.mark.parametrize("bounds", [(0.0,), (0.0, 0.5, 1.0), None, 1.0, ("0", "1")])
def test_bounds_must_be_a_pair(bounds: object) -> None:
    with pytest.raises(ConfigError, match=r"bounds must be \(low, high\)"):
        ThreatModel(norm="L2", eps=0.5, bounds=bounds)  # type: ignore[arg-type]


def test_bounds_may_be_a_list_and_are_stored_as_a_float_tuple() -> None:
    threat = ThreatModel(norm="L2", eps=0.5, bounds=[0, 255])  # type: ignore[arg-type]
    assert threat.bounds == (0.0, 255.0)
    assert all(type(b) is float for b in threat.bounds)


def test_linf_eps_larger_than_the_input_range_is_refused_with_a_rescaling_hint() -> None:
    with pytest.raises(ConfigError, match=r"eps=8 under Linf exceeds the input range.*255"):
        ThreatModel(norm="Linf", eps=8, bounds=(0.0, 1.0))
    # The same radius is fine once the range is that large, and L2 has no such limit.
    assert ThreatModel(norm="Linf", eps=8, bounds=(0.0, 255.0)).eps == 8.0
    assert ThreatModel(norm="L2", eps=8, bounds=(0.0, 1.0)).eps == 8.0


def test_with_eps_keeps_norm_and_bounds_and_validates() -> None:
    threat = ThreatModel(norm="L2", eps=1.0, bounds=(-1.0, 1.0))
    other = threat.with_eps(2.5)
    assert (other.norm, other.eps, other.bounds) == ("L2", 2.5, (-1.0, 1.0))
    with pytest.raises(ConfigError, match="eps must be a finite number"):
        threat.with_eps(-1.0)


def test_to_dict_and_frozen() -> None:
    threat = ThreatModel(norm="Linf", eps=0.3)
    assert threat.to_dict() == {"norm": "Linf", "eps": 0.3, "bounds": [0.0, 1.0]}
    with pytest.raises(AttributeError):
        threat.eps = 0.5  # type: ignore[misc]


# ---------------------------------------------------------------- geometry

# A threat model drawn at random: a norm, a box, and a radius that the box allows.
@st.composite
def threats(draw: st.DrawFn) -> ThreatModel:
    norm = draw(st.sampled_from(NORMS))
    low = draw(st.sampled_from([0.0, -1.0, -0.5]))
    high = low + draw(st.sampled_from([1.0, 2.0, 0.25]))
    limit = high - low if norm == "Linf" else 4.0 * (high - low)
    eps = draw(st.floats(0.0, limit, allow_nan=False))
    return ThreatModel(norm=norm, eps=eps, bounds=(low, high))


def inputs_in(threat: ThreatModel, seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """A batch inside the box, with some pixels exactly on its edges."""
    gen = torch.Generator().manual_seed(seed)
    low, high = threat.bounds
    x = low + (high - low) * torch.rand(shape, generator=gen)
    edge = torch.rand(shape, generator=gen)
    x = torch.where(edge < 0.15, torch.full_like(x, low), x)
    return torch.where(edge > 0.85, torch.full_like(x, high), x)


shapes = st.sampled_from([(1, 3), (4, 1, 5, 5), (3, 2, 4), (2, 64)])
seeds = st.integers(0, 2**31 - 1)


@given(threat=threats(), seed=seeds, shape=shapes, scale=st.floats(0.0, 20.0))
def test_project_lands_inside_ball_and_bounds(
    threat: ThreatModel, seed: int, shape: tuple[int, ...], scale: float
) -> None:
    x = inputs_in(threat, seed, shape)
    gen = torch.Generator().manual_seed(seed + 1)
    x_adv = x + scale * torch.randn(shape, generator=gen)  # far outside, often
    projected = threat.project(x_adv, x)
    assert projected.shape == x.shape and projected.dtype == x.dtype
    assert bool(threat.contains(projected, x).all())


@given(threat=threats(), seed=seeds, shape=shapes, scale=st.floats(0.0, 20.0))
def test_project_is_idempotent(
    threat: ThreatModel, seed: int, shape: tuple[int, ...], scale: float
) -> None:
    x = inputs_in(threat, seed, shape)
    gen = torch.Generator().manual_seed(seed + 1)
    once = threat.project(x + scale * torch.randn(shape, generator=gen), x)
    twice = threat.project(once, x)
    torch.testing.assert_close(twice, once, atol=1e-6, rtol=0)


@given(threat=threats(), seed=seeds, shape=shapes, radius=st.floats(0.0, 1.0))
def test_project_leaves_points_inside_unchanged(
    threat: ThreatModel, seed: int, shape: tuple[int, ...], radius: float
) -> None:
    x = inputs_in(threat, seed, shape)
    gen = torch.Generator().manual_seed(seed + 1)
    direction = torch.randn(shape, generator=gen)
    if threat.norm == "Linf":
        delta = direction.clamp(-1, 1) * threat.eps * radius
    else:
        size = threat.norm_of(direction).clamp_min(1e-12)
        delta = direction / size.view(-1, *[1] * (len(shape) - 1)) * threat.eps * radius
    inside = threat.clip(x + delta)  # clipping toward x stays in the ball
    assert bool(threat.contains(inside, x).all())
    torch.testing.assert_close(threat.project(inside, x), inside, atol=1e-5, rtol=0)


def test_linf_project_is_the_nearest_point_of_ball_and_box() -> None:
    threat = ThreatModel(norm="Linf", eps=0.2)
    x = torch.tensor([[0.1, 0.5, 0.9, 0.5]])
    x_adv = torch.tensor([[-0.5, 0.65, 1.4, 0.0]])
    expected = torch.tensor([[0.0, 0.65, 1.0, 0.3]])
    torch.testing.assert_close(threat.project(x_adv, x), expected)


def test_l2_project_scales_the_perturbation_onto_the_sphere() -> None:
    threat = ThreatModel(norm="L2", eps=0.5, bounds=(-10.0, 10.0))
    x = torch.zeros(2, 2)
    x_adv = torch.tensor([[3.0, 4.0], [0.3, 0.0]])  # length 5 -> 0.5; length 0.3 stays
    expected = torch.tensor([[0.3, 0.4], [0.3, 0.0]])
    torch.testing.assert_close(threat.project(x_adv, x), expected)


def test_project_is_per_sample() -> None:
    # A big perturbation on one sample must not shrink another sample's perturbation.
    threat = ThreatModel(norm="L2", eps=1.0, bounds=(-10.0, 10.0))
    x = torch.zeros(2, 3)
    x_adv = torch.tensor([[100.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    out = threat.project(x_adv, x)
    torch.testing.assert_close(out[1], x_adv[1])
    assert math.isclose(float(out[0].norm()), 1.0, rel_tol=1e-6)


@given(threat=threats(), seed=seeds, shape=shapes)
def test_random_point_lies_inside(threat: ThreatModel, seed: int, shape: tuple[int, ...]) -> None:
    x = inputs_in(threat, seed, shape)
    gen = torch.Generator().manual_seed(seed)
    point = threat.random_point(x, gen)
    assert point.shape == x.shape and point.dtype == x.dtype
    assert bool(threat.contains(point, x).all())


def test_random_point_depends_only_on_the_generator_seed() -> None:
    threat = ThreatModel(norm="L2", eps=0.5)
    x = torch.full((4, 1, 6, 6), 0.5)
    a = threat.random_point(x, torch.Generator().manual_seed(7))
    b = threat.random_point(x, torch.Generator().manual_seed(7))
    c = threat.random_point(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("norm", NORMS)
def test_random_point_fills_the_ball_not_just_its_surface(norm: str) -> None:
    # Inside an interior box the L2 or L1 radius of a uniform point in d dims has mean
    # eps*d/(d+1); Linf pixels are uniform in [-eps, eps] with mean |delta| eps/2.
    threat = ThreatModel(norm=norm, eps=0.1)
    x = torch.full((2000, 4), 0.5)
    delta = threat.random_point(x, torch.Generator().manual_seed(0)) - x
    if norm in ("L2", "L1"):
        mean_radius = float(threat.norm_of(delta).mean())
        assert mean_radius == pytest.approx(0.1 * 4 / 5, rel=0.03)
        assert float(threat.norm_of(delta).min()) < 0.05
    else:
        assert float(delta.abs().mean()) == pytest.approx(0.05, rel=0.03)


@given(seed=seeds, shape=shapes, scale=st.floats(0.0, 10.0))
def test_norm_of_matches_torch_linalg(seed: int, shape: tuple[int, ...], scale: float) -> None:
    delta = scale * torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    flat = delta.flatten(1)
    linf = ThreatModel(norm="Linf", eps=0.1).norm_of(delta)
    l2 = ThreatModel(norm="L2", eps=0.1).norm_of(delta)
    assert linf.shape == l2.shape == (shape[0],)
    torch.testing.assert_close(linf, torch.linalg.vector_norm(flat, ord=math.inf, dim=1))
    torch.testing.assert_close(l2, torch.linalg.vector_norm(flat, ord=2, dim=1))


def test_contains_rejects_points_outside_the_ball_or_the_box() -> None:
    threat = ThreatModel(norm="Linf", eps=0.1)
    x = torch.full((3, 2), 0.5)
    x_adv = torch.tensor([[0.55, 0.45], [0.65, 0.5], [0.5, 0.5]])
    assert threat.contains(x_adv, x).tolist() == [True, False, True]
    edge = torch.tensor([[0.0, 1.0]])
    assert threat.contains(edge - 0.05, edge).tolist() == [False]  # below the box
    assert threat.contains(edge, edge).tolist() == [True]


def test_clip_uses_the_bounds() -> None:
    threat = ThreatModel(norm="L2", eps=1.0, bounds=(-1.0, 2.0))
    out = threat.clip(torch.tensor([-3.0, 0.0, 5.0]))
    assert out.tolist() == [-1.0, 0.0, 2.0]
