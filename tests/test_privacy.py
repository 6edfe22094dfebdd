"""bastion.privacy: output defences (a contract over the registry), extraction,
membership inference and the ``bastion privacy`` commands, on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

from bastion.errors import ConfigError, InputError
from bastion.privacy import _fit
from bastion.privacy.cli import register
from bastion.privacy.defenses import DEFENSES, build_defense, is_label_only
from bastion.privacy.extraction import answers_to_targets, extract
from bastion.privacy.roc import auroc, tpr_at_fpr
from bastion.zoo.registry import build


def _victim(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build("mlp", hidden=(32,)).eval()


@pytest.mark.parametrize("name", list(DEFENSES))
def test_every_defense_returns_rows_on_the_simplex(name: str) -> None:
    torch.manual_seed(1)
    x = torch.rand(16, 1, 28, 28)
    victim = _victim()
    out = build_defense(name, victim)(x)
    assert out.shape == (16, 10)
    assert (out >= 0).all()
    assert torch.allclose(out.sum(1), torch.ones(16), atol=1e-5)
    if is_label_only(name):
        assert ((out == 0) | (out == 1)).all()
    if name in ("none", "top-k", "label-only"):
        assert torch.equal(out.argmax(1), victim(x).argmax(1))


def test_defenses_change_what_they_say() -> None:
    x, victim = torch.rand(16, 1, 28, 28), _victim()
    top2 = build_defense("top-k", victim, k=2)(x)
    assert ((top2 > 0).sum(1) <= 2).all()
    rounded = build_defense("round", victim, decimals=1)(x)
    assert torch.allclose(rounded * rounded.sum(1, keepdim=True),
                          torch.round(rounded * rounded.sum(1, keepdim=True), decimals=1),
                          atol=1e-5)
    plain = torch.softmax(victim(x), 1)
    assert not torch.allclose(build_defense("reverse-sigmoid", victim)(x), plain, atol=1e-3)


def test_bad_defense_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="available"):
        build_defense("nope", _victim())
    with pytest.raises(ConfigError, match="k must be"):
        build_defense("top-k", _victim(), k=0)
    with pytest.raises(ConfigError, match="bad options"):
        build_defense("round", _victim(), sigmaa=1.0)


def test_answers_to_targets() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    assert torch.equal(answers_to_targets(logits, True), torch.tensor([0, 1]))
    assert torch.allclose(answers_to_targets(logits, False), torch.softmax(logits, 1))
    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7]])
    assert torch.equal(answers_to_targets(probs, False), probs)


def test_extraction_copies_a_victim_better_than_its_majority_class(tmp_path: Path) -> None:
    victim = _victim()
    gen = torch.Generator().manual_seed(0)
    pool, test_x = torch.rand(300, 1, 28, 28, generator=gen), torch.rand(200, 1, 28, 28,
                                                                          generator=gen)
    test_y = victim(test_x).argmax(1)
    state = tmp_path / "x.state.json"
    res = extract(victim, pool, test_x, test_y, budgets=[300], arch="mlp", steps=80,
                  state=state)
    majority = float(torch.bincount(test_y).max()) / len(test_y)
    row = res.rows[0]
    assert row["fidelity"] > majority + 0.1
    assert row["fidelity_ci"][0] <= 100 * row["fidelity"] <= row["fidelity_ci"][1]


def test_extraction_resumes_without_retraining(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    victim, state = _victim(), tmp_path / "x.state.json"
    pool, test_x = torch.rand(40, 1, 28, 28), torch.rand(20, 1, 28, 28)
    first = extract(victim, pool, test_x, torch.zeros(20, dtype=torch.long), budgets=[20, 40],
                    arch="mlp", steps=5, state=state)

    def refuse(*args: object, **kwargs: object) -> nn.Module:
        raise AssertionError("a finished budget was trained again")

    monkeypatch.setattr("bastion.privacy.extraction.fit", refuse)
    again = extract(victim, pool, test_x, torch.zeros(20, dtype=torch.long), budgets=[20, 40],
                    arch="mlp", steps=5, state=state)
    assert again.rows == first.rows


def test_extraction_reports_what_a_defence_costs_in_calibration() -> None:
    """Label-only answers are one-hot: their calibration error is the error rate itself,
    while the plain probabilities' error is their own gap (computed here by hand)."""
    victim = _victim()
    gen = torch.Generator().manual_seed(2)
    pool, test_x = torch.rand(20, 1, 28, 28, generator=gen), torch.rand(60, 1, 28, 28,
                                                                         generator=gen)
    test_y = torch.randint(0, 10, (60,), generator=gen)
    runs = {name: extract(build_defense(name, victim), pool, test_x, test_y, budgets=[20],
                          arch="mlp", steps=2, transfer=0)
            for name in ("none", "label-only")}
    error = 1.0 - runs["none"].victim_accuracy
    assert runs["label-only"].victim_accuracy == runs["none"].victim_accuracy
    assert runs["label-only"].victim_ece == pytest.approx(error, abs=1e-6)
    conf = torch.softmax(victim(test_x), 1).max(1).values
    assert runs["none"].victim_ece < runs["label-only"].victim_ece
    assert runs["none"].victim_ece >= abs(float(conf.mean()) - (1.0 - error)) - 1e-6
    assert runs["none"].to_dict()["victim_ece"] == runs["none"].victim_ece


