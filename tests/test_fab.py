"""FAB: the exact projection it relies on, minimal norms on linear models, soundness,
honest pass counts, and strength on a trained MNIST model."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from bastion.attacks import FAB, make
from bastion.attacks._fab_geometry import project_onto_hyperplane
from bastion.errors import ConfigError
from bastion.threat import ThreatModel
from conftest import MnistRight

DUAL = {"Linf": 1.0, "L2": 2.0}  # dual norm of the attack's norm: ||w||_1 or ||w||_2


def reach_by_bisection(p: torch.Tensor, w: torch.Tensor, c: float, norm: str) -> float:
    """Size of the smallest step with w.d = c inside [0, 1], found by bisection on the
    KKT form d_i = sign(w_i) min(lam a_i, room_i): an independent check of the sort."""
    sign = 1.0 if c >= 0 else -1.0
    w = w * sign
    room = torch.where(w > 0, 1 - p, p)
    rate = torch.ones_like(w) if norm == "Linf" else w.abs()
    lo, hi = 0.0, 1e6
    for _ in range(200):
        lam = (lo + hi) / 2
        if float((w.abs() * torch.minimum(lam * rate, room)).sum()) < abs(c):
            lo = lam
        else:
            hi = lam
    d = w.sign() * torch.minimum(hi * rate, room)
    return float(d.abs().max()) if norm == "Linf" else float(d.norm())


@pytest.mark.parametrize("norm", ["Linf", "L2"])
@given(seed=st.integers(0, 2**31 - 1), dim=st.integers(1, 30), scale=st.floats(0.01, 3.0))
def test_projection_lands_on_the_plane_inside_the_box_at_the_smallest_norm(
    norm: str, seed: int, dim: int, scale: float
) -> None:
    gen = torch.Generator().manual_seed(seed)
    p = torch.rand(1, dim, generator=gen, dtype=torch.float64)
    w = torch.randn(1, dim, generator=gen, dtype=torch.float64)
    side = 1.0 if seed % 2 else -1.0
    # the largest |w.d| the box allows in the direction of c's sign
    reachable = float((w.abs() * torch.where(w * side > 0, 1 - p, p)).sum())
    c = torch.tensor([side * scale * reachable / 3], dtype=torch.float64)
    d = project_onto_hyperplane(p, w, c, (0.0, 1.0), norm)
    moved = p + d
    assert bool(((moved >= -1e-12) & (moved <= 1 + 1e-12)).all())
    size = float(d.abs().max()) if norm == "Linf" else float(d.norm())
    if abs(float(c)) <= reachable:  # feasible: exactly on the plane, at the minimal norm
        torch.testing.assert_close((w * d).sum(1), c, rtol=1e-9, atol=1e-9)
        assert size == pytest.approx(reach_by_bisection(p[0], w[0], float(c), norm), rel=1e-6,
                                     abs=1e-9)
    else:  # infeasible: as far toward the plane as the box allows
        assert float((w * d).sum() * c.sign()) == pytest.approx(reachable, rel=1e-9)


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_projection_without_a_binding_box_is_the_closed_form(norm: str) -> None:
    w = torch.tensor([[1.0, -2.0, 0.5, 0.0]], dtype=torch.float64)
    p = torch.full((1, 4), 0.5, dtype=torch.float64)
    c = torch.tensor([0.1], dtype=torch.float64)
    d = project_onto_hyperplane(p, w, c, (0.0, 1.0), norm)
    # Linf: every coordinate with w_i != 0 moves by c / ||w||_1 along sign(w_i);
    # L2: the step is along w, of length c / ||w||_2.
    want = w.sign() * 0.1 / 3.5 if norm == "Linf" else w * 0.1 / float((w**2).sum())
    torch.testing.assert_close(d, want)


# ---------------------------------------------------------------- linear models


def linear_problem(seed: int, dim: int, classes: int = 3
                   ) -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    """A linear classifier (float64) and one interior point x (1, dim) with its label."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Linear(dim, classes).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(classes, dim, generator=gen, dtype=torch.float64))
        x = 0.4 + 0.2 * torch.rand(1, dim, generator=gen, dtype=torch.float64)
        # Logits at x: a small random lead for each class, so the boundaries are near x.
        lead = 0.3 * torch.rand(classes, generator=gen, dtype=torch.float64)
        model.bias.copy_(lead - model.weight @ x[0])
    y = lead.argmax()[None]
    return model.eval(), x, y


