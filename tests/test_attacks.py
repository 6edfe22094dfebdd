"""The attack contract, run over every registered attack, and what each attack promises.

Contract (bastion.attacks.base): keyword-only configuration that ``get_params`` reproduces;
``run`` returns ``x_adv`` with x's shape, dtype and device inside ball ∩ bounds, a (N,)
bool ``success`` that agrees with the model on ``x_adv``, and honest pass counts.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch import nn

from bastion.attacks import FGSM, PGD, REGISTRY, Attack, AttackResult, make
from bastion.attacks.base import is_success
from bastion.errors import ConfigError
from bastion.threat import NORMS, ThreatModel


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


# Registered attacks with settings that keep the contract tests fast; attacks not listed
# run with their defaults. BPDA needs the model's input stage: with preprocess=identity
# the contract's plain models are their own classifiers, so success is checked on them.
FAST: dict[str, dict[str, Any]] = {
    "bpda": {"attack": {"name": "pgd", "steps": 3}, "preprocess": identity},
    "eot": {"attack": {"name": "pgd", "steps": 3}, "draws": 2},
    "pgd": {"steps": 5},
    "apgd": {"steps": 5},
    "apgd-t": {"steps": 3, "n_target_classes": 3},
    "autoattack": {"steps": 3, "n_target_classes": 2, "n_queries": 20},
    "fab": {"steps": 10},
    "square": {"n_queries": 50},
}
ATTACKS = sorted(REGISTRY)
MAX_EPS = {"Linf": 1.0, "L2": 8.0, "L1": 64.0}  # L2, L1: the diameter of [0, 1]^64


def skip_unsupported(name: str, norm: str) -> None:
    """Attacks declare their norms; the refusal of the others is tested separately."""
    if norm not in REGISTRY[name].norms:
        pytest.skip(f"{name} does not support {norm}")


def build(name: str, **overrides: Any) -> Attack:
    return REGISTRY[name](**{**FAST.get(name, {}), **overrides})


def with_random_start(name: str) -> Attack:
    """The attack with its random start switched on (attacks without the switch always
    start at random, or are randomized throughout)."""
    attack = build(name)
    if "random_start" not in attack.get_params():
        return attack
    return build(name, random_start=True)


def inputs(seed: int, n: int = 6, kind: str = "uniform") -> tuple[torch.Tensor, ...]:
    """x (n, 1, 8, 8) in [0, 1], labels y and targets different from y."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=gen)
    if kind == "binary":  # every pixel on a bound: the box clips every step
        x = (x > 0.5).float()
    y = torch.randint(0, 10, (n,), generator=gen)
    target = (y + torch.randint(1, 10, (n,), generator=gen)) % 10
    return x, y, target


def assert_success_agrees(model: nn.Module, result: AttackResult, y: torch.Tensor,
                          target: torch.Tensor | None) -> None:
    """``success`` must be what the model says on ``x_adv`` (except at exact logit ties)."""
    with torch.no_grad():
        logits = model(result.x_adv)
    truth = is_success(logits, y, target)
    top2 = logits.topk(2, dim=1).values
    near_tie = (top2[:, 0] - top2[:, 1]) < 1e-5
    disagree = (truth != result.success) & ~near_tie
    assert not bool(disagree.any()), f"success disagrees with the model at {disagree.nonzero()}"


# ---------------------------------------------------------------- the contract


@pytest.mark.parametrize("targeted", [False, True], ids=["untargeted", "targeted"])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ATTACKS)
@given(seed=st.integers(0, 2**31 - 1), frac=st.floats(0.0, 1.0),
       kind=st.sampled_from(["uniform", "binary"]))
