"""The threat matrix: parsing, cells with intervals, resuming, the card section, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from bastion.cli import app
from bastion.data.base import Dataset
from bastion.errors import ConfigError, StateError
from bastion.report import CardEntry, build_card
from bastion.threats import matrix
from bastion.threats.matrix import parse_threats, run_matrix
from conftest import tiny_cnn

THREATS = "linf:0.1,l1:1,spatial:20deg-1px,corruptions"


def test_parse_reads_every_kind_in_order() -> None:
    columns = parse_threats("linf:0.3, L2:2,l1:10,spatial:30deg-3px,corruptions")
    assert [c.label for c in columns] == ["Linf 0.3", "L2 2", "L1 10", "spatial 30deg-3px",
                                          "corruptions"]
    assert columns[2].threat is not None and columns[2].threat.norm == "L1"
    assert columns[3].spatial is not None and columns[3].spatial.max_shift == 3


@pytest.mark.parametrize(("text", "message"), [
    ("linf:abc", "must be a number"), ("l0:3", "unknown threat"), ("", "empty"),
    ("linf:0.3,linf:0.3", "twice"), ("spatial:30", "30deg-3px")])
def test_parse_refuses_bad_threats_saying_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_threats(text)


def toy() -> tuple[nn.Module, Dataset]:
    model = tiny_cnn().eval()
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x).argmax(1)  # clean accuracy 100%
    return model, Dataset(x, y, "toy", "test", tuple("0123456789"), "memory")


def fill(state_dir: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    model, ds = toy()
    return run_matrix({"toy": model}, ds, parse_threats(THREATS), steps=3, targets=2,
                      angles=3, state_dir=state_dir, log=lambda _: None)


def test_cells_hold_accuracies_inside_their_intervals_and_the_card_accepts_them() -> None:
    section, evaluations = fill(None)
    (row,) = section["rows"]
    assert row["clean_accuracy"] == 1.0
    assert [c["threat"] for c in row["cells"]] == section["threats"]
    for cell in row["cells"]:
        low, high = cell["interval"]
        assert 0.0 <= low <= cell["accuracy"] <= high <= 1.0
        assert cell["accuracy"] <= row["clean_accuracy"]
    kinds = [c["interval_kind"] for c in row["cells"]]
    assert kinds == ["wilson", "wilson", "wilson", "bootstrap"]
    res = evaluations["toy"]
    entry = CardEntry(model={"name": "toy", "kind": "file", "description": "", "digest": "0"},
                      data={"name": "toy", "split": "test", "n": 8, "source": "memory"},
                      evaluation=res.to_dict())
    run = {"run_id": "r", "seed": 0, "versions": {}, "command": "test"}
    card = build_card([entry], run=run, extra={"threat_matrix": section})
    assert card["threat_matrix"]["rows"][0]["model"] == "toy"


def test_a_rerun_resumes_from_saved_cells_and_refuses_other_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, _ = fill(tmp_path)

    def no(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished cell was computed again")

    monkeypatch.setattr(matrix, "spatial_cell", no)
    monkeypatch.setattr(matrix, "corruption_cell", no)
    again, _ = fill(tmp_path)
    assert again == first
    model, ds = toy()
    with pytest.raises(StateError, match="other settings"):
        run_matrix({"toy": model}, ds, parse_threats(THREATS), steps=4, targets=2,
                   angles=3, state_dir=tmp_path, log=lambda _: None)


@pytest.mark.slow
def test_cli_writes_the_matrix_into_json_and_card(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "evaluate", "--model", "mnist-smallcnn-std", "--model", "mnist-lenet5-pgd",
        "--n", "6", "--threats", "linf:0.3,spatial:10deg-1px", "--steps", "3",
        "--targets", "2", "--out", str(tmp_path / "out"), "--json", str(tmp_path / "m.json"),
        "--no-progress"])
    assert result.exit_code == 0, result.output
    section = json.loads((tmp_path / "m.json").read_text())
    assert [r["model"] for r in section["rows"]] == ["mnist-smallcnn-std", "mnist-lenet5-pgd"]
    card = json.loads((tmp_path / "out" / "card.json").read_text())
    assert card["threat_matrix"] == section
    assert len(card["entries"]) == 2
    assert "Accuracy by threat model" in (tmp_path / "out" / "card.html").read_text()
