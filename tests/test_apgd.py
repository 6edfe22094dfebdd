"""APGD and APGD-T: the schedule, the DLR loss, known answers on linear models, strength."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from bastion.attacks import APGD, APGDT, PGD
from bastion.attacks._apgd_run import _checkpoint, _State, checkpoints
from bastion.attacks.base import dlr_loss, margin_loss
from bastion.errors import ConfigError
from bastion.threat import ThreatModel
from conftest import MnistRight


def test_checkpoints_follow_the_paper_for_100_iterations() -> None:
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


@given(st.integers(1, 2000))
def test_checkpoints_are_increasing_and_inside_the_run(n_iter: int) -> None:
    marks = checkpoints(n_iter)
    assert marks == sorted(set(marks))
    assert all(1 <= w <= n_iter for w in marks)


@settings(max_examples=50)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.01, 100.0),
       shift=st.floats(-50.0, 50.0))
def test_dlr_is_invariant_to_scaling_and_shifting_logits(seed: int, scale: float,
                                                         shift: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(8, 10, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (8,), generator=gen)
    t = (y + 1) % 10
    for target in (None, t):
        a = dlr_loss(logits, y, target)
        b = dlr_loss(logits * scale + shift, y, target)
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-9)


@given(seed=st.integers(0, 2**31 - 1))
def test_untargeted_dlr_is_positive_exactly_where_the_model_is_wrong(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(16, 5, generator=gen)
    y = torch.randint(0, 5, (16,), generator=gen)
    wrong = logits.argmax(1) != y
    assert torch.equal(dlr_loss(logits, y, None) > 0, wrong)
    assert torch.equal(margin_loss(logits, y) > 0, wrong)


def test_dlr_with_too_few_classes_says_what_to_use() -> None:
    with pytest.raises(ConfigError, match="at least 3 classes"):
        dlr_loss(torch.randn(2, 2), torch.tensor([0, 1]), None)


def test_checkpoint_halves_the_step_where_progress_stalled() -> None:
    n = 3
    z = torch.zeros(n, 2)
    s = _State(idx=torch.arange(n), x0=z, y=torch.zeros(n, dtype=torch.long), goal=None,
               x=torch.full((n, 2), 0.5), x_prev=z, grad=torch.ones(n, 2),
               step=torch.full((n,), 0.4), loss_prev=torch.zeros(n),
               best_loss=torch.tensor([2.0, 1.0, 1.0]), best_x=torch.full((n, 2), 0.25),
               best_grad=torch.full((n, 2), -1.0),
               rises=torch.tensor([8.0, 2.0, 8.0]),  # of 10 steps: 0.75 needs 7.5
               halved_last=torch.tensor([False, False, True]),
               best_at_last=torch.tensor([1.0, 0.5, 1.0]))
    _checkpoint(s, span=10)
    # 0: rose often and improved -> kept. 1: oscillated -> halved and back to its best.
    # 2: did not improve, but was halved last time -> kept (give the smaller step a go).
    assert s.step.tolist() == pytest.approx([0.4, 0.2, 0.4])
    assert s.x[1].tolist() == [0.25, 0.25] and s.x[0].tolist() == [0.5, 0.5]
    assert s.grad[1].tolist() == [-1.0, -1.0]
    assert s.halved_last.tolist() == [False, True, False]
    assert s.rises.tolist() == [0.0, 0.0, 0.0]
    assert s.best_at_last.tolist() == s.best_loss.tolist()


class Linear3(nn.Module):
    """Three classes on (N, d) inputs: z = W x + b, with known boundaries."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            self.lin.weight.copy_(w)
            self.lin.bias.copy_(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def linear_case(seed: int, d: int = 10) -> tuple[nn.Module, torch.Tensor, torch.Tensor,
                                                  torch.Tensor, torch.Tensor]:
    """A linear model, points near the middle of the box, their labels, and the exact
    minimal Linf and L2 distances to a misclassification (the box never binds).

    Two live classes and a third whose bias keeps it out of reach: the loss gradients
    then point exactly across the one boundary that matters, so the minimum is what a
    converged attack must find (the third class gives DLR the logit it needs).
    """
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(3, d, generator=gen, dtype=torch.float64)
    w[2] = 0.0
    # The boundary between the live classes passes through the centre of the box.
    b = torch.tensor([-0.5 * float((w[0] - w[1]).sum()), 0.0, -50.0], dtype=torch.float64)
    model = Linear3(w, b).double()
    x = 0.5 + 0.01 * torch.randn(20, d, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    gap = (logits[:, 0] - logits[:, 1]).abs()
    diff = w[0] - w[1]
    return model, x, y, gap / diff.abs().sum(), gap / diff.norm()


@pytest.mark.parametrize("loss", ["ce", "dlr", "margin"])
@pytest.mark.parametrize("norm", ["Linf", "L2"])
@pytest.mark.parametrize("seed", [0, 1])
def test_apgd_finds_points_just_beyond_the_exact_minimum_and_none_below(
    norm: str, seed: int, loss: str
) -> None:
    model, x, y, linf, l2 = linear_case(seed)
    need = linf if norm == "Linf" else l2
    assert float(need.max()) < 0.4  # the box never binds at these radii
    attack = APGD(steps=20, loss=loss)
    for i in range(x.shape[0]):
        xi, yi = x[i:i + 1], y[i:i + 1]
        above = attack.run(model, xi, yi, ThreatModel(norm, float(need[i]) * 1.02))
        below = attack.run(model, xi, yi, ThreatModel(norm, float(need[i]) * 0.98))
        assert bool(above.success.all()), f"sample {i}: missed at 1.02 x the minimum"
        assert not bool(below.success.any()), f"sample {i}: 'succeeded' below the minimum"


def test_apgd_t_reaches_an_explicit_target_on_a_linear_model() -> None:
    gen = torch.Generator().manual_seed(5)
    model = Linear3(torch.randn(5, 6, generator=gen), torch.zeros(5))
    x = torch.rand(30, 6, generator=gen)
    with torch.no_grad():
        y = model(x).argmax(1)
    target = (y + 1 + torch.randint(0, 4, (30,), generator=gen)) % 5
    res = APGDT(steps=50).run(model, x, y, ThreatModel("Linf", 1.0), target=target)
    with torch.no_grad():
        pred = model(res.x_adv).argmax(1)
    # A linear model's class need not win anywhere in the box, so not every target is
    # reachable; most are, and every success is the target.
    assert float(res.success.float().mean()) >= 0.8
    assert torch.equal(pred[res.success], target[res.success])


class Untouchable(nn.Module):
    """Constant logits: nothing can be fooled, so every iteration runs on every sample."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0])
        return base.expand(x.shape[0], 5) + self.scale * x.flatten(1).sum(1, keepdim=True)


@pytest.mark.parametrize("eot", [1, 3])
@pytest.mark.parametrize("restarts", [1, 2])
def test_apgd_counts_every_pass_it_makes(restarts: int, eot: int) -> None:
    n, k = 4, 7
    x, y = torch.rand(n, 1, 3, 3), torch.zeros(n, dtype=torch.long)
    res = APGD(steps=k, restarts=restarts, eot_iter=eot).run(
        Untouchable(), x, y, ThreatModel("Linf", 0.1))
    assert not bool(res.success.any())
    grads = restarts * (k + 1) * n * eot
    assert res.passes.backward == grads
    assert res.passes.forward == grads + n  # + the clean check


def test_apgd_t_tries_each_target_on_the_points_still_robust() -> None:
    n, k, targets = 3, 4, 3
    x, y = torch.rand(n, 1, 3, 3), torch.zeros(n, dtype=torch.long)
    res = APGDT(steps=k, n_target_classes=targets).run(
        Untouchable(), x, y, ThreatModel("L2", 0.1))
    assert res.passes.backward == targets * (k + 1) * n


def test_broken_samples_stop_consuming_passes() -> None:
    model, x, y, linf, _ = linear_case(3)
    eps = float(linf.median())
    res = APGD(steps=40).run(model, x, y, ThreatModel("Linf", eps))
    broken = int(res.success.sum())
    assert 0 < broken < x.shape[0]
    assert res.passes.backward < 41 * x.shape[0]


@pytest.mark.parametrize(
    ("attack", "message"),
    [(APGD(steps=0), "steps must be an integer >= 1"),
     (APGD(restarts=0), "restarts must be"),
     (APGD(eot_iter=0), "eot_iter must be"),
     (APGD(loss="hinge"), "loss must be one of"),
     (APGDT(n_target_classes=0), "n_target_classes must be")],
    ids=repr,
)
def test_bad_parameters_say_what_is_allowed(attack: APGD | APGDT, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        attack.run(Untouchable(), torch.rand(2, 1, 3, 3), torch.zeros(2, dtype=torch.long),
                   ThreatModel("Linf", 0.1))


@pytest.mark.slow
def test_apgd_is_stronger_than_pgd_on_the_bundled_robust_model(
    mnist_right: Callable[[str, int], MnistRight],
) -> None:
    model, x, y = mnist_right("mnist-lenet5-pgd", 100)
    threat = ThreatModel("Linf", 0.3)
    gen = torch.Generator().manual_seed
    pgd = PGD(steps=20).run(model, x, y, threat, generator=gen(0))
    apgd = APGD(steps=20).run(model, x, y, threat, generator=gen(0))
    # Same gradient budget: APGD's schedule and momentum find at least as many points.
    assert int(apgd.success.sum()) >= int(pgd.success.sum())
    assert int(apgd.success.sum()) < x.shape[0]  # a robust model stays partly robust