# found by hypothesis: APGD-T recorded the point a step-size checkpoint restarted from
# instead of the iterate whose logits fooled the model
@example(seed=308, frac=0.9375, kind="uniform")
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # cnn is not mutated
def test_contract(cnn: nn.Module, name: str, norm: str, targeted: bool,
                  seed: int, frac: float, kind: str) -> None:
    skip_unsupported(name, norm)
    threat = ThreatModel(norm=norm, eps=frac * MAX_EPS[norm])
    x, y, target = inputs(seed, kind=kind)
    x_before = x.clone()
    attack = build(name)
    result = attack.run(cnn, x, y, threat, target=target if targeted else None,
                        generator=torch.Generator().manual_seed(seed))

    assert torch.equal(x, x_before), "the attack changed its input in place"
    assert result.x_adv.shape == x.shape
    assert result.x_adv.dtype == x.dtype
    assert result.x_adv.device == x.device
    assert not result.x_adv.requires_grad
    inside = threat.contains(result.x_adv, x)
    assert bool(inside.all()), f"outside ball ∩ bounds at {(~inside).nonzero().tolist()}"
    assert result.success.dtype == torch.bool and result.success.shape == (x.shape[0],)
    assert_success_agrees(cnn, result, y, target if targeted else None)
    assert result.passes.forward >= x.shape[0]
    assert 0 <= result.passes.backward <= result.passes.forward
    if type(attack).uses_gradients:
        # Every sample the model still gets right costs at least one gradient (attacks
        # may skip samples that are already successes on x itself).
        with torch.no_grad():
            done = is_success(cnn(x), y, target if targeted else None)
        assert result.passes.backward >= int((~done).sum())


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ATTACKS)
def test_zero_eps_returns_x_and_success_only_where_already_wrong(
    cnn: nn.Module, name: str, norm: str
) -> None:
    skip_unsupported(name, norm)
    x, y, _ = inputs(3, n=16)
    with torch.no_grad():
        y[:8] = cnn(x[:8]).argmax(1)  # right on the first half, mostly wrong on the rest
        wrong = cnn(x).argmax(1) != y
    result = build(name).run(cnn, x, y, ThreatModel(norm=norm, eps=0.0))
    assert torch.equal(result.x_adv, x)
    assert torch.equal(result.success, wrong)


@pytest.mark.parametrize("name", ATTACKS)
def test_float64_inputs_and_model_keep_their_dtype(cnn: nn.Module, name: str) -> None:
    model = cnn.double()
    x, _, _ = inputs(4)
    x = x.double()
    with torch.no_grad():
        y = model(x).argmax(1)
    threat = ThreatModel(norm="L2", eps=0.05)  # small: most samples stay robust to the end
    result = build(name).run(model, x, y, threat)
    assert not bool(result.success.all())
    assert result.x_adv.dtype == torch.float64
    assert bool(threat.contains(result.x_adv, x).all())
    assert_success_agrees(model, result, y, None)


class Bump(nn.Module):
    """Scores (N, 1) -> logits (N, 2): class 1 wins only near 0.5.

    At x = 0.45 with label 0 the model is already wrong, and the loss gradient points
    toward 0.5, so one large step overshoots the bump and the model is right again.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bump = 1.0 - 40.0 * (x[:, :1] - 0.5) ** 2
        return torch.cat([torch.zeros_like(bump), bump], dim=1)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ATTACKS)
def test_points_already_misclassified_count_as_successes(name: str, norm: str) -> None:
    skip_unsupported(name, norm)
    attack = build(name)
    if "random_start" in attack.get_params():
        attack = build(name, random_start=False)
    x = torch.tensor([[0.45], [0.55], [0.1]])
    y = torch.tensor([0, 0, 1])  # wrong, wrong, wrong: class 0 wins at 0.1
    result = attack.run(Bump(), x, y, ThreatModel(norm=norm, eps=0.3))
    assert result.success.tolist() == [True, True, True]
    with torch.no_grad():
        assert bool((Bump()(result.x_adv).argmax(1) != y).all())


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
@pytest.mark.parametrize("name", ATTACKS)
def test_integer_labels_of_any_width_are_accepted(
    cnn: nn.Module, name: str, dtype: torch.dtype
) -> None:
    # check_inputs admits any integer labels; the losses need int64 (cross-entropy and
    # gather refuse int32), so the attack must convert rather than crash.
    x, y, target = inputs(5)
    threat = ThreatModel(norm="Linf", eps=0.2)
    losses: tuple[dict[str, str], ...] = ({"loss": "ce"}, {"loss": "margin"})
    if "loss" not in build(name).get_params():
        losses = ({},)
    for loss in losses:
        want = build(name, **loss).run(cnn, x, y, threat, target=target)
        got = build(name, **loss).run(cnn, x, y.to(dtype), threat, target=target.to(dtype))
        assert torch.equal(got.x_adv, want.x_adv)
        assert torch.equal(got.success, want.success)


@pytest.mark.parametrize("name", ATTACKS)
def test_model_parameters_get_no_gradient(mlp: nn.Module, name: str) -> None:
    x, y, _ = inputs(6)
    build(name).run(mlp, x, y, ThreatModel(norm="Linf", eps=0.1))
    assert all(p.grad is None for p in mlp.parameters())


class WeightsWatched(nn.Module):
    """Notes whether any parameter required a gradient while the model was called."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.saw_trainable = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.saw_trainable |= any(p.requires_grad for p in self.parameters())
        out: torch.Tensor = self.model(x)
        return out


