"""Training objectives and schedules: bounds, reductions, modes, and the safeguards."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from bastion.errors import ConfigError
from bastion.threat import ThreatModel
from bastion.train import LossSettings, TrainConfig, method_loss, trades_loss
from bastion.train.losses import METHODS, get_method
from bastion.train.monitor import Monitor
from bastion.train.schedules import eps_at, lr_factor

SETTINGS = LossSettings(steps=3)


def tiny_mlp() -> nn.Module:
    """(N, 1, 8, 8) -> (N, 10), the same weights every call."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def tiny_cnn() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


def random_batch(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((n, 1, 8, 8), generator=gen), torch.randint(0, 10, (n,), generator=gen)


def dropout_mlp() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(16, 10)).train()


# gaussian augmentation is not an attack: its noise is unbounded by design (tested below)
@pytest.mark.parametrize("name", sorted(set(METHODS) - {"gaussian"}))
@given(eps=st.floats(0.0, 0.5), l2=st.booleans(), seed=st.integers(0, 2**16))
def test_perturbation_stays_in_the_threat_model(name: str, eps: float, l2: bool,
                                                seed: int) -> None:
    x, y = random_batch(6, seed)
    threat = ThreatModel("L2" if l2 else "Linf", eps * (4 if l2 else 1))
    perturb, _ = get_method(name)
    x_adv = perturb(tiny_mlp(), x, y, threat, torch.Generator().manual_seed(seed), SETTINGS)
    assert x_adv.shape == x.shape
    assert bool(threat.contains(x_adv, x).all())


@pytest.mark.parametrize("name", sorted(METHODS))
def test_loss_is_a_finite_scalar_with_parameter_gradients_only_from_the_objective(
        name: str) -> None:
    model = tiny_cnn().train()
    x, y = random_batch(8)
    perturb, objective = get_method(name)
    threat = ThreatModel("Linf", 0.1)
    x_adv = perturb(model, x, y, threat, torch.Generator().manual_seed(0), SETTINGS)
    assert all(p.grad is None for p in model.parameters())  # the attack leaves no .grad
    assert model.training  # the attack restored the mode
    loss = objective(model, x, x_adv, y, SETTINGS)
    assert loss.dim() == 0 and math.isfinite(float(loss.detach()))
    loss.backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0)
               for p in model.parameters())


def test_standard_and_zero_beta_trades_are_clean_cross_entropy() -> None:
    model, (x, y) = tiny_mlp(), random_batch(16)
    gen = torch.Generator().manual_seed(0)
    clean = F.cross_entropy(model(x), y)
    threat = ThreatModel("Linf", 0.3)
    assert torch.allclose(method_loss("standard", model, x, y, threat, gen), clean)
    assert torch.allclose(trades_loss(model, x, y, threat, gen, beta=0.0, steps=2), clean)


def test_trades_loss_grows_with_beta() -> None:
    model, (x, y) = tiny_mlp(), random_batch(16)
    threat = ThreatModel("Linf", 0.3)
    losses = [trades_loss(model, x, y, threat, torch.Generator().manual_seed(0),
                          beta=b, steps=3).item() for b in (0.0, 1.0, 6.0)]
    assert losses[0] < losses[1] < losses[2]


def test_pgd_examples_raise_the_loss_over_clean_and_random_points(
        trained_mlp: nn.Module, digits_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = digits_test[0][:64], digits_test[1][:64]
    threat = ThreatModel("Linf", 0.1)
    gen = torch.Generator().manual_seed(0)
    clean = float(F.cross_entropy(trained_mlp(x), y))
    noisy = float(F.cross_entropy(trained_mlp(threat.random_point(x, gen)), y))
    adv = method_loss("pgd", trained_mlp, x, y, threat, gen, LossSettings(steps=5)).item()
    fgsm = method_loss("fgsm", trained_mlp, x, y, threat, gen).item()
    assert adv > max(clean, noisy) and fgsm > max(clean, noisy)


def test_pgd_attack_runs_in_eval_mode_and_fgsm_in_train_mode() -> None:
    # With dropout, eval-mode iterates are deterministic; train-mode ones are not.
    model, (x, y) = dropout_mlp(), random_batch(8)
    threat = ThreatModel("Linf", 0.2)
    perturb_pgd, _ = get_method("pgd")
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        first = perturb_pgd(model, x, y, threat, torch.Generator().manual_seed(0), SETTINGS)
        torch.manual_seed(2)  # other dropout masks: must not matter in eval mode
        runs.append(first)
    assert torch.equal(runs[0], runs[1])
    perturb_fgsm, _ = get_method("fgsm")
    outs = []
    for s in (1, 2):
        torch.manual_seed(s)
        outs.append(perturb_fgsm(model, x, y, threat, torch.Generator().manual_seed(0),
                                 SETTINGS))
    assert not torch.equal(outs[0], outs[1])
    assert model.training


def test_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="trades"):
        get_method("free")
    with pytest.raises(ConfigError, match="unknown method"):
        TrainConfig(method="free")


