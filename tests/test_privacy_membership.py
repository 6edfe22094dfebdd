"""Membership inference (a contract over every registered attack), shadow training and
its resume folder, the one-run DP audit, inversion and the theft and privacy card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

from bastion.errors import ConfigError, InputError, StateError
from bastion.privacy import dp_audit
from bastion.privacy._train import Recipe, train
from bastion.privacy.cli import register
from bastion.privacy.inversion import class_means, invert_classes
from bastion.privacy.membership import membership_audit, random_halves
from bastion.privacy.mia import ATTACKS, Observations, get_attack
from bastion.privacy.roc import auroc, roc_curve
from bastion.report import validate_card, write_privacy_card
from bastion.report.privacy import theft_privacy


def _synthetic(n: int = 200, shadows: int = 8, k: int = 10, seed: int = 0) -> tuple[
        Observations, torch.Tensor]:
    """Logits where training on a sample raises its true-class logit by 3 (plus noise),
    on top of a per-sample difficulty every model shares: what LiRA is built for."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % k
    masks = random_halves(n, shadows + 1, seed)
    hard = torch.randn(n, generator=gen) * 2

    def logits(mask: torch.Tensor, count: int) -> torch.Tensor:
        out = torch.randn(count, k, generator=gen)
        boost = hard[:count] + 3.0 * mask[:count] + 0.5 * torch.randn(count, generator=gen)
        out[torch.arange(count), labels[:count]] += boost
        return out

    models = torch.stack([logits(m, n) for m in masks])
    pop_mask = torch.zeros(n, dtype=torch.bool)
    pop = torch.stack([logits(pop_mask, 50) for _ in masks])
    obs = Observations(target=models[0], labels=labels, shadows=models[1:],
                       shadow_in=masks[1:], population=pop[0], pop_labels=labels[:50],
                       pop_shadows=pop[1:])
    return obs, masks[0]


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_scores_each_sample_and_finds_members(name: str) -> None:
    obs, members = _synthetic()
    attack = get_attack(name)
    scores = attack.score(obs)
    assert scores.shape == (200,) and torch.isfinite(scores).all()
    assert auroc(scores, members)["auroc"] > 0.6
    assert attack.name == name and attack.paper
    assert isinstance(attack.get_params(), dict)
    assert type(attack)(**attack.get_params()).get_params() == attack.get_params()


@pytest.mark.parametrize("name", [n for n, c in ATTACKS.items() if c.needs_shadows])
def test_shadow_attacks_refuse_missing_shadows(name: str) -> None:
    obs, _ = _synthetic()
    bare = Observations(target=obs.target, labels=obs.labels)
    with pytest.raises(InputError, match="shadow"):
        get_attack(name).score(bare)


def test_lira_uses_per_sample_difficulty_better_than_the_loss() -> None:
    obs, members = _synthetic(n=400, shadows=16)
    loss = auroc(get_attack("loss-threshold").score(obs), members)["auroc"]
    for name in ("lira-offline", "lira-online"):
        for per_example in (False, True):
            scores = get_attack(name, per_example_variance=per_example).score(obs)
            assert auroc(scores, members)["auroc"] > loss + 0.1


def test_unknown_attack_lists_the_names() -> None:
    with pytest.raises(ConfigError, match="lira-online"):
        get_attack("nope")


def test_roc_curve_is_monotone_and_ends_at_one() -> None:
    obs, members = _synthetic()
    roc = roc_curve(get_attack("lira-online").score(obs), members)
    assert roc["fpr"][-1] == pytest.approx(1.0) and roc["tpr"][-1] == 1.0
    assert all(a <= b for a, b in zip(roc["tpr"], roc["tpr"][1:], strict=False))


def _pool(n: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=gen), torch.arange(n) % 10


def test_membership_audit_refuses_one_shadow() -> None:
    x, y = _pool()
    with pytest.raises(ConfigError, match="2 shadow"):
        membership_audit(x, y, shadows=1)


