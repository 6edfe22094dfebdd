"""Sanity flags fire on purpose-built broken models and stay quiet on honest ones."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from bastion import FGSM, PGD, ThreatModel, evaluate
from bastion.attacks.base import Attack, AttackResult, Passes, is_success
from bastion.errors import ModelError
from bastion.evaluation.flags import black_box_only, monotone_flags
from bastion.evaluation.probe import probe_model
from bastion.report import CardEntry, build_card
from bastion.report.html import render_html

LINF = ThreatModel("Linf", 0.3)


class Wrap(nn.Module):
    """``fn(inner, x)`` as a model."""

    def __init__(self, inner: nn.Module, fn: Any) -> None:
        super().__init__()
        self.inner, self.fn = inner, fn
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.inner, x)


def quantised(model: nn.Module) -> nn.Module:
    """Rounds inputs to 4 levels first: the input gradient is zero everywhere."""
    return Wrap(model, lambda m, x: m((x * 3).round() / 3))


class CornerSearch(Attack):
    """A score-free black-box attack: tries random corners of the Linf ball."""

    name = "corners"
    uses_gradients = False

    def __init__(self, *, tries: int = 20) -> None:
        self.tries = tries

    def _run(self, model, x, y, threat, target, generator):
        best, success, passes = x.clone(), torch.zeros_like(y, dtype=torch.bool), Passes()
        for _ in range(self.tries):
            signs = torch.randint(0, 2, x.shape, generator=generator, device=x.device) * 2 - 1
            cand = threat.project(x + threat.eps * signs, x)
            with torch.no_grad():
                fooled = is_success(model(cand), y, None) & ~success
            passes.forward += x.shape[0]
            best[fooled], success = cand[fooled], success | fooled
        return AttackResult(x_adv=best, success=success, passes=passes)


class FgsmThenCorners(Attack):
    """A two-stage cascade reporting its stages, as AutoAttack-style ensembles do."""

    name = "cascade"

    def __init__(self) -> None:
        pass

    def _run(self, model, x, y, threat, target, generator):
        first = FGSM().run(model, x, y, threat, generator=generator)
        rest = (~first.success).nonzero().squeeze(1)
        second = CornerSearch().run(model, x[rest], y[rest], threat, generator=generator)
        x_adv, success = first.x_adv.clone(), first.success.clone()
        x_adv[rest], success[rest] = second.x_adv, second.success
        stages = {
            "fgsm": {"broken": int(first.success.sum()), "uses_gradients": True,
                     "passes": first.passes.to_dict()},
            "corners": {"broken": int(second.success.sum()), "uses_gradients": False,
                        "passes": second.passes.to_dict()},
        }
        return AttackResult(x_adv=x_adv, success=success, passes=first.passes, stages=stages)


class OnlySmallEps(Attack):
    """PGD below eps 0.1, nothing above: robust accuracy rises with eps."""

    name = "small-eps-only"

    def __init__(self) -> None:
        pass

    def _run(self, model, x, y, threat, target, generator):
        if threat.eps <= 0.1:
            return PGD(steps=10).run(model, x, y, threat, generator=generator)
        return AttackResult(x_adv=x.clone(), success=torch.zeros_like(y, dtype=torch.bool))


def ids(result: Any) -> dict[str, str]:
    return {f["id"]: f["severity"] for f in result.flags}


@pytest.fixture(scope="module")
def digits(digits_test: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = digits_test
    return x[:64], y[:64]


def test_honest_trained_model_raises_no_flag(trained_mlp, digits) -> None:
    res = evaluate(trained_mlp, digits, LINF, [FGSM(), PGD(steps=5), CornerSearch()],
                   eps_sweep=[0.05, 0.1], batch_size=32)
    assert res.flags == []
    assert res.probe["n"] == 64 and res.probe["zero_grad"] == 0
    assert res.to_dict()["flags"] == []


def test_log_softmax_output_is_flagged(trained_mlp, digits) -> None:
    model = Wrap(trained_mlp, lambda m, x: m(x).log_softmax(1))
    res = evaluate(model, digits, LINF, [FGSM()])
    assert ids(res) == {"log-probabilities": "warn"}
    flag = res.flags[0]
    assert flag["evidence"]["rows_with_logsumexp_0"] == 64 and "logits" in flag["advice"]


def test_saturated_logits_are_flagged(trained_mlp, digits) -> None:
    res = evaluate(Wrap(trained_mlp, lambda m, x: 1000 * m(x)), digits, LINF, [FGSM()])
    assert "saturated-logits" in ids(res)
    assert res.probe["ce_zero"] >= 0.5 * res.probe["correct"]


def test_randomised_model_is_flagged_and_probe_is_seeded(trained_mlp, digits) -> None:
    noisy = Wrap(trained_mlp, lambda m, x: m(x) + 3 * torch.randn(x.shape[0], 10))
    state = torch.random.get_rng_state()
    a = probe_model(noisy, *digits, seed=0)
    assert torch.equal(state, torch.random.get_rng_state())  # caller's RNG untouched
    assert a == probe_model(noisy, *digits, seed=0)
    assert a["pred_flips"] > 0 and a["passes"] == {"forward": 128, "backward": 64}
    res = evaluate(noisy, digits, LINF, [FGSM()])
    assert ids(res)["randomness"] == "fail"
    assert "EOT" in res.flags[0]["advice"]


@pytest.mark.parametrize("how", ["round", "detach"])
def test_zero_gradients_are_flagged(trained_mlp, digits, how: str) -> None:
    model = quantised(trained_mlp) if how == "round" else \
        Wrap(trained_mlp, lambda m, x: m(x.detach()))
    if how == "detach":  # gradient attacks cannot even run: a clear error up front
        with pytest.raises(ModelError, match=r"no input gradient.*black-box"):
            evaluate(model, digits, LINF, [FGSM(), CornerSearch()])
    res = evaluate(model, digits, LINF, [FGSM()] if how == "round" else [CornerSearch()])
    assert ids(res)["zero-gradients"] == "fail"
    flag = next(f for f in res.flags if f["id"] == "zero-gradients")
    assert flag["evidence"]["zero_gradient"] == res.probe["correct"]
    assert bool(flag["evidence"]["why"]) == (how == "detach")
    assert "square" in flag["advice"] and "BPDA" in flag["advice"]


def test_black_box_beating_white_box_is_flagged(trained_mlp, digits) -> None:
    res = evaluate(quantised(trained_mlp), digits, LINF, [FGSM(), CornerSearch()],
                   batch_size=32)
    # FGSM gets no gradient on the rounded model; random corners still break points.
    assert res.per_attack["corners"] < res.per_attack["fgsm"]
    flag = next(f for f in res.flags if f["id"] == "black-box-beats-white-box")
    broken_only_by_corners = round((res.per_attack["fgsm"] - res.robust_accuracy) * res.n)
    assert flag["evidence"]["samples_by_eps"] == {"0.3": broken_only_by_corners}


def test_cascade_stages_are_summed_and_a_late_black_box_stage_is_flagged(
    trained_mlp, digits
) -> None:
    res = evaluate(quantised(trained_mlp), digits, LINF, [FgsmThenCorners()], batch_size=16)
    stages = res.stages["cascade"]
    assert list(stages) == ["fgsm", "corners"]  # run order kept
    clean_right = round(res.clean_accuracy * res.n)
    broken = clean_right - round(res.per_attack["cascade"] * res.n)
    assert stages["fgsm"]["broken"] + stages["corners"]["broken"] == broken > 0
    assert stages["fgsm"]["uses_gradients"] and not stages["corners"]["uses_gradients"]
    flag = next(f for f in res.flags if f["id"] == "black-box-stage-after-white-box")
    assert flag["evidence"]["broken_by_stage_and_eps"] == {
        "cascade/corners": {"0.3": stages["corners"]["broken"]}}
    card = build_card([CardEntry(
        model={"name": "q", "kind": "file", "description": "", "digest": "0"},
        data={"name": "digits", "split": "test", "n": res.n, "source": "sklearn"},
        evaluation=res.to_dict())], run={"run_id": "r", "seed": 0, "versions": {},
                                         "command": "x"})
    page = render_html(card)
    assert "Cascade stages" in page and "black-box" in page and "FAIL: Input gradients" in page


def test_sweep_rising_with_eps_is_flagged(trained_mlp, digits) -> None:
    res = evaluate(trained_mlp, digits, LINF, [OnlySmallEps()], eps_sweep=[0.1])
    low, high = (p["robust_accuracy"] for p in res.sweep)
    assert high > low
    flag = next(f for f in res.flags if f["id"] == "non-monotone-sweep")
    assert {"curve": "worst case", "eps_low": 0.1, "accuracy_low": low, "eps_high": 0.3,
            "accuracy_high": high} in flag["evidence"]["rises"]


@given(st.lists(st.floats(0, 1), min_size=1, max_size=6), st.integers(10, 2000))
def test_monotone_flag_iff_a_rise_beyond_tolerance(values: list[float], n: int) -> None:
    sweep = [{"eps": 0.1 * i, "robust_accuracy": v, "per_attack": {"a": v}}
             for i, v in enumerate(values)]
    tol = max(0.005, 1.5 / n)
    rise = any(values[j] - min(values[:j]) > tol for j in range(1, len(values)))
    assert bool(monotone_flags(sweep, n)) == rise


@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans()), max_size=30))
def test_black_box_only_counts_points_no_gradient_attack_broke(rows) -> None:
    robust = {"w1": [r[0] for r in rows], "w2": [r[1] for r in rows], "b": [r[2] for r in rows]}
    kinds = {"w1": True, "w2": True, "b": False}
    assert black_box_only(robust, kinds) == sum(w1 and w2 and not b for w1, w2, b in rows)
    assert black_box_only(robust, {"w1": True, "w2": True}) is None


@pytest.mark.slow
def test_bundled_standard_mnist_model_raises_no_flag() -> None:
    from bastion import data, zoo

    test = data.load("mnist", "test", 48)
    res = evaluate(zoo.load("mnist-smallcnn-std"), test, LINF, [FGSM(), PGD(steps=5)],
                   eps_sweep=[0.1], batch_size=48)
    assert res.flags == []
    assert res.probe["correct"] >= 46