@pytest.mark.parametrize("name", ATTACKS)
def test_weights_are_frozen_during_the_run_and_restored_after(mlp: nn.Module,
                                                             name: str) -> None:
    model = WeightsWatched(mlp)
    fixed = next(iter(mlp.parameters()))
    fixed.requires_grad_(False)  # a frozen weight stays frozen afterwards
    x, y, _ = inputs(6)
    build(name).run(model, x, y, ThreatModel(norm="Linf", eps=0.1))
    assert not model.saw_trainable
    assert not fixed.requires_grad
    assert all(p.requires_grad for p in mlp.parameters() if p is not fixed)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ATTACKS)
def test_same_seed_gives_identical_results(cnn: nn.Module, name: str, norm: str) -> None:
    skip_unsupported(name, norm)
    attack = with_random_start(name)
    x, y, _ = inputs(7)
    threat = ThreatModel(norm=norm, eps=0.3)
    a = attack.run(cnn, x, y, threat, generator=torch.Generator().manual_seed(11))
    b = attack.run(cnn, x, y, threat, generator=torch.Generator().manual_seed(11))
    assert torch.equal(a.x_adv, b.x_adv)
    assert torch.equal(a.success, b.success)
    assert a.passes == b.passes
    # No generator means a fixed default seed, not fresh randomness.
    c = attack.run(cnn, x, y, threat)
    d = attack.run(cnn, x, y, threat)
    assert torch.equal(c.x_adv, d.x_adv)


@pytest.mark.parametrize("name", ATTACKS)
def test_different_seeds_give_different_random_starts(cnn: nn.Module, name: str) -> None:
    attack = with_random_start(name)
    x, y, _ = inputs(8)
    threat = ThreatModel(norm="L2", eps=1.0)
    a = attack.run(cnn, x, y, threat, generator=torch.Generator().manual_seed(1))
    b = attack.run(cnn, x, y, threat, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a.x_adv, b.x_adv)


def test_pgd_random_start_differs_per_seed_under_linf(cnn: nn.Module) -> None:
    x, y, _ = inputs(9)
    threat = ThreatModel(norm="Linf", eps=0.3)
    pgd = PGD(steps=1, random_start=True)
    a = pgd.run(cnn, x, y, threat, generator=torch.Generator().manual_seed(1))
    b = pgd.run(cnn, x, y, threat, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(a.x_adv, b.x_adv)
    # Without a random start the seed is irrelevant.
    plain = PGD(steps=1, random_start=False)
    c = plain.run(cnn, x, y, threat, generator=torch.Generator().manual_seed(1))
    d = plain.run(cnn, x, y, threat, generator=torch.Generator().manual_seed(2))
    assert torch.equal(c.x_adv, d.x_adv)


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize("name", ATTACKS)
def test_configuration_is_keyword_only_and_get_params_round_trips(name: str) -> None:
    cls = REGISTRY[name]
    params = inspect.signature(cls.__init__).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in params.items()
               if n != "self"), f"{name}: hyper-parameters must be keyword-only"
    for attack in (cls(), build(name)):
        got = attack.get_params()
        assert set(got) == set(params) - {"self"}
        again = type(attack)(**got)
        assert again.get_params() == got
        assert repr(again) == repr(attack)
        assert repr(attack).startswith(f"{cls.__name__}(")