@pytest.mark.slow
def test_membership_audit_resumes_from_its_folder(tmp_path: Path) -> None:
    x, y = _pool()
    recipe = Recipe(epochs=2, batch=30)
    lines: list[str] = []
    first = membership_audit(x, y, shadows=3, recipe=recipe, population=_pool(20),
                             targets=2, workers=1, state=tmp_path, log=lines.append)
    assert len(list(tmp_path.glob("model-*.pt"))) == 4
    lines.clear()
    again = membership_audit(x, y, shadows=3, recipe=recipe, population=_pool(20),
                             targets=2, workers=1, state=tmp_path, log=lines.append)
    assert "4/4 models found" in lines[0] and again.attacks == first.attacks
    assert set(first.attacks) == set(ATTACKS)
    low = first.attacks["loss-threshold"]["tpr_at_fpr"][0]
    assert low["non_members"] == 60  # two games of 30 non-members each
    with pytest.raises(StateError, match="another run"):
        membership_audit(x, y, shadows=3, recipe=Recipe(epochs=4, batch=16), workers=1,
                         state=tmp_path)


def test_recipes_train_and_dp_accounts_epsilon() -> None:
    x, y = _pool(40)
    for recipe in (Recipe(method="pgd-at", epochs=1, batch=20, pgd_steps=2),
                   Recipe(method="dp", epochs=1, batch=20, noise_multiplier=2.0)):
        model, info = train(x, y, recipe, seed=0)
        assert model(x).shape == (40, 10)
        assert (info["epsilon"] is None) == (recipe.method != "dp")
    assert info["epsilon"] is not None and 0 < info["epsilon"] < 10
    with pytest.raises(ConfigError, match="unknown training method"):
        Recipe(method="nope")


def test_epsilon_lower_bound_by_hand() -> None:
    # half right is what a coin gets: no evidence against eps = 0
    assert dp_audit.epsilon_lower_bound(1000, 200, 100, delta=0) == 0.0
    perfect = dp_audit.epsilon_lower_bound(1000, 200, 200, delta=0)
    # all r right at eps: P = q^r < 0.05  <=>  eps > log(q / (1 - q)) with q = 0.05^(1/r)
    q = 0.05 ** (1 / 200)
    assert perfect == pytest.approx(float(torch.tensor(q / (1 - q)).log()), rel=1e-3)
    # delta only weakens the bound
    assert dp_audit.epsilon_lower_bound(1000, 200, 200, delta=1e-3) < perfect
    # a larger eps makes many right guesses likelier: the p-value rises with eps
    assert dp_audit.p_value(1000, 200, 150, 0.5, 1e-5) > dp_audit.p_value(1000, 200, 150,
                                                                          0.2, 1e-5)


