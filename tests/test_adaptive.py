"""EOT and BPDA: the stand-in models they attack, and that they beat masked gradients.

The toy models are built so that the masking is the only thing standing between a plain
attack and success: a two-class "is the mean pixel above 0.5?" classifier, 64 inputs at a
mean pixel of 0.3, so an Linf step of 0.3 on every pixel crosses the boundary.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bastion
from bastion import BPDA, EOT, FGSM, PGD, ThreatModel
from bastion.adaptive import ExpectedModel, StraightThrough, split_model
from bastion.attacks import Cascade
from bastion.errors import ConfigError
from bastion.evaluation.attack_spec import build_attacks
from bastion.zoo.broken import Preprocessed, Quantize

SLOPE = 20.0  # logit change per unit of mean pixel


def mean_pixel_logits(x: torch.Tensor, extra: torch.Tensor | float = 0.0) -> torch.Tensor:
    """(N, ...) -> (N, 2): class 1 iff mean pixel + extra / SLOPE > 0.5 (logits not
    saturated, and not log-probabilities, so the runner's probe stays quiet)."""
    s = SLOPE * (x.flatten(1).mean(1) - 0.5) + extra
    return torch.stack([torch.ones_like(s), 1 + s], dim=1)


class MeanPixel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_pixel_logits(x)


class PhaseRipple(nn.Module):
    """:class:`MeanPixel` plus a random-phase ripple: forward noise of at most 1e-3 of the
    slope, but a gradient ``RATIO`` times larger than the true one, in a random direction
    per draw. One draw's gradient is mostly noise; the mean over draws is not."""

    RATIO = 4.0

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("v", torch.randint(0, 2, (64,), generator=gen).float() * 2 - 1)
        self.amplitude = 1e-3 * SLOPE
        self.omega = self.RATIO * (SLOPE / 64) / self.amplitude

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        phase = 2 * math.pi * torch.rand(flat.shape[0], device=x.device)  # global RNG
        ripple = self.amplitude * torch.sin(self.omega * (flat @ self.v) + phase)
        return mean_pixel_logits(x, ripple)


class Counting(nn.Module):
    """Counts the samples sent through ``model`` (forward passes, per sample)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.samples = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.samples += x.shape[0]
        return self.model(x)


def dim_images(n: int = 64, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 1, 8, 8) images with mean pixel ~0.3 (class 0), labels (n,)."""
    gen = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.1 * (torch.rand(n, 1, 8, 8, generator=gen) - 0.5)
    return x, torch.zeros(n, dtype=torch.long)


THREAT = ThreatModel("Linf", 0.3)


# ---------------------------------------------------------------- the wrappers


def test_expected_model_is_the_mean_of_its_draws() -> None:
    model = PhaseRipple()
    x, _ = dim_images(8)
    torch.manual_seed(3)
    draws = [model(x) for _ in range(5)]
    torch.manual_seed(3)
    torch.testing.assert_close(ExpectedModel(model, 5)(x), torch.stack(draws).mean(0))


def test_expected_model_averages_away_the_ripples_gradient() -> None:
    x, _ = dim_images(8)
    true_grad = torch.full((64,), 1 / 64)  # d(mean pixel)/dx: what the ripple hides

    def cosine(model: nn.Module) -> float:
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(xg)[:, 1].sum(), xg)
        return float(F.cosine_similarity(grad.flatten(1), true_grad[None], dim=1).mean())

    torch.manual_seed(0)
    one, many = cosine(PhaseRipple()), cosine(ExpectedModel(PhaseRipple(), 200))
    assert one < 0.5 < many


def test_straight_through_forward_is_exactly_the_model(mlp: nn.Module) -> None:
    x, _ = dim_images(6)
    quantize = Quantize(4)
    out = StraightThrough(mlp, quantize)(x)
    with torch.no_grad():
        assert torch.equal(out, mlp(quantize(x)))
    assert torch.equal(out, StraightThrough(mlp, quantize, approx=torch.sin)(x))


def test_straight_through_gradient_is_the_classifiers_at_the_preprocessed_point(
    mlp: nn.Module
) -> None:
    x, _ = dim_images(6)
    y = torch.arange(6) % 10
    quantize = Quantize(4)

    def grad(model: nn.Module, at: torch.Tensor) -> torch.Tensor:
        at = at.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(at), y, reduction="sum"), at)
        return g

    at_p = grad(mlp, quantize(x))
    assert bool((at_p != 0).any())
    torch.testing.assert_close(grad(StraightThrough(mlp, quantize), x), at_p)
    # With an approximation, the chain rule through it: d sin(x)/dx = cos(x).
    torch.testing.assert_close(grad(StraightThrough(mlp, quantize, approx=torch.sin), x),
                               torch.cos(x) * at_p)
    assert torch.equal(grad(Preprocessed(quantize, mlp), x), torch.zeros_like(x))  # masked