@given(eps=st.floats(0.01, 1.0), ramp=st.floats(0.5, 5.0), batches=st.integers(1, 50))
def test_eps_ramp_is_monotone_and_reaches_eps(eps: float, ramp: float, batches: int) -> None:
    values = [eps_at(eps, ramp, e, b, batches) for e in range(7) for b in range(batches)]
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(values))
    assert values[-1] == pytest.approx(eps) and 0 < values[0] <= eps
    assert eps_at(eps, 0.0, 0, 0, batches) == eps


@given(total=st.integers(10, 5000))
def test_lr_schedules(total: int) -> None:
    piece = [lr_factor("piecewise", s, total, (0.5, 0.75)) for s in range(total)]
    assert piece[0] == 1.0 and piece[-1] == pytest.approx(0.01)
    assert sorted(set(piece), reverse=True) == pytest.approx([1.0, 0.1, 0.01])
    cycle = [lr_factor("onecycle", s, total, ()) for s in range(total)]
    assert max(cycle) == pytest.approx(1.0, abs=2 / total) and cycle[-1] == 0.0
    assert all(0 <= c <= 1 for c in cycle)


def test_last_epoch_milestone_lands_on_the_epoch_boundary() -> None:
    # the zoo recipe divides lr by 10 for the last of 12 epochs of 391 batches
    total = 12 * 391
    assert lr_factor("piecewise", 11 * 391 - 1, total, (11 / 12,)) == 1.0
    assert lr_factor("piecewise", 11 * 391, total, (11 / 12,)) == pytest.approx(0.1)


def test_monitor_keeps_the_best_robust_epoch_and_flags_a_collapse() -> None:
    mon = Monitor(by="robust_accuracy", co_drop=0.2)
    assert mon.update(0, {"clean_accuracy": 0.8, "robust_accuracy": 0.40}) == (True, False)
    assert mon.update(1, {"clean_accuracy": 0.85, "robust_accuracy": 0.45}) == (True, False)
    # robust overfitting: worse, but no collapse
    assert mon.update(2, {"clean_accuracy": 0.9, "robust_accuracy": 0.35}) == (False, False)
    # catastrophic: robust accuracy gone, clean accuracy high
    assert mon.update(3, {"clean_accuracy": 0.92, "robust_accuracy": 0.02}) == (False, True)
    assert mon.best_epoch == 1 and mon.best == 0.45
    assert Monitor.from_state(mon.state_dict()) == mon


def test_monitor_does_not_call_a_uniform_drop_catastrophic() -> None:
    mon = Monitor(by="robust_accuracy", co_drop=0.2)
    mon.update(0, {"clean_accuracy": 0.9, "robust_accuracy": 0.6})
    # clean collapsed too: a diverged run, not catastrophic overfitting
    assert mon.update(1, {"clean_accuracy": 0.1, "robust_accuracy": 0.1}) == (False, False)


def test_gaussian_augmentation_adds_noise_of_the_configured_std() -> None:
    x = torch.full((64, 1, 8, 8), 0.5)
    perturb, _ = get_method("gaussian")
    threat = ThreatModel("Linf", 0.3)
    for sigma in (0.12, 0.5):
        noise = perturb(tiny_mlp(), x, torch.zeros(64, dtype=torch.long), threat,
                        torch.Generator().manual_seed(1), LossSettings(noise_sigma=sigma)) - x
        assert abs(float(noise.std()) - sigma) < 0.05 * sigma
        assert abs(float(noise.mean())) < 0.05 * sigma


def test_noise_sigma_is_fingerprinted_only_for_gaussian_training() -> None:
    base = {"method": "pgd", "noise_sigma": 0.25}
    assert TrainConfig(**base).fingerprint() == \
        TrainConfig(**{**base, "noise_sigma": 0.5}).fingerprint()
    gauss = {"method": "gaussian", "noise_sigma": 0.25}
    assert TrainConfig(**gauss).fingerprint() != \
        TrainConfig(**{**gauss, "noise_sigma": 0.5}).fingerprint()
    with pytest.raises(ConfigError, match="noise_sigma"):
        TrainConfig(method="gaussian", noise_sigma=0.0)
