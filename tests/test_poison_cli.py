"""The command line: train --poison / --manifest, data manifest create|verify, data audit;
bad specs fail at the start and leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bastion.common.records import read
from bastion.errors import InputError
from bastion.poison.cli import register as register_poison
from bastion.report import validate_card
from bastion.train.cli import register as register_train

runner = CliRunner()
TINY = ["--method", "standard", "--model", "mlp", "--data", "digits", "--epochs", "1",
        "--batch-size", "64", "--lr", "0.003", "--val-holdout", "200", "--val-n", "100",
        "--val-steps", "1", "--eval-n", "100", "--eval-steps", "1", "--no-progress"]


def app() -> typer.Typer:
    main = typer.Typer()
    register_train(main)
    register_poison(main)
    return main


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app(), list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def poisoned_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny poisoned training run, shared by the tests that read it."""
    run = tmp_path_factory.mktemp("poisoned") / "run"
    res = invoke("train", "--out", str(run), *TINY, "--poison", "badnets:rate=0.1,target=0,size=2")
    assert res.exit_code == 0, res.output
    return run


def test_train_with_a_poison_reports_its_attack_success(poisoned_run: Path) -> None:
    best = json.loads((poisoned_run / "best.json").read_text())
    section = best["training_integrity"]
    assert section["poison"]["n_poisoned"] == round(0.1 * section["poison"]["n_train"]) > 0
    hit = section["attack_success"]
    assert hit["n"] > 0 and 0 <= hit["rate"] <= 1 and hit["trigger"].startswith("badnets")
    card = json.loads((poisoned_run / "card.json").read_text())
    validate_card(card)
    assert card["entries"][0]["training_integrity"]["attack_success"] == hit
    card["entries"][0]["training_integrity"]["attack_success"]["rate"] = 1.5
    with pytest.raises(InputError, match="rate"):
        validate_card(card)


def test_bad_poison_specs_fail_at_the_start_and_write_nothing(tmp_path: Path) -> None:
    for spec, message in (("badnets:rate=1.5", "rate must be a fraction"),
                          ("badnets:size=9", "does not fit 8x8"),
                          ("nope:rate=0.1", "unknown poisoning attack")):
        out = tmp_path / spec.replace(":", "_")
        res = invoke("train", "--out", str(out), *TINY, "--poison", spec)
        assert res.exit_code == 2 and message in res.output, res.output
        assert not (out / "state.pt").exists() and not (out / "best.pt").exists()


def test_manifest_create_verify_and_training_refuses_unverified_data(tmp_path: Path) -> None:
    manifest = tmp_path / "digits.json"
    res = invoke("data", "manifest", "create", "--data", "digits", "--split", "train",
                 "--out", str(manifest), "--by", "tester")
    assert res.exit_code == 0, res.output
    assert invoke("data", "manifest", "verify", "--data", "digits",
                  "--manifest", str(manifest)).exit_code == 0
    # a poisoned training set no longer matches: training stops before it starts
    res = invoke("train", "--out", str(tmp_path / "a"), *TINY, "--manifest", str(manifest),
                 "--poison", "label-flip:rate=0.01")
    assert res.exit_code == 2 and "does not match manifest" in res.output
    assert "changed label(s) at index" in res.output and not (tmp_path / "a" / "best.pt").exists()
    res = invoke("train", "--out", str(tmp_path / "b"), *TINY, "--manifest", str(manifest),
                 "--poison", "label-flip:rate=0.01", "--allow-unverified")
    assert res.exit_code == 0, res.output
    first = read(tmp_path / "b" / "train.jsonl")[0]
    assert first["integrity"]["manifest"]["override"] is True
    card = json.loads((tmp_path / "b" / "card.json").read_text())
    assert card["entries"][0]["training_integrity"]["manifest"]["verified"] is False
    res = invoke("train", "--out", str(tmp_path / "c"), *TINY, "--manifest", str(manifest))
    assert res.exit_code == 0, res.output
    assert read(tmp_path / "c" / "train.jsonl")[0]["integrity"]["manifest"]["verified"]


def test_data_audit_flags_and_writes_a_cleaned_set(poisoned_run: Path, tmp_path: Path) -> None:
    run = poisoned_run
    report, cleaned = tmp_path / "audit.json", tmp_path / "clean.npz"
    res = invoke("data", "audit", "--arch", "mlp", "--checkpoint", str(run / "best.pt"),
                 "--data", "digits", "--poison", "badnets:rate=0.1,target=0,size=2",
                 "--reference", "0", "--json", str(report), "--remove", str(cleaned),
                 "--remove-by", "knn")
    assert res.exit_code == 0, res.output
    found = json.loads(report.read_text())
    assert set(found["detectors"]) == {"spectral", "activation-clustering", "knn"}
    knn = found["detectors"]["knn"]
    assert knn["rates"]["tpr"]["n"] == round(0.1 * found["n"]) > 0
    assert found["removed"]["kept"] == found["n"] - knn["n_flagged"]
    assert cleaned.exists()


def test_data_audit_moves_the_model_to_the_device_asked_for(
        poisoned_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import bastion.jobs

    asked: list[str] = []

    def fake(name: str) -> torch.device:
        asked.append(name)
        return torch.device("cpu")

    monkeypatch.setattr(bastion.jobs, "parse_device", fake)
    res = invoke("data", "audit", "--arch", "mlp", "--checkpoint", str(poisoned_run / "best.pt"),
                 "--data", "digits", "--reference", "0", "--detector", "knn", "--device",
                 "cuda:2", "--json", str(tmp_path / "a.json"))
    assert res.exit_code == 0, res.output
    assert asked == ["cuda:2"]