def test_split_model_reads_the_protocol_and_refuses_other_models(mlp: nn.Module) -> None:
    quantize = Quantize(4)
    assert split_model(Preprocessed(quantize, mlp)) == (quantize, mlp)
    with pytest.raises(ConfigError, match=r"Preprocessed\(preprocess, classifier\).*"
                                          r"BPDA\(preprocess=\.\.\.\)"):
        split_model(mlp)


def test_expected_model_refuses_a_bad_number_of_draws(mlp: nn.Module) -> None:
    for draws in (0, 2.5, True):
        with pytest.raises(ConfigError, match="draws must be an integer >= 1"):
            ExpectedModel(mlp, draws)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the attacks


def test_eot_breaks_a_randomized_model_that_plain_pgd_cannot() -> None:
    x, y = dim_images()
    torch.manual_seed(0)
    result = bastion.evaluate(PhaseRipple().eval(), (x, y), THREAT,
                              {"pgd": PGD(steps=40), "eot": EOT(attack=PGD(steps=40), draws=20)})
    assert result.clean_accuracy == 1.0
    assert result.per_attack["pgd"] >= 0.9  # one draw's gradient leads nowhere
    assert result.per_attack["eot"] <= 0.1
    assert any(f["id"] == "randomness" for f in result.flags)


def test_bpda_breaks_a_quantized_model_whose_gradient_is_zero() -> None:
    model = Preprocessed(Quantize(8), MeanPixel()).eval()
    x, y = dim_images()
    result = bastion.evaluate(model, (x, y), THREAT,
                              {"pgd": PGD(steps=20), "bpda": BPDA(attack=PGD(steps=20))})
    assert result.clean_accuracy == 1.0
    assert result.per_attack["pgd"] == 1.0  # zero gradient: PGD never moves
    assert result.per_attack["bpda"] == 0.0
    assert any(f["id"] == "zero-gradients" for f in result.flags)


def test_bpda_with_an_explicit_preprocess_attacks_the_classifier_behind_it() -> None:
    x, y = dim_images(16)
    classifier = MeanPixel()
    result = BPDA(attack=PGD(steps=20), preprocess=Quantize(8)).run(classifier, x, y, THREAT)
    assert bool(result.success.all())
    with torch.no_grad():
        assert bool((classifier(Quantize(8)(result.x_adv)).argmax(1) != y).all())


def test_claims_are_checked_on_the_real_model() -> None:
    class Liar(PGD):
        """Claims success everywhere; moves half the points far outside the ball (which
        then cross the boundary once projected back) and leaves the rest at x."""

        def _run(self, model, x, y, threat, target, generator):  # type: ignore[no-untyped-def]
            res = super()._run(model, x, y, threat, target, generator)
            res.x_adv = x.clone()
            res.x_adv[::2] = (x[::2] + 0.9).clamp(0, 1)
            res.success[:] = True
            return res

    x, y = dim_images(8)
    for wrapper in (EOT(attack=Liar(steps=1), draws=2),
                    BPDA(attack=Liar(steps=1), preprocess=Quantize(8))):
        result = wrapper.run(MeanPixel(), x, y, THREAT)
        assert bool(THREAT.contains(result.x_adv, x).all())
        assert result.success.tolist() == [True, False] * 4


@pytest.mark.parametrize("steps", [1, 3])
def test_eot_counts_every_draw_and_the_check(steps: int) -> None:
    x, y = dim_images(10)
    model = Counting(MeanPixel())
    result = EOT(attack=PGD(steps=steps, early_stop=False), draws=4).run(model, x, y, THREAT)
    # PGD without early stop: steps + 1 forwards and steps backwards per sample, each
    # through 4 draws, then one forward per sample on the real model.
    assert result.passes.forward == 4 * 10 * (steps + 1) + 10 == model.samples
    assert result.passes.backward == 4 * 10 * steps


def test_bpda_counts_classifier_passes_and_the_check() -> None:
    x, y = dim_images(10)
    classifier = Counting(MeanPixel())
    result = BPDA(attack=PGD(steps=3, early_stop=False)).run(
        Preprocessed(Quantize(8), classifier), x, y, THREAT)
    assert result.passes.forward == 10 * 4 + 10 == classifier.samples
    assert result.passes.backward == 10 * 3


def test_eot_scales_the_passes_of_a_cascades_stages() -> None:
    x, y = dim_images(6)
    inner = Cascade(stages={"fgsm": FGSM(), "pgd": PGD(steps=2, early_stop=False)})
    plain = inner.run(MeanPixel(), x, y, ThreatModel("Linf", 0.01))
    wrapped = EOT(attack=inner, draws=3).run(MeanPixel(), x, y, ThreatModel("Linf", 0.01))
    assert set(wrapped.stages) == {"fgsm", "pgd"}
    for label, rep in wrapped.stages.items():
        assert rep["passes"] == {k: 3 * v for k, v in plain.stages[label]["passes"].items()}


def test_eot_on_a_randomized_model_is_reproducible_and_leaves_the_global_rng_alone() -> None:
    x, y = dim_images(8)
    attack = EOT(attack=PGD(steps=5), draws=3)
    state = torch.get_rng_state()
    a = attack.run(PhaseRipple(), x, y, THREAT, generator=torch.Generator().manual_seed(4))
    assert torch.equal(torch.get_rng_state(), state)
    torch.rand(5)  # a different global state must not change the result
    b = attack.run(PhaseRipple(), x, y, THREAT, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.success, b.success)


