"""The CIFAR-shaped path end to end, offline: ``cifar-small`` (3x32x32 -> 10 logits)
trained by ``bastion train`` on ``cifar10-synthetic``, then every classic command run on
it from the command line against ``cifar10-sample`` (foolbox's 20 real CIFAR-10 images)
or the synthetic splits. The model has seen the 20 sample images in training, so its
accuracy on them only shows the attacks have correctly classified inputs to work on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from bastion import data
from bastion.attacks import PGD
from bastion.cli import app
from bastion.errors import ConfigError
from bastion.threat import ThreatModel
from bastion.zoo.models import CifarSmall
from bastion.zoo.recipes import train as train_recipe
from bastion.zoo.registry import build_for

MODEL = "bastion.zoo.models:CifarSmall"
NAME = "cifar10-small-synthetic"


def invoke(*args: str) -> Any:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res


def read(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text())
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zoo recipe behind ``bastion zoo train cifar10-small-synthetic``, run into a
    temporary folder (about 10 s); returns the folder holding NAME.pt and NAME.json."""
    root = tmp_path_factory.mktemp("cifar")
    train_recipe(NAME, root, log=lambda _: None, work=root / "run")
    return root


def model_args(root: Path) -> list[str]:
    return ["--model", MODEL, "--checkpoint", str(root / f"{NAME}.pt")]


def test_synthetic_data_is_cifar_shaped_and_deterministic() -> None:
    train = data.load("cifar10-synthetic", "train")
    test = data.load("cifar10-synthetic", "test")
    sample = data.load("cifar10-sample")
    assert train.x.shape[1:] == test.x.shape[1:] == sample.x.shape[1:] == (3, 32, 32)
    assert float(train.x.min()) >= 0.0 and float(train.x.max()) <= 1.0
    assert set(test.y.tolist()) == set(range(10)) and len(train.classes) == 10
    # the real images lead the train split, then the synthetic ones
    assert torch.equal(train.x[:20], sample.x)
    assert torch.equal(data.load("cifar10-synthetic", "test").x, test.x)
    assert not torch.equal(data.load("cifar10-synthetic", "val").x, test.x)


def test_zoo_recipe_writes_a_card_and_weights(trained: Path) -> None:
    meta = read(trained / f"{NAME}.json")
    assert meta["command"] == f"bastion zoo train {NAME}"
    assert meta["recipe"]["data"] == "cifar10-synthetic"
    # 10 classes: chance is 10%; the gratings are easy to tell apart
    assert meta["clean_test_accuracy"] > 0.5
    model = CifarSmall()
    model.load_state_dict(torch.load(trained / f"{NAME}.pt", weights_only=True))
    # the recipe keeps the best validation epoch of its run
    assert torch.equal(torch.load(trained / f"{NAME}.pt", weights_only=True)["net.0.weight"],
                       torch.load(meta["trainer"]["run_folder"] + "/best.pt",
                                  weights_only=True)["net.0.weight"])
    assert model.eval()(data.load("cifar10-sample").x).shape == (20, 10)


def test_train_one_tiny_epoch(tmp_path: Path) -> None:
    run = tmp_path / "run"
    invoke("train", "--out", str(run), "--method", "pgd", "--model", "cifar-small",
           "--data", "cifar10-synthetic", "--epochs", "1", "--train-n", "320", "--steps", "2",
           "--val-n", "50", "--val-steps", "2", "--eval-n", "50", "--eval-steps", "2",
           "--eps", "0.03", "--no-progress")
    best = read(run / "best.json")
    assert best["arch"] == "cifar-small" and best["test_n"] == 50
    assert best["arch_kwargs"] == {"in_channels": 3, "num_classes": 10, "size": 32}
    assert 0.0 <= best["robust_test_accuracy"] <= best["clean_test_accuracy"] <= 1.0


