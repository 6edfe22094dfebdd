"""Soundness and tightness of IBP and CROWN bounds, tested rather than assumed.

- sampled and PGD-found points of the ball never leave [lower, upper] (hypothesis, random
  nets mixing every supported layer, Linf and L2);
- on tiny MLPs the exact worst margin from a MILP is never below the reported bound, and
  CROWN is on average at least as tight as IBP.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp
from torch import nn

from bastion.attacks import PGD
from bastion.certify import Normalize, certify, compile_network, crown_margins, ibp_margins
from bastion.certify.api import margin_bounds
from bastion.certify.bounds import margin_spec
from bastion.threat import ThreatModel

CLASSES = 4


def random_net(seed: int, kind: int) -> nn.Module:
    """A small random net (N, 1, 6, 6) -> (N, 4); ``kind`` picks the layer mix."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == 0:
            layers: list[nn.Module] = [nn.Flatten(), nn.Linear(36, 12), nn.ReLU(),
                                       nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, CLASSES)]
        elif kind == 1:
            layers = [Normalize([0.3], [0.5]), nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3),
                      nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(27, 10), nn.ReLU(),
                      nn.Linear(10, CLASSES)]
        else:
            layers = [nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(3),
                      nn.Flatten(), nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(),
                      nn.Dropout(0.5), nn.Linear(6, CLASSES)]
        model = nn.Sequential(*layers)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.weight.data.uniform_(-1.5, 1.5, generator=gen)
    return model.eval()


def margins(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.einsum("nsk,nk->ns", margin_spec(y, CLASSES, x.dtype), model(x))


def check_inside(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                 lower: torch.Tensor, upper: torch.Tensor, points: list[torch.Tensor]) -> None:
    for point in points:
        assert bool(threat.contains(point, x).all())
        m = margins(model, point, y)
        assert bool((m >= lower - 1e-4).all()), float((lower - m).max())
        assert bool((m <= upper + 1e-4).all()), float((m - upper).max())


@given(seed=st.integers(0, 10_000), kind=st.integers(0, 2), norm=st.sampled_from(["Linf", "L2"]),
       eps=st.floats(0.01, 0.4))
def test_sampled_points_stay_inside_ibp_and_crown_bounds(seed: int, kind: int, norm: str,
                                                         eps: float) -> None:
    model = random_net(seed, kind)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 1, 6, 6, generator=gen)
    y = torch.randint(0, CLASSES, (3,), generator=gen)
    threat = ThreatModel(norm, eps if norm == "Linf" else 4 * eps)
    net = compile_network(model)
    points = [threat.random_point(x, gen) for _ in range(20)]
    points.append(threat.project(x + torch.randn(x.shape, generator=gen), x))  # on the edge
    for intermediate in ("crown", "ibp"):
        check_inside(model, x, y, threat, *crown_margins(net, x, y, threat,
                                                        intermediate=intermediate), points)
    check_inside(model, x, y, threat, *ibp_margins(net, x, y, threat), points)


@given(seed=st.integers(0, 10_000), kind=st.integers(0, 2), norm=st.sampled_from(["Linf", "L2"]))
def test_pgd_points_stay_inside_bounds(seed: int, kind: int, norm: str) -> None:
    model = random_net(seed, kind)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(4, 1, 6, 6, generator=gen)
    with torch.no_grad():
        y = model(x).argmax(1)
    threat = ThreatModel(norm, 0.1 if norm == "Linf" else 0.5)
    # PGD with the margin loss walks toward the smallest margin: the hardest point to bound.
    found = PGD(steps=20, loss="margin", early_stop=False).run(model, x, y, threat,
                                                               generator=gen).x_adv
    for method in ("ibp", "crown", "crown-ibp", "alpha-crown"):
        lower, upper = margin_bounds(compile_network(model), x, y, threat, method)
        check_inside(model, x, y, threat, lower, upper, [found])


