"""Square: proposals stay on the eps-sphere, the p schedule, no gradients ever, honest
query counts with per-sample early stop, success on linear and trained MNIST models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from bastion.attacks import Square, make
from bastion.attacks import _square_proposals as prop
from bastion.errors import ConfigError, InputError
from bastion.threat import ThreatModel
from conftest import MnistRight

# ---------------------------------------------------------------- proposals


def test_p_schedule_halves_at_the_reference_iterations() -> None:
    want = {0: 0.8, 10: 0.8, 11: 0.4, 50: 0.4, 51: 0.2, 500: 0.1, 501: 0.05, 4001: 0.8 / 128,
            8001: 0.8 / 512}
    for it, p in want.items():
        assert prop.fraction_at(it, 0.8, 5000, rescale=False) == pytest.approx(p)
    # rescaled: 5,000 queries run through the 10,000-query schedule twice as fast
    assert prop.fraction_at(26, 0.8, 5000, rescale=True) == pytest.approx(0.2)


@given(p=st.floats(1e-4, 1.0), h=st.integers(1, 40), w=st.integers(1, 40))
def test_window_sides_fit_the_image(p: float, h: int, w: int) -> None:
    linf = prop.side_length(p, h, w, smallest=1, odd=False)
    l2 = prop.side_length(p, h, w, smallest=3, odd=True)
    assert 1 <= linf <= min(h, w) and 1 <= l2 <= min(h, w)
    assert l2 % 2 == 1 or l2 == min(h, w)


@pytest.mark.parametrize("side", [1, 2, 3, 5, 8])
def test_l2_pattern_is_a_unit_two_bump(side: int) -> None:
    pattern = prop.square_pattern(side, torch.float64, torch.device("cpu"))
    assert pattern.shape == (side, side)
    assert float(pattern.norm()) == pytest.approx(1.0)
    assert bool((pattern[side // 2:] < 0).all()) and bool((pattern[: side // 2] > 0).all())


@given(seed=st.integers(0, 2**31 - 1), eps=st.floats(0.01, 0.2))
@settings(max_examples=15)
def test_proposals_move_interior_points_to_the_sphere_of_radius_eps(seed: int, eps: float
                                                                    ) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.4 * torch.rand(4, 2, 9, 7, generator=gen, dtype=torch.float64)
    who, total = torch.tensor([0, 2, 3, 5]), 6
    start = prop.linf_init(x, eps, gen)
    step = prop.linf_update(start, x, eps, 3, (0.0, 1.0), gen, who, total)
    for point in (start, step):  # Linf: every pixel at +-eps, a vertex of the ball
        torch.testing.assert_close((point - x).abs(), torch.full_like(x, eps))
    assert bool(((step != start).flatten(1).any(1)).all())  # every proposal changes
    start = x + prop.l2_init(x, eps, gen)
    step = prop.l2_update(start, x, eps, 3, gen, who, total)
    for point in (start, step):
        torch.testing.assert_close((point - x).flatten(1).norm(dim=1),
                                   torch.full((4,), eps, dtype=torch.float64))


# ---------------------------------------------------------------- model access


class NoBackward(torch.autograd.Function):
    """Identity whose backward pass raises."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        raise AssertionError("Square asked for a gradient")


class Watched(nn.Module):
    """Wraps a model: refuses backward, counts samples seen, notes if grad was enabled."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.seen = 0
        self.grad_enabled = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += x.shape[0]
        self.grad_enabled |= torch.is_grad_enabled()
        return self.model(NoBackward.apply(x))


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_square_never_asks_for_gradients_and_counts_every_query(cnn: nn.Module,
                                                                norm: str) -> None:
    model = Watched(cnn)
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = cnn(x).argmax(1)  # right everywhere: every sample is searched
    result = Square(n_queries=40, restarts=2).run(model, x, y, ThreatModel(norm, 0.2))
    assert not model.grad_enabled
    assert result.passes.backward == 0
    assert result.passes.forward == model.seen
    assert all(p.grad is None for p in cnn.parameters())


def linear_images(seed: int, n: int = 8) -> tuple[nn.Module, torch.Tensor, torch.Tensor,
                                                  torch.Tensor]:
    """A 3-class linear model on (n, 1, 6, 6) inputs near 0.5, labels, and the exact
    minimal distance of each sample to its closest boundary, (2, n): Linf row, L2 row.

    (On much smaller images, 4 x 5 say, L2 Square's few window positions can leave
    the greedy search stuck; images are what it is built for.)
    """
    gen = torch.Generator().manual_seed(seed)
    linear = nn.Linear(36, 3)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(3, 36, generator=gen))
        linear.bias.zero_()
    model = nn.Sequential(nn.Flatten(), linear).eval()
    x = 0.5 + 0.02 * torch.randn(n, 1, 6, 6, generator=gen)
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    w = linear.weight.detach()
    gap = logits.gather(1, y[:, None]) - logits  # (n, 3)
    dw = w[y][:, None, :] - w[None]  # (n, 3, 36)
    dist = torch.stack([gap / dw.abs().sum(2), gap / dw.norm(dim=2)])
    dist[:, gap == 0] = float("inf")
    return model, x, y, dist.amin(dim=2)


class Brightness(nn.Module):
    """(N, 1, 8, 8) -> 2 logits: class 1 wins where the mean pixel exceeds 0.55."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = 10 * (x.flatten(1).mean(1, keepdim=True) - 0.55)
        return torch.cat([torch.zeros_like(score), score], dim=1)


