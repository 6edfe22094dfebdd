"""``bastion diagnose``: the JSON contract, exit codes, interruption and the card.

Models come from a Python file (``--model FILE.py:factory``) that trains a small MLP on
scikit-learn's digits in a fraction of a second, so these tests need no MNIST model.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion.cli import app
from bastion.diagnostics import CHECKS
from bastion.diagnostics import cli as diagnose_cli
from bastion.errors import InputError
from bastion.report import validate_card
from bastion.report.html import render_html

MODEL_FILE = '''
import torch
from torch import nn
from bastion import data


def make_model():
    """An MLP trained on the digits train split (about 90% test accuracy)."""
    train = data.load("digits", "train")
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
        opt = torch.optim.Adam(model.parameters(), lr=3e-2)
        for _ in range(60):
            opt.zero_grad()
            nn.functional.cross_entropy(model(train.x), train.y).backward()
            opt.step()
    return model.eval()


class Quantized(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 255) / 255)


def make_quantized():
    """The same MLP behind input rounding: zero input gradients."""
    return Quantized(make_model()).eval()
'''

runner = CliRunner()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "toy.py"
    path.write_text(MODEL_FILE)
    return path


def run(model: str, *extra: str):
    args = ["diagnose", "--model", model, "--data", "digits", "--n", "60", "--norm", "Linf",
            "--eps", "0.1", "--steps", "20", "--square-queries", "300",
            "--black-box-points", "30", *extra]
    return runner.invoke(app, args, catch_exceptions=False)


def test_honest_model_writes_the_json_contract_and_exits_0(model_file, tmp_path):
    out = tmp_path / "d.json"
    res = run(f"{model_file}:make_model", "--json", str(out))
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())
    assert got["masking_suspected"] is False and got["complete"] is True
    assert [c["name"] for c in got["checks"]] == list(CHECKS)
    for c in got["checks"]:
        assert set(c) >= {"name", "verdict", "evidence", "advice"}
        assert c["verdict"] in ("pass", "warn", "fail") and isinstance(c["evidence"], dict)
    assert got["model"]["kind"] == "file" and got["data"]["n"] == 60
    assert got["threat"] == {"norm": "Linf", "eps": 0.1, "bounds": [0.0, 1.0]}
    assert got["params"]["steps"] == 20 and got["command"].startswith("bastion ")
    assert "[4] security-curve: pass" in res.output  # progress lines (stderr)


def test_masking_exits_with_its_own_status(model_file, tmp_path):
    out = tmp_path / "d.json"
    res = run(f"{model_file}:make_quantized", "--json", str(out), "--no-progress")
    assert res.exit_code == diagnose_cli.MASKING_EXIT == 3, res.output
    got = json.loads(out.read_text())
    assert got["masking_suspected"] is True
    failed = {c["name"] for c in got["checks"] if c["verdict"] == "fail"}
    assert {"gradient-health", "finite-differences"} <= failed
    assert "masking suspected" in res.output


def test_bad_options_exit_2_and_say_why(model_file):
    res = run(f"{model_file}:make_model", "--eps", "0")
    assert res.exit_code == diagnose_cli.ERROR_EXIT
    assert "eps must be > 0" in res.output
    res = run("no-such-model")
    assert res.exit_code == diagnose_cli.ERROR_EXIT and "unknown model" in res.output


def test_interrupt_keeps_the_finished_checks(model_file, tmp_path, monkeypatch):
    def interrupted(spec, *, log, on_check):
        on_check({"name": "randomness", "verdict": "fail", "evidence": {}, "advice": "x"})
        raise KeyboardInterrupt

    monkeypatch.setattr(diagnose_cli, "run_diagnose", interrupted)
    out = tmp_path / "partial.json"
    res = run(f"{model_file}:make_model", "--json", str(out))
    assert res.exit_code == diagnose_cli.INTERRUPTED_EXIT
    got = json.loads(out.read_text())
    assert got["complete"] is False and got["masking_suspected"] is True
    assert [c["name"] for c in got["checks"]] == ["randomness"]


def test_out_writes_a_valid_card_with_diagnostics(model_file, tmp_path):
    res = run(f"{model_file}:make_quantized", "--out", str(tmp_path / "card"), "--no-progress")
    assert res.exit_code == diagnose_cli.MASKING_EXIT
    card = json.loads((tmp_path / "card" / "card.json").read_text())
    validate_card(card)
    entry = card["entries"][0]
    diag = entry["diagnostics"]
    assert diag["masking_suspected"] is True and len(diag["checks"]) == len(CHECKS)
    sweep_eps = [p["eps"] for p in entry["evaluation"]["sweep"]]
    assert sweep_eps == [p["eps"] for p in diag["curves"]["security"]] and sweep_eps[-1] == 1.0
    page = (tmp_path / "card" / "card.html").read_text()
    assert "Diagnostics: gradient masking" in page and "Masking suspected" in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 4  # 2 + 2 diagnostics

    bad = copy.deepcopy(card)
    bad["entries"][0]["diagnostics"]["masking_suspected"] = False
    with pytest.raises(InputError, match=re.escape("diagnostics.masking_suspected")):
        validate_card(bad)
    bad = copy.deepcopy(card)
    bad["entries"][0]["diagnostics"]["checks"][0]["verdict"] = "maybe"
    with pytest.raises(InputError, match=re.escape("checks[0].verdict")):
        validate_card(bad)
    bad = copy.deepcopy(card)
    bad["entries"][0]["diagnostics"]["curves"]["security"].reverse()
    with pytest.raises(InputError, match="ascending"):
        validate_card(bad)
    plain = copy.deepcopy(card)  # a diagnostics section without checks renders as JSON
    plain["entries"][0]["diagnostics"] = {"note": "older tool"}
    assert "older tool" in render_html(plain) and "Diagnostics: gradient" not in render_html(plain)
