"""Extraction attacks: a contract over every registered one, then what each promises
(Knockoff's pool order and uncertainty picks, Jacobian's synthetic steps), and
:func:`steal`'s rows with the transfer of adversarial examples, on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

from bastion.errors import ConfigError, InputError
from bastion.privacy._fit import fit, jitter
from bastion.privacy.cli import register
from bastion.privacy.extraction import answers_to_targets, steal
from bastion.privacy.stealing import REGISTRY, Jacobian, Knockoff, make_extraction
from bastion.zoo.registry import build


def _victim() -> nn.Module:
    torch.manual_seed(0)
    return build("mlp", hidden=(32,)).eval()


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) ** 3


def _train(x: torch.Tensor, answers: torch.Tensor) -> nn.Module:
    return fit(x, answers_to_targets(answers, True), arch="mlp", steps=5)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_contract_exact_budget_answers_of_the_oracle_and_determinism(name: str) -> None:
    attack, victim = make_extraction(name), _victim()
    images = _images(60)
    runs = [attack.collect(victim, images, 37, train=_train,
                           generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    got = runs[0]
    assert got.x.shape == (37, 1, 28, 28) and got.answers.shape == (37, 10)
    assert float(got.x.min()) >= 0 and float(got.x.max()) <= 1
    with torch.no_grad():
        assert torch.allclose(got.answers, victim(got.x), atol=1e-5)
    assert torch.equal(got.x, runs[1].x)
    rebuilt = type(attack)(**attack.get_params())
    assert rebuilt.get_params() == attack.get_params() and name in repr(attack).lower()
    assert attack.images in ("pool", "seed set")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_contract_bad_input_is_refused_when_collecting(name: str) -> None:
    attack = make_extraction(name)
    with pytest.raises(InputError, match="budget"):
        attack.collect(_victim(), _images(10), 0, train=_train)
    with pytest.raises(InputError, match=r"\(N, C, H, W\)"):
        attack.collect(_victim(), torch.rand(10, 784), 5, train=_train)


def test_unknown_attacks_and_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="registered: jacobian, knockoff"):
        make_extraction("copycat")
    with pytest.raises(ConfigError, match="bad settings"):
        make_extraction("knockoff", strategie="random")
    with pytest.raises(ConfigError, match="strategy"):
        Knockoff(strategy="greedy").collect(_victim(), _images(10), 5, train=_train)
    with pytest.raises(ConfigError, match="step"):
        Jacobian(step=0.0).collect(_victim(), _images(10), 5, train=_train)
    with pytest.raises(InputError, match="exceeds the pool"):
        Knockoff().collect(_victim(), _images(10), 11, train=_train)


def test_knockoff_random_takes_the_pool_in_order() -> None:
    pool = _images(30)
    got = Knockoff().collect(_victim(), pool, 20, train=_train)
    assert torch.equal(got.x, pool[:20])


def test_knockoff_adaptive_picks_the_copys_least_sure_images() -> None:
    pool = _images(200)
    # a copy that is sure about every image except the last 50 of the pool
    sure = torch.zeros(200, 10)
    sure[:150, 0] = 10.0

    class Lookup(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            hits = (x.flatten(1)[:, None, :] == pool.flatten(1)[None]).all(2)
            return sure[hits.float().argmax(1)]

    got = Knockoff(strategy="adaptive", rounds=2).collect(
        _victim(), pool, 80, train=lambda x, a: Lookup())
    assert torch.equal(got.x[:40], pool[:40])  # the first round: the pool's order
    picked = (got.x[40:].flatten(1)[:, None, :] == pool.flatten(1)[None]).all(2).float()
    assert set(picked.argmax(1).tolist()) <= set(range(150, 200))


def test_jacobian_grows_the_seed_set_by_signed_steps() -> None:
    seeds = _images(10)
    attack = Jacobian(seed_size=10, step=0.1, flip_every=1)
    got = attack.collect(_victim(), seeds, 35, train=_train,
                         generator=torch.Generator().manual_seed(0))
    assert torch.equal(got.x[:10], seeds)
    # round 1 (+step) moves every seed; each pixel by exactly the step unless clipped
    moved = got.x[10:20] - seeds
    inside = (seeds > 0.1) & (seeds < 0.9)
    assert torch.allclose(moved[inside].abs(), torch.full_like(moved[inside], 0.1), atol=1e-6)
    assert len(got.x) == 35  # the last round (20 -> 35) took a random 15 of 20


def test_jitter_keeps_shape_and_range() -> None:
    x = _images(6)
    out = jitter(x, 2.0, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert not torch.equal(out, x)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_steal_reports_fidelity_accuracy_and_transfer(name: str) -> None:
    victim = _victim()
    gen = torch.Generator().manual_seed(1)
    test_x, pool = torch.rand(60, 1, 28, 28, generator=gen), torch.rand(200, 1, 28, 28,
                                                                        generator=gen)
    test_y = victim(test_x).argmax(1)
    res = steal(make_extraction(name, **({"seed_size": 40} if name == "jacobian" else {})),
                victim, pool, test_x, test_y, budgets=[80, 200], label_only=False,
                arch="mlp", steps=80, augment=0.5, transfer=20)
    assert [r["queries"] for r in res.rows] == [80, 200]
    for row in res.rows:
        for key in ("fidelity", "accuracy", "transfer"):
            assert 0 <= row[key] <= 1
            low, high = row[f"{key}_ci"]
            assert low <= 100 * row[key] <= high
        assert row["transfer_n"] == 20  # the victim is right on all (its own labels)
    if name == "knockoff":  # natural-looking pool images: the copy must beat a constant
        majority = float(torch.bincount(test_y).max()) / len(test_y)
        assert res.rows[-1]["fidelity"] > majority


def test_cli_extract_with_the_jacobian_attack(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    out = tmp_path / "j.json"
    res = CliRunner().invoke(app, [
        "privacy", "extract", "--attack", "jacobian", "--seed-size", "10", "--budgets", "25",
        "--n-test", "30", "--arch", "mlp", "--steps", "5", "--transfer", "5",
        "--defense", "label-only", "--json", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    payload = json.loads(out.read_text())
    assert payload["attack"] == "jacobian" and payload["label_only"] is True
    assert payload["attack_params"]["seed_size"] == 10
    assert payload["rows"][0]["queries"] == 25 and payload["rows"][0]["transfer_n"] <= 5
    bad = CliRunner().invoke(app, ["privacy", "extract", "--attack", "copycat",
                                   "--no-progress"])
    assert bad.exit_code == 2 and "registered: jacobian, knockoff" in bad.output


def test_cli_extract_over_http_needs_a_key() -> None:
    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(app, ["privacy", "extract", "--url", "http://127.0.0.1:9",
                                   "--budgets", "10", "--no-progress"])
    assert res.exit_code == 2 and "--api-key" in res.output