def test_extraction_refuses_bad_budgets() -> None:
    pool, test_x, test_y = torch.rand(10, 1, 28, 28), torch.rand(5, 1, 28, 28), torch.zeros(5)
    for budgets in ([0], [11], []):
        with pytest.raises(InputError, match="budget"):
            extract(_victim(), pool, test_x, test_y.long(), budgets=budgets)


def test_roc_summaries_by_hand() -> None:
    members = torch.tensor([True] * 4 + [False] * 4)
    separated = torch.tensor([5.0, 6, 7, 8, 1, 2, 3, 4])
    assert auroc(separated, members)["auroc"] == 1.0
    assert tpr_at_fpr(separated, members, 0.001)["tpr"] == 1.0
    # one member below every non-member: 3 of 4 found at FPR 0
    mixed = torch.tensor([0.0, 6, 7, 8, 1, 2, 3, 4])
    assert auroc(mixed, members)["auroc"] == pytest.approx(12 / 16)
    at = tpr_at_fpr(mixed, members, 0.01)
    assert (at["tpr"], at["fpr"]) == (0.75, 0.0)
    # allowing 1 of 4 non-members through (FPR 25%) lowers the threshold to the 2nd largest
    assert tpr_at_fpr(torch.tensor([3.5, 0, 0, 0, 1, 2, 3, 4]), members, 0.25)["tpr"] == 0.25


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_extract_writes_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "e.json"
    res = CliRunner().invoke(_app(), [
        "privacy", "extract", "--pool", "mnist:val", "--n-test", "50", "--budgets", "60",
        "--defense", "label-only", "--arch", "mlp", "--steps", "20", "--json", str(out),
        "--no-progress"])
    assert res.exit_code == 0, res.output
    payload = json.loads(out.read_text())
    assert payload["defense"] == "label-only" and payload["rows"][0]["queries"] == 60


@pytest.mark.parametrize("args", [
    ["privacy", "extract", "--budgets", "0"],
    ["privacy", "extract", "--budgets", "x"],
    ["privacy", "extract", "--defense", "nope", "--budgets", "10"],
    ["privacy", "audit", "--shadows", "1", "--pool", "40"],
    ["privacy", "dp-audit", "--noise", "x"],
])
def test_cli_bad_input_exits_2(args: list[str]) -> None:
    res = CliRunner().invoke(_app(), [*args, "--no-progress"])
    assert res.exit_code == 2, res.output
    assert "error" in res.output
    if "--budgets" in args and "nope" not in args:
        assert "--budgets" in res.output


def test_fit_accepts_soft_and_hard_targets() -> None:
    x = torch.rand(8, 1, 28, 28)
    hard = _fit.fit(x, torch.arange(8) % 10, arch="mlp", steps=2)
    soft = _fit.fit(x, torch.full((8, 10), 0.1), arch="mlp", steps=2)
    assert _fit.predict(hard, x).shape == _fit.predict(soft, x).shape == (8, 10)
