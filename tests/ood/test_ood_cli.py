"""``bastion ood`` end to end on a bundled model and real data, at reduced sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bastion import data, zoo
from bastion.cli import app
from bastion.ood import detection, load_set, make
from bastion.report import validate_card

ARGS = ["ood", "--model", "mnist-smallcnn-std", "--ood", "fashion-mnist,uniform",
        "--detectors", "energy,knn", "--n", "60", "--fit", "300", "--eps", "0.1",
        "--n-adv", "12", "--steps", "2", "--no-progress"]


@pytest.mark.slow
def test_cli_writes_json_plot_and_a_valid_card_and_resumes(tmp_path: Path) -> None:
    state, out = tmp_path / "state.json", tmp_path / "card"
    first = CliRunner().invoke(app, [*ARGS, "--json", str(tmp_path / "a.json"), "--plot",
                                     str(tmp_path / "p.png"), "--out", str(out), "--state",
                                     str(state)])
    assert first.exit_code == 0, first.output
    result = json.loads((tmp_path / "a.json").read_text())
    energy = result["detectors"]["energy"]
    assert set(energy["sets"]) == {"fashion-mnist", "uniform"}
    assert energy["adaptive"]["fashion-mnist"][0]["eps"] == 0.1
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    card = json.loads((out / "card.json").read_text())
    validate_card(card)
    assert card["entries"][0]["out_of_distribution"]["detectors"]["knn"]["adaptive"]
    # the same command with the same state file gives the same numbers
    again = CliRunner().invoke(app, [*ARGS, "--json", str(tmp_path / "b.json"), "--state",
                                     str(state)])
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "b.json").read_text())["detectors"] == result["detectors"]
    # other settings with that state file are refused
    other = CliRunner().invoke(app, [*ARGS[:-1], "--seed", "1", "--no-progress", "--state",
                                     str(state)])
    assert other.exit_code == 2 and "different run" in other.output


def test_cli_refuses_unknown_detectors_and_sets() -> None:
    bad = CliRunner().invoke(app, ["ood", "--model", "mnist-smallcnn-std", "--detectors",
                                   "energy,nope"])
    assert bad.exit_code == 2 and "unknown detector" in bad.output
    bad = CliRunner().invoke(app, ["ood", "--model", "mnist-smallcnn-std", "--ood", "svhn"])
    assert bad.exit_code == 2 and "unknown OOD set" in bad.output


@pytest.mark.slow
def test_energy_separates_mnist_from_fashion_mnist_on_the_bundled_model() -> None:
    model = zoo.load("mnist-smallcnn-std")
    det = make("energy").fit(model, data.load("mnist", "train", 500))
    result = detection(det.score(data.load("mnist", "test", 500).x),
                       det.score(load_set("fashion-mnist", 500)))
    assert result.auroc >= 0.99
