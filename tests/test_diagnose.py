"""bastion.diagnose: each check's verdict rules, each measurement on toy models, and the
whole diagnosis on an honest toy model and on three purpose-built masking ones.

The toy models work on scikit-learn's 8x8 digits: ``trained_mlp`` (conftest) is honest;
wrapped, it masks its gradients by input quantisation (zero gradients), by noise on every
forward (random gradients) or by logits scaled so far that softmax is one-hot
(saturated cross-entropy). Budgets are small so every test takes well under a second.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from bastion.diagnostics import CHECKS, compare, curves, diagnose, gradients, result
from bastion.diagnostics.binarize import Binarized, binarization_test, fit_readouts
from bastion.diagnostics.trace import traced_pgd
from bastion.errors import ConfigError, InputError, ModelError
from bastion.threat import ThreatModel

EPS = 0.1
FAST = {"steps": 20, "square_queries": 300, "black_box_points": 30}


class Quantized(nn.Module):
    """``model`` on inputs rounded to ``levels`` grey levels: autograd's gradient is 0."""

    def __init__(self, model: nn.Module, levels: int = 255) -> None:
        super().__init__()
        self.model, self.levels = model, levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * self.levels) / self.levels)


class Noisy(nn.Module):
    """``model`` on inputs plus fresh Gaussian noise on every forward."""

    def __init__(self, model: nn.Module, sigma: float = 0.1) -> None:
        super().__init__()
        self.model, self.sigma = model, sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x + self.sigma * torch.randn_like(x))


class Scaled(nn.Module):
    """``model``'s logits times ``factor``: float32 softmax is one-hot, CE's gradient 0."""

    def __init__(self, model: nn.Module, factor: float = 1e4) -> None:
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.factor