def exact_distances(model: nn.Linear, x: torch.Tensor, y: torch.Tensor, norm: str
                    ) -> torch.Tensor:
    """(C,) minimal distance from x to each boundary f_j = f_y (inf for j = y)."""
    w = model.weight.detach()
    with torch.no_grad():
        logits = model(x)[0]
    gap = logits[y] - logits
    dual = (w[y] - w).norm(p=DUAL[norm], dim=1)
    dist = gap / dual
    dist[y] = float("inf")
    return dist


def box_does_not_bind(x: torch.Tensor, dist: float, norm: str) -> bool:
    # The minimal step moves a coordinate by at most dist (Linf) / dist (L2).
    return bool(((x - dist).min() > 0) and ((x + dist).max() < 1))


@pytest.mark.parametrize("mode", ["fab-t", "untargeted", "explicit"])
@pytest.mark.parametrize("norm", ["Linf", "L2"])
@settings(max_examples=6)
@given(seed=st.integers(0, 2**31 - 1), dim=st.integers(2, 20))
def test_fab_finds_the_minimal_perturbation_of_a_linear_model(
    norm: str, mode: str, seed: int, dim: int
) -> None:
    model, x, y = linear_problem(seed, dim)
    dist = exact_distances(model, x, y, norm)
    closest, best = int(dist.argmin()), float(dist.min())
    if not box_does_not_bind(x, best, norm):
        return  # the closed form would not be the minimum
    threat = ThreatModel(norm=norm, eps=min(2 * float(dist[dist.isfinite()].max()), 1.0))
    fab = FAB(steps=100, targeted=mode == "fab-t", early_stop=False)
    target = torch.tensor([closest]) if mode == "explicit" else None
    result = fab.run(model, x, y, threat, target=target)
    assert bool(result.success)
    size = float(threat.norm_of(result.x_adv - x))
    # FAB-T stops at its first target (the 2nd most likely class) once it succeeds: it
    # reaches that boundary, or another one crossed on the way there.
    with torch.no_grad():
        first = int(model(x)[0].argsort(descending=True)[1])
    aimed = float(dist[first]) if mode == "fab-t" else best
    assert best * 0.999 <= size <= aimed * 1.03
    with torch.no_grad():
        pred = int(model(result.x_adv).argmax())
    assert pred == closest if mode == "explicit" else pred != int(y)


@pytest.mark.parametrize("mode", ["fab-t", "untargeted"])
@pytest.mark.parametrize("norm", ["Linf", "L2"])
@settings(max_examples=6)
@given(seed=st.integers(0, 2**31 - 1), dim=st.integers(2, 20), below=st.floats(0.5, 0.99))
def test_fab_never_succeeds_below_the_exact_minimal_distance(
    norm: str, mode: str, seed: int, dim: int, below: float
) -> None:
    model, x, y = linear_problem(seed, dim)
    best = float(exact_distances(model, x, y, norm).min())
    eps = below * best
    if norm == "Linf" and eps > 1:
        return
    fab = FAB(steps=10, targeted=mode == "fab-t", restarts=2)
    result = fab.run(model, x, y, ThreatModel(norm=norm, eps=eps))
    assert not bool(result.success)
    with torch.no_grad():
        assert int(model(result.x_adv).argmax()) == int(y)