def test_audit_refuses_a_bound_above_the_accounted_epsilon(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A model trained without noise but reported as eps = 0.01 must be caught."""
    def leaky(x: torch.Tensor, y: torch.Tensor, recipe: Recipe, *, seed: int,
              device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, float]]:
        model, _ = train(x, y, Recipe(epochs=60, batch=32), seed=seed, device=device)
        return model, {"epsilon": 0.01}

    monkeypatch.setattr(dp_audit, "train", leaky)
    x, y = _pool(200)
    with pytest.raises(dp_audit.AuditViolation, match="exceeds the accounted"):
        dp_audit.one_run_audit(x, y, canaries=100, recipe=Recipe(method="dp"), seed=0)


@pytest.mark.slow
def test_one_run_audit_of_real_dp_sgd_stays_below_the_accounting() -> None:
    x, y = _pool(300)
    res = dp_audit.one_run_audit(x, y, canaries=100, recipe=Recipe(
        method="dp", epochs=2, batch=50, noise_multiplier=1.0), seed=0)
    assert 0 <= res["audited_epsilon"] <= res["accounted_epsilon"]
    assert res["guesses"] == 20


def test_inversion_recovers_the_class_a_linear_model_encodes() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(100, 1, 8, 8, generator=gen) * 0.2
    y = torch.arange(100) % 4
    for k in range(4):  # each class lights up its own quadrant
        x[y == k, 0, 4 * (k // 2):4 * (k // 2) + 4, 4 * (k % 2):4 * (k % 2) + 4] += 0.7
    means = class_means(x, y, num_classes=4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    with torch.no_grad():
        model[1].weight.copy_((means - means.mean(0)).flatten(1) * 5)
        model[1].bias.zero_()
    res = invert_classes(model, means, steps=50)
    assert res["nearest_mean"] == 4 and res["mean_similarity"] > 0.5
    assert res["images"].shape == (4, 1, 8, 8)
    assert res["images"].min() >= 0 and res["images"].max() <= 1


def _membership_json() -> dict:
    obs, members = _synthetic()
    from bastion.privacy.membership import summarize
    return {"recipe": {"method": "standard"}, "pool_size": 200, "shadows": 8,
            "epsilon": None, "attacks": {"lira-online": summarize(
                get_attack("lira-online").score(obs), members)}}


def test_privacy_card_is_valid_and_refuses_an_audit_above_the_accounting(
        tmp_path: Path) -> None:
    audit = {"rows": [{"noise_multiplier": 1.0, "accounted_epsilon": 2.0,
                       "audited_epsilon": 0.3, "correct": 30, "guesses": 40}]}
    section = theft_privacy(membership=[_membership_json()], dp_audit=[audit])
    json_path, html_path = write_privacy_card(tmp_path, section, run={
        "run_id": "r", "seed": 0, "versions": {}, "command": "bastion privacy card"})
    card = json.loads(json_path.read_text())
    validate_card(card)
    html = html_path.read_text()
    assert "Theft and privacy" in html and "data:image/png;base64" in html
    audit["rows"][0]["audited_epsilon"] = 2.5
    with pytest.raises(InputError, match="exceeds the accounted"):
        theft_privacy(dp_audit=[audit])
    with pytest.raises(InputError, match="holds none"):
        theft_privacy()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_card_reads_the_extraction_and_membership_json(tmp_path: Path) -> None:
    extract = {"none": {"rows": [{"queries": 50, "fidelity": 0.9, "fidelity_ci": [80, 95],
                                  "accuracy": 0.8, "accuracy_ci": [70, 88]}],
                        "defended_accuracy": 0.98}}
    (tmp_path / "e.json").write_text(json.dumps(extract))
    (tmp_path / "m.json").write_text(json.dumps(_membership_json()))
    res = CliRunner().invoke(_app(), [
        "privacy", "card", "--out", str(tmp_path / "card"), "--extraction",
        str(tmp_path / "e.json"), "--membership", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    card = json.loads((tmp_path / "card" / "card.json").read_text())
    assert card["theft_privacy"]["extraction"][0]["defense"] == "none"
    assert "lira-online" in (tmp_path / "card" / "card.html").read_text()


@pytest.mark.slow
def test_cli_audit_writes_json_plot_and_card(tmp_path: Path) -> None:
    res = CliRunner().invoke(_app(), [
        "privacy", "audit", "--data", "mnist", "--pool", "60", "--population", "20",
        "--shadows", "2", "--epochs", "2", "--workers", "1", "--json",
        str(tmp_path / "mi.json"), "--plot", str(tmp_path / "roc.png"), "--card",
        str(tmp_path / "card"), "--save-target", str(tmp_path / "t.pt"), "--no-progress"])
    assert res.exit_code == 0, res.output
    payload = json.loads((tmp_path / "mi.json").read_text())
    assert set(payload["attacks"]) == set(ATTACKS)
    assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "card" / "card.html").exists() and (tmp_path / "t.pt").exists()


@pytest.mark.slow
def test_shadow_pool_gives_the_same_models_as_one_process() -> None:
    from bastion.privacy.shadows import train_models

    x, y = _pool(40)
    masks = random_halves(40, 3, seed=1)
    recipe = Recipe(epochs=1, batch=20)
    alone = train_models(x, y, masks, recipe, seed=2, workers=1)
    pooled = train_models(x, y, masks, recipe, seed=2, workers=2)
    assert torch.equal(alone.logits, pooled.logits)