def test_get_params_reports_non_default_values() -> None:
    pgd = PGD(steps=7, step_size=0.01, restarts=3, random_start=False, loss="margin",
              early_stop=False)
    assert pgd.get_params() == {"steps": 7, "step_size": 0.01, "restarts": 3,
                                "random_start": False, "loss": "margin", "early_stop": False}
    assert FGSM(loss="margin", random_start=True).get_params() == {
        "loss": "margin", "random_start": True}


def test_registry_names_match_classes_and_declare_real_norms() -> None:
    assert {"fgsm", "pgd"} <= set(REGISTRY)
    for name, cls in REGISTRY.items():
        assert cls.name == name
        assert cls.norms and set(cls.norms) <= set(NORMS)


def test_make_builds_by_name_and_lists_names_when_unknown() -> None:
    pgd = make("pgd", steps=3)
    assert isinstance(pgd, PGD) and pgd.steps == 3
    with pytest.raises(ConfigError, match=r"unknown attack 'pgdd'; registered attacks: .*pgd"):
        make("pgdd")


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        (PGD(steps=0), "steps must be an integer >= 1"),
        (PGD(steps=2.5), "steps must be an integer >= 1"),  # type: ignore[arg-type]
        (PGD(restarts=0), "restarts must be an integer >= 1"),
        (PGD(loss="x"), r"loss must be one of \('ce', 'margin', 'dlr'\)"),
        (PGD(step_size=-0.1), "step_size must be > 0"),
        (PGD(step_size=0.0), "step_size must be > 0"),
        (PGD(step_size=float("nan")), "step_size must be > 0"),
        (FGSM(loss="x"), r"loss must be one of \('ce', 'margin', 'dlr'\)"),
    ],
    ids=repr,
)
def test_invalid_parameters_raise_config_error_at_run(
    mlp: nn.Module, attack: Attack, message: str
) -> None:
    x, y, _ = inputs(10, n=2)
    with pytest.raises(ConfigError, match=message):
        attack.run(mlp, x, y, ThreatModel(norm="Linf", eps=0.1))


def test_unsupported_norm_raises_config_error(mlp: nn.Module) -> None:
    class LinfOnlyPGD(PGD):
        name = "linf-only-pgd"
        norms = ("Linf",)

    x, y, _ = inputs(11, n=2)
    with pytest.raises(ConfigError, match=r"linf-only-pgd supports norms \('Linf',\), not 'L2'"):
        LinfOnlyPGD().run(mlp, x, y, ThreatModel(norm="L2", eps=0.5))
    LinfOnlyPGD(steps=1).run(mlp, x, y, ThreatModel(norm="Linf", eps=0.1))  # still works
    for name, cls in REGISTRY.items():
        for norm in set(NORMS) - set(cls.norms):
            with pytest.raises(ConfigError, match="supports norms"):
                build(name).run(mlp, x, y, ThreatModel(norm=norm, eps=0.1))


@pytest.mark.parametrize("name", ATTACKS)
def test_target_of_the_wrong_shape_raises_config_error(mlp: nn.Module, name: str) -> None:
    x, y, _ = inputs(12, n=4)
    with pytest.raises(ConfigError, match="target must have the shape of y"):
        build(name).run(mlp, x, y, ThreatModel(norm="Linf", eps=0.1), target=y[:2])


# ---------------------------------------------------------------- pass counting


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("norm", NORMS)
def test_pgd_counts_k_plus_one_forwards_and_k_backwards_without_early_stop(
    cnn: nn.Module, norm: str, steps: int
) -> None:
    x, y, _ = inputs(13, n=10)
    result = PGD(steps=steps, restarts=1, early_stop=False).run(
        cnn, x, y, ThreatModel(norm=norm, eps=0.5))
    assert result.passes.forward == 10 * (steps + 1)
    assert result.passes.backward == 10 * steps