def test_evaluate_fgsm_pgd_autoattack(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "ev.json"
    invoke("evaluate", *model_args(trained), "--data", "cifar10-sample", "--eps", "0.03",
           "--attack", "fgsm", "--attack", "pgd", "--attack",
           "autoattack:steps=3,n_target_classes=2,n_queries=30", "--steps", "3",
           "--json", str(out), "--no-progress")
    result = read(out)
    assert result["n"] == 20 and result["threat"]["eps"] == 0.03
    assert result["clean_accuracy"] >= 0.5
    assert set(result["per_attack"]) >= {"fgsm", "pgd-3"}
    assert any(name.startswith("autoattack") for name in result["per_attack"])
    for rate in result["per_attack"].values():
        assert 0.0 <= result["robust_accuracy"] <= rate <= result["clean_accuracy"]


def test_pgd_on_cifar_shapes_stays_within_eps(trained: Path) -> None:
    model = CifarSmall()
    model.load_state_dict(torch.load(trained / f"{NAME}.pt", weights_only=True))
    sample = data.load("cifar10-sample")
    result = PGD(steps=5).run(model.eval(), sample.x, sample.y, ThreatModel("Linf", 0.03))
    x_adv = result.x_adv
    assert x_adv.shape == (20, 3, 32, 32)
    assert float((x_adv - sample.x).abs().max()) <= 0.03 + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_diagnose(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "dg.json"
    invoke("diagnose", *model_args(trained), "--data", "cifar10-sample", "--n", "10",
           "--eps", "0.03", "--steps", "3", "--square-queries", "20", "--json", str(out),
           "--no-progress")
    result = read(out)
    assert result["n"] == 10 and result["complete"]
    names = {c["name"]: c["verdict"] for c in result["checks"]}
    # a plain ReLU CNN is deterministic with healthy gradients
    assert names["randomness"] == "pass" and names["gradient-health"] == "pass"
    assert result["masking_suspected"] is False


@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_certify_bounds(trained: Path, tmp_path: Path, method: str) -> None:
    out = tmp_path / "c.json"
    invoke("certify", *model_args(trained), "--data", "cifar10-sample", "--n", "10",
           "--method", method, "--eps", "0.0005", "--steps", "3", "--json", str(out))
    result = read(out)
    assert result["n"] == 10 and result["threat"]["norm"] == "Linf"
    assert result["certified_but_broken"] == 0
    assert result["certified_accuracy"] <= result["empirical_robust_accuracy"]
    assert result["empirical_robust_accuracy"] <= result["clean_accuracy"]
    if method == "crown":  # tighter than IBP: at this tiny radius it certifies something
        assert result["certified_accuracy"] > 0.0


def test_certify_smoothing(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    invoke("certify", *model_args(trained), "--data", "cifar10-sample", "--n", "5",
           "--method", "smoothing", "--sigma", "0.25", "--n0", "10", "--samples", "50",
           "--attack", "none", "--json", str(out))
    result = read(out)
    assert result["method"] == "smoothing" and result["n"] == 5
    assert 0.0 <= result["certified_accuracy"] <= result["clean_accuracy"] <= 1.0


def test_ood(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "ood.json"
    invoke("ood", *model_args(trained), "--id", "cifar10-synthetic", "--ood",
           "uniform,natural", "--detectors", "energy,mahalanobis", "--n", "40", "--fit",
           "200", "--eps", "0.03", "--n-adv", "8", "--steps", "2", "--json", str(out),
           "--no-progress")
    result = read(out)
    for detector in ("energy", "mahalanobis"):
        sets = result["detectors"][detector]["sets"]
        for name in ("uniform", "natural"):
            assert sets[name]["n_id"] == 40 and sets[name]["n_ood"] == 40
            lo, hi = sets[name]["auroc_ci"]
            assert 0.0 <= lo <= sets[name]["auroc"] <= hi <= 1.0
    # uniform noise is far from the gratings for the energy score
    assert result["detectors"]["energy"]["sets"]["uniform"]["auroc"] > 0.9


def test_poison_scan_and_data_audit(trained: Path, tmp_path: Path) -> None:
    scan = tmp_path / "scan"
    invoke("poison", "scan", "--arch", "cifar-small", "--checkpoint", str(trained / f"{NAME}.pt"),
           "--data", "cifar10-synthetic", "--n", "40", "--strip-only", "--no-progress",
           "--out", str(scan))
    fpr = read(scan / "scan.json")["strip"]["fpr"]
    assert fpr["n"] == 40 and fpr["ci95"][0] <= fpr["rate"] <= fpr["ci95"][1]
    out = tmp_path / "audit.json"
    invoke("data", "audit", "--arch", "cifar-small", "--checkpoint", str(trained / f"{NAME}.pt"),
           "--data", "cifar10-synthetic", "--reference", "100", "--detector", "spectral",
           "--json", str(out))
    audit = read(out)
    assert audit["n"] == 1200 and audit["reference_n"] == 100
    flagged = set(audit["detectors"]["spectral"]["flagged"])
    assert flagged and max(flagged) < 1200
    # the 200 real photos (20 repeated 10 times) are the odd ones out among gratings
    assert len(flagged & set(range(200))) >= 180


def test_privacy_extract_and_membership(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "ex.json"
    invoke("privacy", "extract", *model_args(trained), "--pool", "cifar10-synthetic:val",
           "--test", "cifar10-synthetic:test", "--n-test", "100", "--budgets", "50,100",
           "--arch", "cifar-small", "--steps", "20", "--json", str(out), "--no-progress")
    rows = read(out)["rows"]
    assert [r["queries"] for r in rows] == [50, 100]
    for r in rows:  # intervals in percent, rates in [0, 1]
        lo, hi = r["fidelity_ci"]
        assert lo <= 100 * r["fidelity"] <= hi
    out = tmp_path / "mb.json"
    invoke("privacy", "audit", "--data", "cifar10-synthetic", "--pool", "120",
           "--population", "20", "--shadows", "2", "--arch", "cifar-small", "--epochs", "1",
           "--workers", "1", "--json", str(out), "--no-progress")
    loss = read(out)["attacks"]["loss-threshold"]
    assert loss["auroc_ci"][0] <= loss["auroc"] <= loss["auroc_ci"][1]


def test_mnist_layouts_on_cifar_shapes_say_what_to_use() -> None:
    with pytest.raises(ConfigError, match="cifar-small"):
        build_for("wong-small", torch.zeros(2, 3, 32, 32), 10)
    assert build_for("cifar-small", torch.zeros(2, 3, 64, 64), 10)(
        torch.zeros(1, 3, 64, 64)).shape == (1, 10)
    with pytest.raises(ConfigError, match="divisible by 4"):
        build_for("cifar-small", torch.zeros(2, 3, 30, 30), 10)


def test_threat_matrix_loads_the_checkpoint(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "matrix.json"
    invoke("evaluate", *model_args(trained), "--data", "cifar10-sample", "--n", "10",
           "--threats", "linf:0.03", "--steps", "2", "--json", str(out), "--no-progress")
    model = CifarSmall()
    model.load_state_dict(torch.load(trained / f"{NAME}.pt", weights_only=True))
    sample = data.load("cifar10-sample").head(10)
    with torch.no_grad():
        expected = float((model.eval()(sample.x).argmax(1) == sample.y).float().mean())
    row = read(out)["rows"][0]
    # the matrix's clean accuracy is that of the trained weights, not a fresh model's
    assert row["model"] == MODEL and row["clean_accuracy"] == pytest.approx(expected)
    assert expected >= 0.5 and 0.0 <= row["cells"][0]["accuracy"] <= expected