@pytest.mark.parametrize(("norm", "eps"), [("Linf", 0.1), ("L2", 2.0)])
def test_early_stop_gives_broken_samples_no_more_queries(norm: str, eps: float) -> None:
    easy = torch.full((1, 1, 8, 8), 0.5)  # brighter by 0.05 on average: within reach
    hard = torch.full((1, 1, 8, 8), 0.2)  # would need +0.35: out of reach
    y, threat = torch.tensor([0]), ThreatModel(norm, eps)
    alone = Square(n_queries=200).run(Brightness(), hard, y, threat)
    assert alone.passes.forward == 1 + 200  # the clean check + the whole budget
    assert not bool(alone.success)
    both = Square(n_queries=200).run(Brightness(), torch.cat([easy, hard]),
                                     torch.tensor([0, 0]), threat)
    assert both.success.tolist() == [True, False]
    # the easy sample spent its clean check and a few queries, then no more
    assert 2 <= both.passes.forward - alone.passes.forward <= 1 + 100


# ---------------------------------------------------------------- does it work


@pytest.mark.parametrize("norm", ["Linf", "L2"])
@pytest.mark.parametrize("seed", [0, 1])
def test_square_breaks_a_linear_model_above_the_minimal_distance_and_never_below(
    norm: str, seed: int
) -> None:
    model, x, y, dist = linear_images(seed)
    d = dist[0 if norm == "Linf" else 1]
    above = Square(n_queries=1000).run(model, x, y, ThreatModel(norm, 1.5 * float(d.max())),
                                       generator=torch.Generator().manual_seed(seed))
    assert bool(above.success.all())
    below = Square(n_queries=100).run(model, x, y, ThreatModel(norm, 0.98 * float(d.min())))
    assert not bool(below.success.any())


def test_targeted_square_reaches_the_target(trained_mlp: nn.Module,
                                            digits_test: tuple[torch.Tensor, torch.Tensor]
                                            ) -> None:
    x, y = digits_test[0][:20], digits_test[1][:20]
    target = (y + 1) % 10
    result = Square(n_queries=300).run(trained_mlp, x, y, ThreatModel("Linf", 0.4),
                                       target=target)
    with torch.no_grad():
        pred = trained_mlp(result.x_adv).argmax(1)
    assert int(result.success.sum()) >= 15
    assert torch.equal(result.success, pred == target)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_queries": 0}, "n_queries must be an integer >= 1"),
        ({"n_queries": True}, "n_queries must be an integer >= 1"),
        ({"restarts": 0}, "restarts must be an integer >= 1"),
        ({"p_init": 0.0}, r"p_init must be in \(0, 1\]"),
        ({"p_init": 1.5}, r"p_init must be in \(0, 1\]"),
        ({"loss": "hinge"}, "loss must be one of"),
    ],
    ids=repr,
)
def test_invalid_parameters_raise_config_error(mlp: nn.Module, params: dict[str, Any],
                                               message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make("square", **params).run(mlp, torch.rand(2, 1, 8, 8), torch.tensor([0, 1]),
                                     ThreatModel("Linf", 0.1))


def test_inputs_of_five_dimensions_raise_input_error(mlp: nn.Module) -> None:
    with pytest.raises(InputError, match=r"Square needs images \(N, C, H, W\)"):
        Square().run(mlp, torch.rand(2, 1, 1, 8, 8), torch.tensor([0, 1]),
                     ThreatModel("Linf", 0.1))


@pytest.mark.slow
def test_square_breaks_a_standard_mnist_model(
    mnist_right: Callable[[str, int], MnistRight],
) -> None:
    model, x, y = mnist_right("mnist-smallcnn-std", 24)
    threat = ThreatModel(norm="Linf", eps=0.3)
    result = Square(n_queries=300).run(model, x, y, threat)
    assert bool(threat.contains(result.x_adv, x).all())
    with torch.no_grad():
        assert torch.equal(result.success, model(result.x_adv).argmax(1) != y)
    assert float(result.success.float().mean()) >= 0.8