def test_pgd_early_stop_spends_less_and_finds_the_same_successes(
    trained_mlp: nn.Module, digits_test: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = digits_test[0][:64].double(), digits_test[1][:64]
    model64 = copy.deepcopy(trained_mlp).double()  # float64: no sign flips from batch size
    threat = ThreatModel(norm="Linf", eps=0.15)
    fast = PGD(steps=10, early_stop=True).run(model64, x, y, threat)
    full = PGD(steps=10, early_stop=False).run(model64, x, y, threat)
    assert torch.equal(fast.success, full.success)
    assert 0 < int(fast.success.sum()) < 64  # some broken early, some not
    assert fast.passes.backward < full.passes.backward == 64 * 10
    assert fast.passes.forward < full.passes.forward == 64 * 11


def test_pgd_restarts_run_only_on_samples_still_robust(cnn: nn.Module) -> None:
    x, y, _ = inputs(14, n=12)
    threat = ThreatModel(norm="Linf", eps=0.02)
    one = PGD(steps=2, restarts=1, early_stop=False).run(cnn, x, y, threat)
    three = PGD(steps=2, restarts=3, early_stop=False).run(cnn, x, y, threat)
    robust_after_one = int((~one.success).sum())
    # The first restart is the same run; later ones see at most the still-robust samples.
    assert three.passes.backward <= 12 * 2 + 2 * robust_after_one * 2
    assert three.passes.backward >= 12 * 2
    assert bool((three.success | ~one.success).all())  # restarts never lose a success


def test_fgsm_costs_one_gradient_and_two_forwards_per_sample(cnn: nn.Module) -> None:
    x, y, _ = inputs(15, n=7)
    result = FGSM().run(cnn, x, y, ThreatModel(norm="Linf", eps=0.1))
    assert (result.passes.forward, result.passes.backward) == (14, 7)


# ---------------------------------------------------------------- what each attack does


@pytest.mark.parametrize("norm", NORMS)
def test_fgsm_steps_exactly_eps_from_an_interior_point(cnn: nn.Module, norm: str) -> None:
    x = torch.full((4, 1, 8, 8), 0.5) + 0.05 * torch.randn(
        4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = cnn(x).argmax(1)  # right on x, so FGSM keeps its step
    eps = 0.3
    result = FGSM().run(cnn, x, y, ThreatModel(norm=norm, eps=eps))
    delta = (result.x_adv - x).flatten(1)
    if norm == "L2":
        torch.testing.assert_close(delta.norm(dim=1), torch.full((4,), eps), rtol=1e-5, atol=0)
        # ...along the gradient of the loss, not along its sign
        x_req = x.clone().requires_grad_(True)
        F.cross_entropy(cnn(x_req), y, reduction="sum").backward()
        assert x_req.grad is not None
        cosine = F.cosine_similarity(delta, x_req.grad.flatten(1), dim=1)
        torch.testing.assert_close(cosine, torch.ones(4), rtol=0, atol=1e-5)
    else:
        # every pixel with a non-zero gradient moves by exactly eps
        moved = delta.abs()
        assert bool(((moved - eps).abs() < 1e-6).logical_or(moved == 0).all())
        assert bool((moved.amax(dim=1) > eps - 1e-6).all())


@pytest.mark.parametrize("targeted", [False, True], ids=["untargeted", "targeted"])
@pytest.mark.parametrize("norm", NORMS)
def test_fgsm_step_goes_the_right_way(cnn: nn.Module, norm: str, targeted: bool) -> None:
    # A tiny step follows the gradient: the loss on y rises (untargeted), the loss on the
    # target falls (targeted).
    x, y, target = inputs(16, n=8)
    x = 0.25 + 0.5 * x  # interior, so no clipping
    eps = 1e-3
    result = FGSM().run(cnn, x, y, ThreatModel(norm=norm, eps=eps),
                        target=target if targeted else None)
    with torch.no_grad():
        label = target if targeted else y
        before = F.cross_entropy(cnn(x), label, reduction="none")
        after = F.cross_entropy(cnn(result.x_adv), label, reduction="none")
    changed = after != before
    assert bool(changed.any())
    if targeted:
        assert bool((after[changed] < before[changed]).all())
    else:
        assert bool((after[changed] > before[changed]).all())


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_targeted_pgd_reaches_the_target_on_a_trained_model(
    trained_mlp: nn.Module, digits_test: tuple[torch.Tensor, torch.Tensor], loss: str
) -> None:
    x, y = digits_test[0][:40], digits_test[1][:40]
    target = (y + 3) % 10
    result = PGD(steps=20, loss=loss).run(trained_mlp, x, y, ThreatModel(norm="Linf", eps=0.5),
                                          target=target)
    with torch.no_grad():
        pred = trained_mlp(result.x_adv).argmax(1)
    assert float((pred == target).float().mean()) >= 0.9
    assert torch.equal(result.success, pred == target)


@pytest.mark.parametrize("loss", ["ce", "margin"])
@pytest.mark.parametrize("norm", NORMS)
def test_pgd_is_at_least_as_strong_as_fgsm_on_a_trained_model(
    trained_mlp: nn.Module, digits_test: tuple[torch.Tensor, torch.Tensor], norm: str, loss: str
) -> None:
    x, y = digits_test
    with torch.no_grad():
        right = trained_mlp(x).argmax(1) == y
    x, y = x[right][:100], y[right][:100]
    threat = ThreatModel(norm=norm, eps=0.1 if norm == "Linf" else 1.0)
    fgsm = FGSM(loss=loss).run(trained_mlp, x, y, threat).success.float().mean()
    # From x, as FGSM starts: from a random start, PGD-20 margin at Linf 0.1 breaks 51.4% on
    # average over 40 seeds against FGSM's 52% (a seed decides which side it falls on).
    pgd = PGD(steps=20, loss=loss, random_start=False).run(
        trained_mlp, x, y, threat).success.float().mean()
    assert 0.0 < float(fgsm) < 1.0  # the radius is neither trivial nor overwhelming
    assert float(pgd) >= float(fgsm)


# ---------------------------------------------------------------- real models (slow)


def robust_accuracy(model: nn.Module, attack: Attack, x: torch.Tensor, y: torch.Tensor,
                    threat: ThreatModel) -> float:
    with torch.no_grad():
        right = model(x).argmax(1) == y
    result = attack.run(model, x, y, threat, generator=torch.Generator().manual_seed(0))
    assert bool(threat.contains(result.x_adv, x).all())
    with torch.no_grad():
        fooled = model(result.x_adv).argmax(1) != y
    return float((right & ~(result.success & fooled)).float().mean())


@pytest.fixture(scope="module")
def mnist_100() -> tuple[torch.Tensor, torch.Tensor]:
    from bastion.data import load

    data = load("mnist", "test", n=100)
    return data.x, data.y


@pytest.mark.slow
def test_pgd_breaks_a_standard_mnist_model(mnist_100: tuple[torch.Tensor, torch.Tensor]) -> None:
    from bastion import zoo

    model = zoo.load("advertorch-lenet5-std")
    x, y = mnist_100
    pgd = robust_accuracy(model, PGD(steps=20), x, y, ThreatModel(norm="Linf", eps=0.3))
    assert pgd <= 0.05


@pytest.mark.slow
def test_pgd_on_advertorch_adversarially_trained_lenet_matches_published_and_beats_fgsm(
    mnist_100: tuple[torch.Tensor, torch.Tensor]
) -> None:
    # advertorch reports 92.4% robust accuracy on 2,000 test images under PGD-40 at 0.3.
    from bastion import zoo

    model = zoo.load("advertorch-lenet5-adv")
    x, y = mnist_100
    threat = ThreatModel(norm="Linf", eps=0.3)
    pgd = robust_accuracy(model, PGD(steps=40), x, y, threat)
    fgsm = robust_accuracy(model, FGSM(), x, y, threat)
    assert 0.80 <= pgd <= 0.98
    assert pgd <= fgsm
