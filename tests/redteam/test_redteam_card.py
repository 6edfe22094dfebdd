"""The card's redteam section: written from a run's summary, checked, rendered."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from redteam_fakes import APP, JUDGES, SUCCESS, FakeEndpoint, attempts

from bastion.errors import InputError
from bastion.redteam.runner import run
from bastion.redteam.targets import OpenAITarget
from bastion.report import validate_card, write_redteam_card

RUN = {"run_id": "abc123", "seed": 0, "versions": {"bastion": "0"},
       "command": "bastion redteam --target embedded --compare --out rt"}


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("run")
    targets = {"unguarded": OpenAITarget("http://f/v1", transport=FakeEndpoint().transport),
               "guarded": OpenAITarget("http://f/v1",
                                       transport=FakeEndpoint(block="error").transport)}
    return run(targets, APP, attempts(), folder, judges=JUDGES, success_judges=SUCCESS)


def test_card_holds_the_summary_and_renders_side_by_side(summary: dict[str, Any],
                                                         tmp_path: Path) -> None:
    json_path, html_path = write_redteam_card(tmp_path, summary, run=RUN)
    card = json.loads(json_path.read_text())
    assert card["entries"] == [] and card["redteam"]["targets"]["unguarded"]["asr"] == \
        summary["targets"]["unguarded"]["asr"]
    validate_card(card)
    html = html_path.read_text()
    assert "Red team: acme" in html and "By probe family" in html and "By converter" in html
    harmful = summary["drop"]["harmful"]
    cell = (f"{100 * harmful['unguarded']['rate']:.1f}% "
            f"[{100 * harmful['unguarded']['interval'][0]:.1f}%")
    assert cell in html
    assert "<th>unguarded</th><th>guarded</th><th>drop</th>" in html


@pytest.mark.parametrize(("where", "value", "message"), [
    (("targets", "guarded", "asr", "successes"), 99, "more than n"),
    (("targets", "guarded", "judged"), 1, "judged attempts"),
    (("targets", "unguarded", "per_family", "harmful", "rate"), 0.9, "not successes / n"),
])
def test_numbers_that_disagree_are_refused(summary: dict[str, Any], tmp_path: Path,
                                           where: tuple[str, ...], value: Any,
                                           message: str) -> None:
    bad = copy.deepcopy(summary)
    node = bad
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    with pytest.raises(InputError, match=message):
        write_redteam_card(tmp_path, bad, run=RUN)


def test_a_card_without_entries_needs_a_redteam_section(summary: dict[str, Any],
                                                        tmp_path: Path) -> None:
    json_path, _ = write_redteam_card(tmp_path, summary, run=RUN)
    card = json.loads(json_path.read_text())
    del card["redteam"]
    with pytest.raises(InputError, match="at least 1"):
        validate_card(card)