def exact_worst_margins(model: nn.Sequential, x: np.ndarray, y: int, eps: float) -> list[float]:
    """min over the Linf ball ∩ [0, 1] of each margin, by a big-M MILP (HiGHS).

    Variables: input x' (d), per hidden layer pre-activations h, post-activations z and
    binaries a (z = h where a = 1, z = 0 where a = 0). Big-M constants are IBP bounds,
    which hold on the whole ball, so the encoding is exact.
    """
    linears = [m for m in model if isinstance(m, nn.Linear)]
    net = compile_network(model)
    lo_in = np.clip(x - eps, 0, 1)
    hi_in = np.clip(x + eps, 0, 1)
    threat = ThreatModel("Linf", eps)
    pre = [(lo.detach().numpy()[0], hi.detach().numpy()[0]) for lo, hi in
           net_intervals(net, torch.tensor(x, dtype=torch.float64)[None], threat)]
    w = [m.weight.detach().double().numpy() for m in linears]
    b = [m.bias.detach().double().numpy() for m in linears]
    sizes = [x.size] + [wi.shape[0] for wi in w[:-1]]
    # layout: x' | for each hidden layer: h, z, a
    offsets, total = [], x.size
    for width in sizes[1:]:
        offsets.append(total)
        total += 3 * width
    rows, low, high = [], [], []
    lb, ub = np.full(total, -np.inf), np.full(total, np.inf)
    lb[:x.size], ub[:x.size] = lo_in, hi_in
    integrality = np.zeros(total)
    prev = slice(0, x.size)
    for layer, width in enumerate(sizes[1:]):
        h = slice(offsets[layer], offsets[layer] + width)
        z = slice(h.stop, h.stop + width)
        a = slice(z.stop, z.stop + width)
        lo, hi = pre[layer]
        lb[h], ub[h], lb[z], ub[z] = lo, hi, 0, np.maximum(hi, 0)
        lb[a], ub[a], integrality[a] = 0, 1, 1
        for i in range(width):
            row = np.zeros(total)  # h_i - W_i z_prev = b_i
            row[h.start + i] = 1
            row[prev] = -w[layer][i]
            rows.append(row), low.append(b[layer][i]), high.append(b[layer][i])
            row = np.zeros(total)  # z_i >= h_i
            row[z.start + i], row[h.start + i] = 1, -1
            rows.append(row), low.append(0), high.append(np.inf)
            row = np.zeros(total)  # z_i <= h_i - lo (1 - a_i)
            row[z.start + i], row[h.start + i], row[a.start + i] = 1, -1, -lo[i]
            rows.append(row), low.append(-np.inf), high.append(-lo[i])
            row = np.zeros(total)  # z_i <= hi a_i
            row[z.start + i], row[a.start + i] = 1, -max(hi[i], 0)
            rows.append(row), low.append(-np.inf), high.append(0)
        prev = z
    worst = []
    for j in range(w[-1].shape[0]):
        if j == y:
            continue
        c = np.zeros(total)
        c[prev] = w[-1][y] - w[-1][j]
        res = milp(c, constraints=LinearConstraint(np.array(rows), low, high),
                   integrality=integrality, bounds=Bounds(lb, ub))
        assert res.success, res.message
        worst.append(float(res.fun + b[-1][y] - b[-1][j]))
    return worst


def margins_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.einsum("nsk,nk->ns", margin_spec(y, 3, x.dtype), model(x))


def net_intervals(net, x: torch.Tensor, threat: ThreatModel):  # type: ignore[no-untyped-def]
    """IBP bounds on each hidden Linear's output (the ReLU inputs)."""
    from bastion.certify.bounds import interval_bounds

    bounds = interval_bounds(net, x, threat)
    return [bounds[k] for k, op in enumerate(net.ops) if type(op).__name__ == "ReLU"]


def tiny_mlp(seed: int, inputs: int, hidden: tuple[int, ...]) -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        width = inputs
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 3))
        return nn.Sequential(*layers).double().eval()


@torch.no_grad()
def test_milp_worst_margin_is_never_below_the_bounds_and_crown_beats_ibp_on_average() -> None:
    gaps_ibp, gaps_crown = [], []
    for seed in range(12):
        model = tiny_mlp(seed, inputs=2 + seed % 3, hidden=(4 + seed % 5,) * (1 + seed % 2))
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand(1, model[0].in_features, generator=gen, dtype=torch.float64)
        y = model(x).argmax(1)
        eps = 0.05 + 0.05 * (seed % 4)
        threat = ThreatModel("Linf", eps)
        net = compile_network(model)
        ibp = ibp_margins(net, x, y, threat)[0][0]
        crown = crown_margins(net, x, y, threat)[0][0]
        reported = certify(model, x, y, threat, method="crown").lower
        assert reported is not None
        exact = torch.tensor(exact_worst_margins(model, x[0].numpy(), int(y), eps),
                             dtype=torch.float64)
        # The MILP is a true minimum: at most the margin at x itself, which is feasible.
        assert bool((exact <= margins_of(model, x, y)[0] + 1e-6).all())
        # Sound: nothing reported may exceed the true minimum (HiGHS tolerance 1e-6).
        assert bool((exact >= ibp - 1e-6).all())
        assert bool((exact >= crown - 1e-6).all())
        assert bool((exact >= reported[0] - 1e-6).all())
        assert bool((reported[0] >= torch.maximum(ibp, crown) - 1e-9).all())
        gaps_ibp.append(float((exact - ibp).mean()))
        gaps_crown.append(float((exact - crown).mean()))
    print(f"mean gap to exact: IBP {np.mean(gaps_ibp):.4f}, CROWN {np.mean(gaps_crown):.4f}")
    # Tighter on average (not claimed for every margin: adaptive slopes can lose to IBP).
    assert np.mean(gaps_crown) <= np.mean(gaps_ibp)


def test_unsupported_layer_gets_a_capability_error_naming_it() -> None:
    from bastion.errors import CapabilityError

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2))
    with pytest.raises(CapabilityError, match=r"Tanh.*smoothing"):
        compile_network(model)


def test_non_chain_forward_gets_a_capability_error() -> None:
    from bastion.errors import CapabilityError

    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.fc(x)

    with pytest.raises(CapabilityError, match="not a plain chain"):
        compile_network(Residual())


def test_zoo_models_compile_to_the_same_function() -> None:
    from bastion.zoo import LeNet5, SmallCNN, WongSmall

    x = torch.rand(2, 1, 28, 28)
    for model in (LeNet5().eval(), SmallCNN().eval(), WongSmall().eval()):
        torch.testing.assert_close(compile_network(model).forward(x), model(x))


def test_batchnorm_in_train_mode_is_refused() -> None:
    from bastion.errors import CapabilityError

    with pytest.raises(CapabilityError, match="eval"):
        compile_network(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))