def test_bpda_outside_eot_attacks_a_random_quantized_model() -> None:
    model = Preprocessed(Quantize(8), PhaseRipple())
    x, y = dim_images(16)
    result = BPDA(attack=EOT(attack=PGD(steps=40), draws=20)).run(
        model, x, y, THREAT, generator=torch.Generator().manual_seed(0))
    # Seeds 0-4 break 78 of 80 (15 of 16 at this seed); the model is randomized, so the
    # bound leaves room for a draw or two.
    assert float(result.success.float().mean()) >= 0.85
    # The other way round the averaged model hides the split, and BPDA says so.
    with pytest.raises(ConfigError, match="Preprocessed"):
        EOT(attack=BPDA(attack="pgd"), draws=2).run(model, x, y, THREAT)


# ---------------------------------------------------------------- configuration


def test_get_params_is_json_and_rebuilds_the_attack() -> None:
    eot = EOT(attack=PGD(steps=7, loss="margin"), draws=3)
    params = eot.get_params()
    assert json.loads(json.dumps(params)) == params
    assert params["attack"]["name"] == "pgd" and params["attack"]["steps"] == 7
    again = EOT(**params).inner_attack()
    assert isinstance(again, PGD) and again.get_params() == PGD(steps=7, loss="margin").get_params()
    bpda = BPDA(attack="pgd", approx=torch.sin)
    assert bpda.get_params()["approx"] == "torch:sin"
    x, y = dim_images(4)
    BPDA(**bpda.get_params()).run(Preprocessed(Quantize(8), MeanPixel()), x, y, THREAT)


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        (EOT(draws=0), "draws must be an integer >= 1"),
        (EOT(attack="nope"), "unknown attack 'nope'"),
        (EOT(attack=3), "attack must be a registered attack name"),  # type: ignore[arg-type]
        (EOT(attack={"name": "pgd", "foo": 1}), "attack 'pgd' has no parameter foo"),
        (BPDA(approx="no_such_module:f", preprocess=Quantize(8)), "could not be imported"),
        (BPDA(approx="torch", preprocess=Quantize(8)), "'torch' is neither"),
        (BPDA(approx="torch.nn:Linear", preprocess=Quantize(8)), "names a class"),
        (BPDA(approx="test_adaptive:<lambda>", preprocess=Quantize(8)), "could not be imported"),
    ],
    ids=repr,
)
def test_bad_configuration_raises_config_error_at_run(attack: bastion.Attack,
                                                      message: str) -> None:
    x, y = dim_images(2)
    with pytest.raises(ConfigError, match=message):
        attack.run(MeanPixel(), x, y, THREAT)


def test_bpda_refuses_two_preprocessings(mlp: nn.Module) -> None:
    x, y = dim_images(2)
    with pytest.raises(ConfigError, match=r"has its own \.preprocess"):
        BPDA(preprocess=Quantize(8)).run(Preprocessed(Quantize(8), mlp), x, y, THREAT)


def test_command_line_specs_build_wrappers_around_registered_attacks() -> None:
    built = build_attacks(["pgd", "eot:attack=pgd,draws=10", "bpda:attack=pgd",
                           "eot:attack=bpda,draws=2,loss=margin"], {"steps": 20})
    assert list(built) == ["pgd-20", "eot-10-pgd-20", "bpda-pgd-20", "eot-2-bpda-pgd-20"]
    eot = built["eot-10-pgd-20"]
    assert isinstance(eot, EOT) and eot.draws == 10
    inner = eot.inner_attack()
    assert isinstance(inner, PGD) and inner.steps == 20  # --steps reaches the inner attack
    nested = built["eot-2-bpda-pgd-20"].inner_attack()
    assert isinstance(nested, BPDA)
    assert nested.inner_attack().get_params()["loss"] == "margin"
    with pytest.raises(ConfigError, match=r"'pgd' \(inside eot\) has no parameter foo"):
        build_attacks(["eot:attack=pgd,foo=1"], {})
    with pytest.raises(ConfigError, match="unknown attack 'nope'"):
        build_attacks(["bpda:attack=nope"], {})


def test_eot_builds_named_inner_attacks_without_early_stopping() -> None:
    # a barely-flipped mean is a boundary point a fresh draw often undoes (docstring)
    inner = EOT(attack="pgd").inner_attack()
    assert isinstance(inner, PGD) and inner.early_stop is False
    kept = EOT(attack={"name": "pgd", "early_stop": True}).inner_attack()
    assert isinstance(kept, PGD) and kept.early_stop is True
    given = PGD(steps=3)
    assert EOT(attack=given).inner_attack() is given  # an instance is used as is
    assert EOT(attack="square").inner_attack().name == "square"  # no early_stop: untouched
    assert BPDA(attack="pgd").inner_attack().early_stop is True  # BPDA is deterministic