class Constant(nn.Module):
    """The same logits for every input (kept on the autograd graph, with zero gradient)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.arange(10, dtype=x.dtype) * 0.1
        return logits.expand(x.shape[0], 10) + 0 * x.flatten(1).sum(1, keepdim=True)


@pytest.fixture
def right(trained_mlp, digits_test):
    """60 digits the honest MLP classifies correctly: (x, y)."""
    x, y = digits_test
    with torch.no_grad():
        ok = trained_mlp(x).argmax(1) == y
    return x[ok][:60], y[ok][:60]


@pytest.fixture
def sixty(digits_test):
    x, y = digits_test
    return x[:60], y[:60]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def failed(diagnosis) -> set[str]:
    return {c["name"] for c in diagnosis.checks if c["verdict"] == "fail"}


# --- the shared rules -------------------------------------------------------------------

def test_a_check_has_one_of_three_verdicts():
    assert result.check("x", "warn", {}, "look")["verdict"] == "warn"
    with pytest.raises(ValueError, match="verdict"):
        result.check("x", "skipped", {}, "no")
    gone = result.skipped("transfer", "no surrogate")
    assert gone["verdict"] == "pass" and gone["skipped"] and "no surrogate" in gone["advice"]


def test_grade_and_noise_tolerance():
    assert result.grade(0.01, 0.01, 0.1) == "pass"
    assert result.grade(0.0101, 0.01, 0.1) == "warn"
    assert result.grade(0.1001, 0.01, 0.1) == "fail"
    assert result.sample_tolerance(100) == pytest.approx(0.015)  # more than one sample
    assert result.sample_tolerance(10_000) == result.MIN_TOLERANCE
    assert result.masking_suspected([{"verdict": "pass"}, {"verdict": "fail"}])
    assert not result.masking_suspected([{"verdict": "warn"}])


# --- security curve and convergence -----------------------------------------------------

def test_eps_grid_climbs_to_a_budget_that_covers_the_box():
    linf = curves.eps_grid(ThreatModel("Linf", 0.3), 784)
    assert linf == pytest.approx([0.075, 0.15, 0.3, 0.6, 1.0])
    l2 = curves.eps_grid(ThreatModel("L2", 2.0), 64)
    assert l2[-1] == pytest.approx(8.0)  # sqrt(64) * range 1
    assert 2.0 in l2 and l2 == sorted(set(l2))


def points(*accuracies: float) -> list[dict[str, float]]:
    return [{"eps": 0.1 * (i + 1), "robust_accuracy": a} for i, a in enumerate(accuracies)]


@pytest.mark.parametrize(("accuracies", "verdict"), [
    ((0.9, 0.6, 0.0), "pass"),
    ((0.9, 0.6, 0.02), "pass"),
    ((0.9, 0.6, 0.05), "warn"),
    ((0.9, 0.6, 0.2), "fail"),
    ((0.9, 0.6, 0.61, 0.0), "pass"),  # a rise of one sample in 100 is noise
    ((0.9, 0.6, 0.7, 0.0), "fail"),   # a real rise: the attack lost what it had found
])
def test_security_curve_verdicts(accuracies, verdict):
    got = curves.security_curve_check(points(*accuracies), n=100)
    assert got["verdict"] == verdict, got
    assert got["evidence"]["unbounded_accuracy"] == accuracies[-1]
    if verdict == "fail" and accuracies[-1] == 0.0:
        assert got["evidence"]["rises"][0]["eps_high"] == pytest.approx(0.3)


def test_plateau_share_of_straight_flat_and_saturating_curves():
    straight = [float(i) for i in range(41)]
    assert curves.plateau_share(straight) == pytest.approx(0.1)
    assert curves.plateau_share([0.5] * 41) == 0.0
    saturating = [1 - 0.8 ** i for i in range(41)]
    assert curves.plateau_share(saturating) < curves.PLATEAU_SHARE


def test_convergence_verdicts():
    flat = [1 - 0.8 ** i for i in range(41)]
    kw = {"base_label": "pgd-40", "strong_label": "pgd-80x2", "newly_broken": 0}
    assert curves.convergence_check(0.50, 0.50, 200, loss=flat, **kw)["verdict"] == "pass"
    assert curves.convergence_check(0.50, 0.495, 200, loss=flat, **kw)["verdict"] == "pass"
    assert curves.convergence_check(0.50, 0.48, 200, loss=flat, **kw)["verdict"] == "warn"
    weak = curves.convergence_check(0.50, 0.40, 200, loss=flat, **kw)
    assert weak["verdict"] == "fail" and "not converged" in weak["advice"]
    # two random starts differ on borderline samples: a stronger run a little *worse*
    # is noise, a lot worse means the numbers are (a randomised model)
    assert curves.convergence_check(0.50, 0.52, 200, loss=flat, **kw)["verdict"] == "pass"
    noisy = curves.convergence_check(0.40, 0.50, 200, loss=flat, **kw)
    assert noisy["verdict"] == "fail" and "EOT" in noisy["advice"]
    climbing = curves.convergence_check(0.5, 0.5, 200, loss=[float(i) for i in range(41)], **kw)
    assert climbing["verdict"] == "warn" and "--steps" in climbing["advice"]


# --- attacks compared -------------------------------------------------------------------

def test_single_step_check():
    ok = compare.single_step_check(0.40, 0.45, 200, pgd_label="pgd-40", fgsm_only=0)
    assert ok["verdict"] == "pass"
    bad = compare.single_step_check(0.60, 0.45, 200, pgd_label="pgd-40", fgsm_only=30)
    assert bad["verdict"] == "fail" and bad["evidence"]["excess"] == pytest.approx(0.15)


@pytest.mark.parametrize(("broken", "verdict"), [(0, "pass"), (1, "pass"), (3, "warn"),
                                                 (20, "fail")])
def test_a_blind_attack_must_not_beat_white_box(broken, verdict):
    got = compare.beaten_check("black-box", attack_label="square-1000", white_label="pgd",
                               checked=100, broken=broken, n=200)
    assert got["verdict"] == verdict
    assert got["evidence"]["share_of_checked"] == broken / 100


def test_nothing_left_to_beat_passes():
    got = compare.beaten_check("transfer", attack_label="t", white_label="pgd", checked=0,
                               broken=0, n=10)
    assert got["verdict"] == "pass" and "nothing" in got["advice"]


# --- the traced PGD ---------------------------------------------------------------------

def test_traced_pgd_curve_and_points(trained_mlp, right):
    x, y = right
    threat = ThreatModel("Linf", EPS)
    trace = traced_pgd(trained_mlp, x, y, threat, steps=10, generator=gen())
    assert len(trace.loss) == len(trace.robust) == 11
    assert all(b >= a for a, b in zip(trace.loss, trace.loss[1:], strict=False))
    assert all(b <= a for a, b in zip(trace.robust, trace.robust[1:], strict=False))
    assert bool(threat.contains(trace.x_adv, x).all())
    with torch.no_grad():
        fooled = trained_mlp(trace.x_adv).argmax(1) != y
    assert torch.equal(fooled[trace.success], torch.ones_like(fooled[trace.success]))
    assert trace.robust[-1] == pytest.approx(1 - trace.success.float().mean().item())
    assert 0 < trace.success.sum() < len(y)  # eps 0.1 breaks some digits, not all
    assert trace.passes.backward == 10 * len(y)


# --- gradients and outputs --------------------------------------------------------------

def test_randomness(trained_mlp, sixty):
    x, _ = sixty
    assert gradients.randomness(trained_mlp, x)["verdict"] == "pass"
    noisy = gradients.randomness(Noisy(trained_mlp).eval(), x)
    assert noisy["verdict"] == "fail" and "eot:" in noisy["advice"]
    assert noisy["evidence"]["max_logit_diff"] > noisy["evidence"]["tolerance"]


def test_gradient_health_tells_saturation_from_non_differentiability(trained_mlp, right):
    x, y = right
    assert gradients.gradient_health(trained_mlp, x, y)["verdict"] == "pass"
    quantized = gradients.gradient_health(Quantized(trained_mlp).eval(), x, y)
    assert quantized["verdict"] == "fail" and "bpda" in quantized["advice"]
    assert quantized["evidence"]["margin"]["zero"] == len(y)
    scaled = gradients.gradient_health(Scaled(trained_mlp).eval(), x, y)
    assert scaled["verdict"] == "fail" and "loss=margin" in scaled["advice"]
    assert scaled["evidence"]["margin"]["zero"] == 0


def test_finite_differences(trained_mlp, right):
    x, y = right
    threat = ThreatModel("Linf", EPS)
    honest = gradients.finite_differences(trained_mlp, x, y, threat, gen())
    assert honest["verdict"] == "pass"
    assert honest["evidence"]["median_relative_error"] < gradients.FD_WARN
    rounded = gradients.finite_differences(Quantized(trained_mlp).eval(), x, y, threat, gen())
    assert rounded["verdict"] == "fail" and "bpda" in rounded["advice"]
    flat = gradients.finite_differences(Constant().eval(), x, y, threat, gen())
    assert flat["verdict"] == "warn" and flat["evidence"]["flat_points"] == len(y)
    l2 = gradients.finite_differences(trained_mlp, x, y, ThreatModel("L2", 1.0), gen())
    assert l2["verdict"] == "pass"


# --- the binarization test --------------------------------------------------------------

def test_binarized_readouts_plant_an_adversarial_example(trained_mlp, right):
    x, _ = right
    threat = ThreatModel("Linf", EPS)
    weight, bias, valid, boundary = fit_readouts(trained_mlp, x, threat, gen())
    assert valid.sum() > len(x) // 2
    assert bool(threat.contains(boundary, x).all())
    binarized = Binarized(trained_mlp, weight, bias)
    with torch.no_grad():
        at_x, at_b = binarized(x).argmax(1), binarized(boundary).argmax(1)
    assert (at_x[valid] == 0).all() and (at_b[valid] == 1).all()
    with torch.no_grad():  # the readout is scaled so the boundary point scores exactly 1
        score = binarized(boundary)[:, 1]
    assert torch.allclose(score[valid], torch.ones_like(score[valid]), atol=1e-4)


def test_binarization_test_passes_honest_and_fails_zero_gradients(trained_mlp, right):
    x, _ = right
    threat = ThreatModel("Linf", EPS)
    honest = binarization_test(trained_mlp, x, threat, steps=20, step_size=None,
                               generator=gen())
    assert honest["verdict"] == "pass", honest["evidence"]
    rounded = binarization_test(Quantized(trained_mlp).eval(), x, threat, steps=20,
                                step_size=None, generator=gen())
    assert rounded["verdict"] == "fail", rounded["evidence"]
    assert rounded["evidence"]["valid_readouts"] >= 10


# --- the whole diagnosis ----------------------------------------------------------------

def test_honest_toy_model_passes_every_check(trained_mlp, sixty):
    lines: list[str] = []
    seen: list[str] = []
    got = diagnose(trained_mlp, sixty, ThreatModel("Linf", EPS), log=lines.append,
                   on_check=lambda c: seen.append(c["name"]), **FAST)
    assert [c["name"] for c in got.checks] == list(CHECKS) == seen
    assert {c["verdict"] for c in got.checks} == {"pass"}, [
        (c["name"], c["evidence"]) for c in got.checks if c["verdict"] != "pass"]
    assert not got.masking_suspected
    transfer = next(c for c in got.checks if c["name"] == "transfer")
    assert transfer["skipped"]  # no surrogate given
    assert any("security curve" in line for line in lines)
    plain = json.loads(json.dumps(got.to_dict()))
    assert plain["masking_suspected"] is False and plain["n"] == 60
    assert plain["curves"]["security"][-1]["robust_accuracy"] == 0.0


@pytest.mark.parametrize(("wrap", "must_fail"), [
    (Quantized, {"gradient-health", "finite-differences", "binarization-test", "black-box"}),
    (Noisy, {"randomness"}),
    (Scaled, {"gradient-health"}),
])
def test_each_masking_toy_fails_its_check(trained_mlp, sixty, wrap, must_fail):
    got = diagnose(wrap(trained_mlp).eval(), sixty, ThreatModel("Linf", EPS), **FAST)
    assert got.masking_suspected
    assert must_fail <= failed(got), [(c["name"], c["verdict"]) for c in got.checks]


def test_transfer_from_the_unmasked_network_breaks_its_masked_copy(trained_mlp, sixty):
    masked = Quantized(trained_mlp).eval()
    got = diagnose(masked, sixty, ThreatModel("Linf", EPS), surrogate=trained_mlp,
                   surrogate_name="mlp", **FAST)
    transfer = next(c for c in got.checks if c["name"] == "transfer")
    assert transfer["verdict"] == "fail" and transfer["evidence"]["surrogate"] == "mlp"


def test_same_seed_same_diagnosis_and_callers_random_state_untouched(trained_mlp, sixty):
    model = Noisy(trained_mlp).eval()
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    runs = [diagnose(model, sixty, ThreatModel("Linf", EPS), seed=7, **FAST) for _ in (0, 1)]
    assert torch.equal(before, torch.random.get_rng_state())
    strip = [[{k: v for k, v in c.items() if k != "seconds"} for c in r.checks] for r in runs]
    assert strip[0] == strip[1]


def test_bad_arguments_are_refused_with_what_to_do(trained_mlp, sixty):
    x, y = sixty
    with pytest.raises(ConfigError, match="eps must be > 0"):
        diagnose(trained_mlp, sixty, ThreatModel("Linf", 0.0))
    with pytest.raises(ConfigError, match="steps must be an integer"):
        diagnose(trained_mlp, sixty, ThreatModel("Linf", EPS), steps=0)
    with pytest.raises(ConfigError, match="covers the whole input box"):
        diagnose(trained_mlp, sixty, ThreatModel("L2", 9.0))  # sqrt(64) = 8
    with pytest.raises(InputError, match="bounds"):
        diagnose(trained_mlp, (x * 255, y), ThreatModel("Linf", EPS))
    with pytest.raises(InputError, match="none of the"):
        diagnose(trained_mlp, (x[:5], (trained_mlp(x[:5]).argmax(1) + 1) % 10),
                 ThreatModel("Linf", EPS))


class OutOfMemory(nn.Module):
    """``model``, but any batch of more than ``limit`` samples runs out of device memory."""

    def __init__(self, model: nn.Module, limit: int) -> None:
        super().__init__()
        self.model, self.limit = model, limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 4 GiB")
        return self.model(x)


def test_out_of_memory_stops_with_the_smaller_n_to_pass(trained_mlp, sixty):
    # diagnose has no batch back-off (its checks draw for all samples at once): it says
    # what to rerun with instead of showing torch's error
    with pytest.raises(ModelError, match=r"diagnosing 60 samples .*--n 30") as caught:
        diagnose(OutOfMemory(trained_mlp, 40).eval(), sixty, ThreatModel("Linf", EPS), **FAST)
    assert isinstance(caught.value.__cause__, torch.cuda.OutOfMemoryError)
    with pytest.raises(ValueError, match="not memory"):  # other errors pass unchanged
        diagnose(Broken().eval(), sixty, ThreatModel("Linf", EPS), **FAST)


class Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("a bug, not memory")
