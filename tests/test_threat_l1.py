"""The L1 threat model: exact projection onto ball ∩ box, and the attacks that search it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from torch import nn

from bastion.attacks import APGD, APGDT, PGD, AutoAttack
from bastion.errors import ConfigError
from bastion.threat import ThreatModel, project_l1_box


@st.composite
def problems(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, float, tuple[float, float]]:
    """A point x in the box, a perturbation v and a radius, in float64."""
    n, d = draw(st.integers(1, 3)), draw(st.integers(1, 8))
    low = draw(st.sampled_from([0.0, -1.0]))
    high = low + draw(st.sampled_from([1.0, 2.0]))
    floats = st.floats(0.0, 1.0)
    x = low + (high - low) * torch.tensor(draw(st.lists(floats, min_size=n * d,
                                                         max_size=n * d)), dtype=torch.float64)
    v = torch.tensor(draw(st.lists(st.floats(-3.0, 3.0), min_size=n * d, max_size=n * d)),
                     dtype=torch.float64)
    eps = draw(st.floats(0.0, 4.0))
    return x.view(n, d), v.view(n, d), eps, (low, high)


def solve_qp(x: np.ndarray, v: np.ndarray, eps: float, bounds: tuple[float, float]
             ) -> np.ndarray:
    """The projection as a smooth QP solved by SLSQP: d = p - q with p, q >= 0,
    minimise ||p - q - v||^2 subject to sum(p + q) <= eps and the box."""
    d = v.size
    up, down = bounds[1] - x, x - bounds[0]

    def objective(z: np.ndarray) -> float:
        return float(((z[:d] - z[d:] - v) ** 2).sum())

    res = minimize(objective, np.zeros(2 * d), method="SLSQP",
                   bounds=[(0, u) for u in up] + [(0, w) for w in down],
                   constraints=[{"type": "ineq", "fun": lambda z: eps - z.sum()}],
                   options={"ftol": 1e-14, "maxiter": 500})
    return np.asarray(res.x[:d] - res.x[d:])


@given(problems())
@settings(max_examples=150, deadline=None)
def test_l1_projection_lands_in_ball_and_box_and_is_idempotent(
        problem: tuple[torch.Tensor, torch.Tensor, float, tuple[float, float]]) -> None:
    x, v, eps, bounds = problem
    threat = ThreatModel(norm="L1", eps=eps, bounds=bounds)
    p = threat.project(x + v, x)
    assert bool(threat.contains(p, x, tol=1e-9).all())
    again = threat.project(p, x)
    assert torch.allclose(again, p, atol=1e-9)


@given(problems())
@settings(max_examples=60, deadline=None)
def test_l1_projection_is_the_nearest_point_found_by_a_qp_solver(
        problem: tuple[torch.Tensor, torch.Tensor, float, tuple[float, float]]) -> None:
    x, v, eps, bounds = problem
    d = project_l1_box(v, x, eps, bounds)
    for i in range(x.shape[0]):
        ref = solve_qp(x[i].numpy(), v[i].numpy(), eps, bounds)
        # SLSQP may overshoot the L1 constraint a little: shrink its answer toward 0
        # (feasible, and the box holds the segment) so that it is a fair competitor.
        size = float(np.abs(ref).sum())
        if size > eps:
            ref = ref * (eps / size)
        ours = float(((d[i] - v[i]) ** 2).sum())
        theirs = float(((ref - v[i].numpy()) ** 2).sum())
        assert ours <= theirs + 1e-7  # never farther than the solver's feasible answer
        if abs(size - eps) < 1e-9 or size < eps - 1e-6:  # the solver converged cleanly
            np.testing.assert_allclose(d[i].numpy(), ref, atol=1e-4)


@given(problems(), st.integers(0, 2**31 - 1))
@settings(max_examples=60, deadline=None)
def test_l1_projection_satisfies_the_projection_inequality(
        problem: tuple[torch.Tensor, torch.Tensor, float, tuple[float, float]],
        seed: int) -> None:
    """p is the projection of v onto a convex set C iff <v - p, z - p> <= 0 for all z
    in C; test it on random points of C."""
    x, v, eps, bounds = problem
    threat = ThreatModel(norm="L1", eps=eps, bounds=bounds)
    p = project_l1_box(v, x, eps, bounds)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(20):
        z = threat.random_point(x, gen) - x
        assert bool(((v - p) * (z - p)).sum(1).le(1e-9).all())


def test_l1_projection_keeps_points_inside_unchanged_and_soft_thresholds_outside() -> None:
    x = torch.full((1, 4), 0.5)
    inside = torch.tensor([[0.1, -0.2, 0.0, 0.3]])
    assert torch.equal(project_l1_box(inside, x, 1.0, (0.0, 1.0)), inside)
    # No box contact: plain soft-thresholding at lam = 0.5 gives [1.5, -0.5, 0, 0].
    far = torch.tensor([[2.0, -1.0, 0.25, 0.0]])
    got = project_l1_box(far, torch.zeros(1, 4), 2.0, (-10.0, 10.0))
    assert torch.allclose(got, torch.tensor([[1.5, -0.5, 0.0, 0.0]]))
    # The box caps the first coordinate at 0.5, so the others get more of the budget.
    got = project_l1_box(far, x, 1.0, (0.0, 1.0))
    assert got[0, 0].item() == pytest.approx(0.5)
    assert got.abs().sum().item() == pytest.approx(1.0)


def test_l1_random_points_lie_in_the_ball() -> None:
    threat = ThreatModel(norm="L1", eps=3.0)
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    point = threat.random_point(x, torch.Generator().manual_seed(1))
    assert bool(threat.contains(point, x).all())
    assert float(threat.norm_of(point - x).max()) > 1.0  # not collapsed onto x


class Linear2(nn.Module):
    """Two classes split by w.x = 1, where only pixel 0 counts (w_0 = 4): the only way
    across within an L1 budget moves pixel 0 by (1 - w.x) / 4."""

    def __init__(self) -> None:
        super().__init__()
        weights = torch.zeros(16)
        weights[0] = 4.0
        self.w = nn.Parameter(weights, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.flatten(1) @ self.w - 1.0
        return torch.stack([-score, score], dim=1)


@pytest.mark.parametrize("schedule", [False, True])
def test_apgd_l1_crosses_exactly_when_the_budget_allows(schedule: bool) -> None:
    model = Linear2()
    x = torch.zeros(8, 1, 4, 4)
    y = torch.zeros(8, dtype=torch.long)
    needed = 1.0 / 4.0  # move pixel 0 from 0 to 0.25
    attack = APGD(steps=30, eps_schedule=schedule)
    above = attack.run(model, x, y, ThreatModel(norm="L1", eps=needed * 1.1))
    below = attack.run(model, x, y, ThreatModel(norm="L1", eps=needed * 0.9))
    assert bool(above.success.all())
    assert not bool(below.success.any())
    assert bool(ThreatModel(norm="L1", eps=needed * 1.1).contains(above.x_adv, x).all())


@pytest.mark.slow
def test_apgd_l1_is_stronger_than_sparse_pgd_on_a_trained_model() -> None:
    from bastion import zoo
    from bastion.data import load

    data = load("mnist", "test", n=40)
    x, y = data.x, data.y
    model = zoo.load("mnist-lenet5-pgd").eval()
    threat = ThreatModel(norm="L1", eps=10.0)
    pgd = PGD(steps=50).run(model, x, y, threat)
    apgd = APGD(steps=50, eps_schedule=True).run(model, x, y, threat)
    assert bool(threat.contains(apgd.x_adv, x).all())
    assert int(apgd.success.sum()) >= int(pgd.success.sum())


def test_eps_schedule_is_refused_outside_l1(cnn: nn.Module) -> None:
    x = torch.rand(2, 1, 8, 8)
    y = torch.zeros(2, dtype=torch.long)
    for attack in (APGD(steps=2, eps_schedule=True), APGDT(steps=2, eps_schedule=True)):
        with pytest.raises(ConfigError, match="eps_schedule is an L1 setting"):
            attack.run(cnn, x, y, ThreatModel(norm="Linf", eps=0.1))


def test_autoattack_under_l1_runs_the_apgd_stages_on_the_schedule(cnn: nn.Module) -> None:
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = cnn(x).argmax(1)
    threat = ThreatModel(norm="L1", eps=2.0)
    result = AutoAttack(steps=5).run(cnn, x, y, threat)
    assert list(result.stages) == ["apgd-ce", "apgd-t"]
    assert bool(threat.contains(result.x_adv, x).all())


def test_diagnose_refuses_l1_naming_what_to_use_instead(cnn: nn.Module) -> None:
    from bastion.diagnostics.api import diagnose
    from bastion.errors import CapabilityError

    x = torch.rand(4, 1, 8, 8)
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(CapabilityError, match=r"Square supports .* not L1"):
        diagnose(cnn, (x, y), ThreatModel(norm="L1", eps=1.0))


def test_crown_bounds_under_l1_are_sound_against_apgd_l1(cnn: nn.Module) -> None:
    from bastion.certify import certify

    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = cnn(x).argmax(1)
    counts = []
    for eps in (0.05, 0.1, 0.2, 2.0):
        threat = ThreatModel(norm="L1", eps=eps)
        cert = certify(cnn, x, y, threat, method="crown")
        broken = APGD(steps=30, eps_schedule=True).run(cnn, x, y, threat).success
        assert not bool((cert.certified & broken).any())
        counts.append(int(cert.certified.sum()))
    assert counts[0] > 0  # the bound is not vacuous at a small radius
    assert counts == sorted(counts, reverse=True)  # a larger ball certifies no more