# ---------------------------------------------------------------- work and bookkeeping


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_passes_count_every_forward_and_backward(cnn: nn.Module, norm: str) -> None:
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = cnn(x).argmax(1)  # right everywhere
    threat = ThreatModel(norm=norm, eps=1e-4)  # too small to break anything
    fab_t = FAB(steps=3, n_target_classes=4, restarts=2).run(cnn, x, y, threat)
    # clean forward, then per round (4 targets x 2 restarts) and step: 2 forwards + 1 backward
    assert (fab_t.passes.forward, fab_t.passes.backward) == (5 + 8 * 3 * 2 * 5, 8 * 3 * 5)
    plain = FAB(steps=3, targeted=False).run(cnn, x, y, threat)
    # untargeted: the full Jacobian (10 classes) costs 10 forwards + 10 backwards per step
    assert (plain.passes.forward, plain.passes.backward) == (5 + 3 * 11 * 5, 3 * 10 * 5)
    assert not bool(fab_t.success.any() | plain.success.any())


def test_fab_t_tries_at_most_the_classes_that_exist() -> None:
    model, x, y = linear_problem(3, 5, classes=3)
    result = FAB(steps=2, n_target_classes=9).run(model, x, y, ThreatModel("L2", 1e-6))
    assert result.passes.backward == 2 * 2  # 2 other classes x 2 steps


def test_early_stop_spends_less_and_finds_the_same_successes(
    trained_mlp: nn.Module, digits_test: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_test[0][:40], digits_test[1][:40]
    threat = ThreatModel(norm="Linf", eps=0.1)
    fast = FAB(steps=20, n_target_classes=3).run(trained_mlp, x, y, threat)
    full = FAB(steps=20, n_target_classes=3, early_stop=False).run(trained_mlp, x, y, threat)
    assert torch.equal(fast.success, full.success)
    assert 0 < int(fast.success.sum()) < 40
    assert fast.passes.backward < full.passes.backward
    # Without early stop the returned point is the smallest found: never larger.
    sizes = threat.norm_of(full.x_adv - x)[full.success]
    assert bool((sizes <= threat.norm_of(fast.x_adv - x)[fast.success] + 1e-6).all())


def test_explicit_target_is_what_success_means(
    trained_mlp: nn.Module, digits_test: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_test[0][:30], digits_test[1][:30]
    target = (y + 1) % 10
    result = FAB(steps=30).run(trained_mlp, x, y, ThreatModel("Linf", 0.3), target=target)
    with torch.no_grad():
        pred = trained_mlp(result.x_adv).argmax(1)
    assert int(result.success.sum()) >= 20
    assert torch.equal(result.success, pred == target)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"restarts": 1.5}, "restarts must be an integer >= 1"),
        ({"n_target_classes": 0}, "n_target_classes must be an integer >= 1"),
        ({"alpha_max": 1.0}, r"alpha_max must be in \[0, 1\)"),
        ({"alpha_max": float("nan")}, r"alpha_max must be in \[0, 1\)"),
        ({"eta": 0.9}, r"eta must be in \[1, 2\)"),
        ({"beta": 0.0}, r"beta must be in \(0, 1\]"),
    ],
    ids=repr,
)
def test_invalid_parameters_raise_config_error(mlp: nn.Module, params: dict[str, float],
                                               message: str) -> None:
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ConfigError, match=message):
        make("fab", **params).run(mlp, x, torch.tensor([0, 1]), ThreatModel("Linf", 0.1))


# ---------------------------------------------------------------- a trained MNIST model


@pytest.mark.slow
def test_fab_t_breaks_a_standard_mnist_model(
    mnist_right: Callable[[str, int], MnistRight],
) -> None:
    model, x, y = mnist_right("mnist-smallcnn-std", 24)
    threat = ThreatModel(norm="Linf", eps=0.3)
    result = FAB(steps=30, n_target_classes=3).run(model, x, y, threat)
    assert bool(threat.contains(result.x_adv, x).all())
    with torch.no_grad():
        assert torch.equal(result.success, model(result.x_adv).argmax(1) != y)
    assert float(result.success.float().mean()) >= 0.8
