"""`bastion demo`'s guard half: the card's guard section, its tables, and its checks."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bastion.cli import app
from bastion.demo import demo_prompts
from bastion.errors import InputError
from bastion.report import validate_card

runner = CliRunner()
LIMIT = 30


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny demo run: one bundled model on 8 images, PGD-1, 30 S-Labs test prompts."""
    out = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("bastion.jobs.DEMO_MODELS", ("mnist-lenet5-pgd",))
        mp.setattr("bastion.jobs.DEMO_SWEEP", (0.1,))
        res = runner.invoke(app, ["demo", "--out", str(out), "--n", "8", "--steps", "1",
                                  "--guard-limit", str(LIMIT), "--no-progress"])
    assert res.exit_code == 0, res.output
    return out


def _card(out: Path) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((out / "card.json").read_text(encoding="utf-8"))
    return card


def test_card_holds_both_halves(demo_out: Path) -> None:
    card = _card(demo_out)
    validate_card(card)
    assert [e["model"]["name"] for e in card["entries"]] == ["mnist-lenet5-pgd"]
    guard = card["guard"]
    assert [p["text"] for p in guard["prompts"]] == [p["text"] for p in demo_prompts()]
    for p in guard["prompts"]:
        assert p["verdict"] in ("allow", "redact", "block") and 0 <= p["score"] <= 1
        assert ("layer" in p) == (p["verdict"] != "allow")
    corpus = guard["corpus"]
    assert corpus["name"] == "s-labs-test" and corpus["n"] == LIMIT
    assert corpus["positives"] > 0 and corpus["negatives"] > 0  # both rates defined
    low, high = corpus["tpr_ci"]
    assert low <= corpus["tpr"] <= high


def test_guard_numbers_are_guard_evals(demo_out: Path, tmp_path: Path) -> None:
    """The section is what `bastion guard eval` measures on the same slice."""
    path = tmp_path / "eval.json"
    res = runner.invoke(app, ["guard", "eval", "--corpus", "s-labs-test", "--limit",
                              str(LIMIT), "--json", str(path)])
    assert res.exit_code == 0, res.output
    direct = json.loads(path.read_text(encoding="utf-8"))
    corpus = _card(demo_out)["guard"]["corpus"]
    for key in ("n", "positives", "negatives", "confusion", "tpr", "fpr", "tpr_ci",
                "fpr_ci", "auroc"):
        assert corpus[key] == direct[key], key


def test_html_has_guard_tables(demo_out: Path) -> None:
    html = (demo_out / "card.html").read_text(encoding="utf-8")
    section = html[html.index('<section class="guard">'):]
    section = section[:section.index("</section>")]
    assert section.count("<table>") == 2
    assert "smuggled in base64" in section and "attacks flagged (TPR)" in section
    assert "bastion guard eval --corpus s-labs-test --limit 30" in section
    assert '"confusion"' not in section  # tables, not a JSON dump


def test_smuggled_prompt_is_real_base64() -> None:
    smuggled = [p for p in demo_prompts() if "base64" in p["note"]]
    assert len(smuggled) == 1
    payload = smuggled[0]["text"].rsplit(" ", 1)[1]
    assert base64.b64decode(payload).decode().startswith("Ignore all previous instructions")


def test_card_check_refuses_counts_that_disagree(demo_out: Path) -> None:
    card = _card(demo_out)
    bad = copy.deepcopy(card)
    bad["guard"]["corpus"]["confusion"]["tp"] += 1
    with pytest.raises(InputError, match="tp \\+ fn"):
        validate_card(bad)
    bad = copy.deepcopy(card)
    corpus = bad["guard"]["corpus"]
    corpus["fpr"] = min(1.0, corpus["fpr"] + 0.5)
    with pytest.raises(InputError, match="fpr"):
        validate_card(bad)
    bad = copy.deepcopy(card)
    del bad["guard"]["prompts"]
    with pytest.raises(InputError, match="prompts"):
        validate_card(bad)
