"""The deliberately broken defenses: each masks gradients the way it claims, looks robust
to plain PGD, and falls to the adaptive attack that fits it, down to about the undefended
model's robust accuracy (0% at Linf 0.3 on these images).

Runs through :func:`bastion.evaluate`, so every success is re-checked on a fresh forward of
the real model, with the global random state seeded first (broken-random draws from it).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bastion
from bastion import BPDA, EOT, PGD, Square, ThreatModel, zoo
from bastion.attacks import Attack
from bastion.zoo import broken

THREAT = ThreatModel("Linf", 0.3)
N = 100


@pytest.fixture(scope="module")
def mnist() -> tuple[torch.Tensor, torch.Tensor]:
    data = bastion.data.load("mnist", "test", n=N)
    return data.x, data.y


def evaluate(name: str, data: tuple[torch.Tensor, torch.Tensor],
             attacks: dict[str, Attack]) -> bastion.Evaluation:
    torch.manual_seed(0)
    return bastion.evaluate(zoo.load(name), data, THREAT, attacks)


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, ...) input gradient of the summed per-sample cross-entropy."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    return grad


@pytest.mark.parametrize("name", ["broken-quantize", "broken-random", "broken-saturate"])
def test_broken_entries_load_as_wrappers_of_the_standard_model(name: str) -> None:
    model = zoo.load(name)
    entry = zoo.resolve(name)
    assert entry.kind == "broken" and "BROKEN ON PURPOSE" in entry.description
    assert not any(m.training for m in model.modules())
    inner = model.classifier if isinstance(model, broken.Preprocessed) else model.model
    std = zoo.load("mnist-smallcnn-std")
    assert all(torch.equal(a, b) for a, b in zip(inner.state_dict().values(),
                                                std.state_dict().values(), strict=True))


def test_broken_quantize_has_zero_gradients_and_falls_to_bpda(
    mnist: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = mnist
    model = zoo.load("broken-quantize")
    assert torch.equal(input_gradient(model, x, y), torch.zeros_like(x))
    result = evaluate("broken-quantize", mnist,
                      {"pgd": PGD(steps=10), "bpda": BPDA(attack=PGD(steps=10))})
    assert result.clean_accuracy >= 0.98
    assert result.per_attack["pgd"] >= 0.9  # only the random start moves anything
    assert result.per_attack["bpda"] <= 0.03
    assert "zero-gradients" in {f["id"] for f in result.flags}


def test_broken_random_changes_every_forward_and_falls_to_eot(
    mnist: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x = mnist[0]
    model = zoo.load("broken-random")
    with torch.no_grad():
        assert not torch.equal(model(x[:8]), model(x[:8]))
    # PGD stops at the first step whose random draw misclassifies; the check on a fresh
    # draw then often disagrees. What breaks the defense is an attack that keeps pushing
    # (no early stop) on the averaged model.
    eot = EOT(attack=PGD(steps=10, early_stop=False), draws=4)
    result = evaluate("broken-random", mnist, {"pgd": PGD(steps=40), "eot": eot})
    assert result.clean_accuracy >= 0.95
    assert result.per_attack["pgd"] >= 0.4
    assert result.per_attack["eot"] <= 0.05
    assert "randomness" in {f["id"] for f in result.flags}


def test_broken_saturate_has_flat_cross_entropy_and_falls_to_a_margin_loss(
    mnist: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = mnist
    model = zoo.load("broken-saturate")
    with torch.no_grad():
        logits = model(x)
    right = logits.argmax(1) == y
    ce = F.cross_entropy(logits, y, reduction="none")
    flat = (input_gradient(model, x, y).flatten(1) == 0).all(1)
    assert int((right & (ce == 0) & flat).sum()) >= 0.9 * int(right.sum())
    result = evaluate("broken-saturate", mnist,
                      {"pgd": PGD(steps=10), "pgd-margin": PGD(steps=10, loss="margin")})
    assert result.clean_accuracy >= 0.98
    assert result.per_attack["pgd"] >= 0.9
    assert result.per_attack["pgd-margin"] <= 0.03
    assert "saturated-logits" in {f["id"] for f in result.flags}


def test_broken_saturate_falls_to_square(mnist: tuple[torch.Tensor, torch.Tensor]) -> None:
    result = evaluate("broken-saturate", (mnist[0][:50], mnist[1][:50]),
                      {"square": Square(n_queries=1000)})
    assert result.per_attack["square"] <= 0.05


def test_quantize_and_resize_pad_keep_shapes_and_ranges() -> None:
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    q = broken.Quantize(16)(x)
    assert q.shape == x.shape and bool(((q * 15).round() == q * 15).all())
    assert float((q - x).abs().max()) <= 1 / 30 + 1e-6
    torch.manual_seed(0)
    r = broken.RandomResizePad(25, 0.1)(x)
    assert r.shape == x.shape and float(r.min()) >= 0 and float(r.max()) <= 1
    # Without noise and at full size the transform is the identity (up to interpolation).
    torch.testing.assert_close(broken.RandomResizePad(28, 0.0)(x), x, atol=1e-5, rtol=0)


def test_shrunk_image_lands_inside_the_canvas() -> None:
    torch.manual_seed(1)
    ones = torch.ones(16, 1, 28, 28)
    out = broken.RandomResizePad(20, 0.0)(ones)
    inked = (out > 0.5).flatten(1).sum(1)
    sides = inked.double().sqrt()
    assert bool(((sides >= 20) & (sides <= 28)).all())
    assert bool((sides == sides.round()).all())  # an r x r square, nothing cut off


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: broken.Quantize(1), "levels must be an integer >= 2"),
        (lambda: broken.RandomResizePad(0), "min_size must be an integer >= 1"),
        (lambda: broken.RandomResizePad(20, -0.1), "noise must be >= 0"),
        (lambda: broken.Scaled(nn.Identity(), 0.0), "scale must be > 0"),
        (lambda: broken.Preprocessed(3, nn.Identity()), "preprocess must be callable"),
        (lambda: broken.Preprocessed(nn.Identity(), lambda x: x), "classifier must be"),
        (lambda: broken.RandomResizePad(30)(torch.rand(1, 1, 28, 28)), "larger than the images"),
        (lambda: broken.RandomResizePad(20)(torch.rand(1, 1, 28, 20)), "square images"),
    ],
)
def test_bad_settings_raise_config_errors(build: object, message: str) -> None:
    with pytest.raises(bastion.ConfigError, match=message):
        build()  # type: ignore[operator]
