"""The training loop on tiny settings: outputs, records, resume, CLI, sweep, safeguards."""

from __future__ import annotations

import builtins
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

import bastion.train.trainer as trainer_mod
from bastion import zoo
from bastion.common.records import read
from bastion.errors import (
    BastionWarning,
    ConfigError,
    InputError,
    MissingDependencyError,
    StateError,
)
from bastion.report import validate_card
from bastion.train import TrainConfig, train
from bastion.train.cli import register
from bastion.train.dp import Private

TINY = TrainConfig(method="pgd", model="mlp", data="digits", eps=0.1, epochs=1, batch_size=64,
                   lr=3e-3, steps=2, val_holdout=200, val_n=100, val_steps=3, eval_n=100,
                   eval_steps=5, checkpoint_every=5, progress=False)
TINY_ARGS = ["--model", "mlp", "--data", "digits", "--eps", "0.1", "--epochs", "1",
             "--batch-size", "64", "--lr", "0.003", "--steps", "2", "--val-holdout", "200",
             "--val-n", "100", "--val-steps", "3", "--eval-n", "100", "--eval-steps", "5",
             "--no-progress"]


def quiet(_: str) -> None:
    pass


def weights(path: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = torch.load(path, weights_only=True)
    return out


@pytest.mark.slow  # about 10 s: the first run pays for imports and data loading
def test_a_run_leaves_zoo_weights_a_card_and_a_record(tmp_path: Path) -> None:
    summary = train(TINY, tmp_path, command="test", log=quiet)
    assert summary is not None
    meta = json.loads((tmp_path / "best.json").read_text())
    assert meta["arch"] == "mlp" and meta["arch_kwargs"] == {"in_features": 64,
                                                             "num_classes": 10}
    model = zoo.build(meta["arch"], **meta["arch_kwargs"])
    model.load_state_dict(weights(tmp_path / "best.pt"))  # the format the zoo loads
    card = json.loads((tmp_path / "card.json").read_text())
    validate_card(card)
    entry = card["entries"][0]
    assert entry["evaluation"]["n"] == 100
    assert entry["training"]["best_epoch"] == 0
    assert 0.5 < meta["clean_test_accuracy"] <= 1  # one epoch on digits learns something
    assert 0 <= meta["robust_test_accuracy"] <= meta["clean_test_accuracy"]
    lines = read(tmp_path / "train.jsonl")
    kinds = [line["kind"] for line in lines]
    assert kinds[0] == "run" and kinds[-1] == "final" and "epoch" in kinds
    assert kinds.count("checkpoint") == 4  # batches 5, 10, 15 of 20, and the epoch end
    first = lines[0]
    assert first["seed"] == 0 and first["params"]["method"] == "pgd"
    assert "torch" in first["versions"] and len({line["run_id"] for line in lines}) == 1
    epoch = next(line for line in lines if line["kind"] == "epoch")
    assert set(epoch["val"]) == {"clean_accuracy", "robust_accuracy"}


class TenSecondClock:
    """Stands in for the trainer's ``time`` module: each reading is 10 s after the last."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 10.0
        return self.now


def test_rerun_resumes_and_another_config_is_refused(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer_mod, "time", TenSecondClock())
    cfg = replace(TINY, method="standard")
    first = train(cfg, tmp_path, log=quiet)
    before = weights(tmp_path / "last.pt")
    again = train(cfg, tmp_path, log=quiet)  # finished: nothing to train, same result
    assert first is not None and again is not None
    assert again["clean_test_accuracy"] == first["clean_test_accuracy"]
    # the resumed run reports the whole run's training time, not its own (about 0 s)
    assert first["train_seconds"] >= 30
    assert again["train_seconds"] >= first["train_seconds"]
    after = weights(tmp_path / "last.pt")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [line["kind"] for line in read(tmp_path / "train.jsonl")].count("resume") == 1
    with pytest.raises(StateError, match="different training run"):
        train(replace(cfg, seed=1), tmp_path, log=quiet)


def test_catastrophic_overfitting_stops_early_and_keeps_the_best(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scores = iter([(0.80, 0.50), (0.85, 0.55), (0.90, 0.01), (0.9, 0.6)])

    def fake_validate(*args: Any, **kwargs: Any) -> dict[str, float]:
        clean, robust = next(scores)
        return {"clean_accuracy": clean, "robust_accuracy": robust}

    monkeypatch.setattr(trainer_mod, "validate", fake_validate)
    cfg = replace(TINY, method="fgsm", epochs=4, train_n=128)
    with pytest.warns(BastionWarning, match="catastrophic overfitting at epoch 3"):
        summary = train(cfg, tmp_path, log=quiet)
    assert summary is not None
    assert summary["training"]["best_epoch"] == 1 and summary["training"]["stopped_early"]
    lines = read(tmp_path / "train.jsonl")
    assert [line["epoch"] for line in lines if line["kind"] == "epoch"] == [0, 1, 2]
    assert sum(line["kind"] == "catastrophic_overfitting" for line in lines) == 1


def test_cli_trains_and_reports_bad_options(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    app.command("other")(lambda: None)  # two commands: "train" must be named
    runner = CliRunner()
    ok = runner.invoke(app, ["train", "--out", str(tmp_path / "a"), "--method", "trades",
                             "--beta", "3", *TINY_ARGS])
    assert ok.exit_code == 0, ok.output
    meta = json.loads((tmp_path / "a" / "best.json").read_text())
    assert meta["training"]["config"]["beta"] == 3.0
    assert meta["command"].startswith("bastion train")
    bad = runner.invoke(app, ["train", "--out", str(tmp_path / "b"), "--method", "free",
                              *TINY_ARGS])
    assert bad.exit_code == 2 and "unknown method 'free'" in bad.output


def test_sweep_writes_a_table_a_plot_and_a_card_with_the_tradeoff(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["--out", str(tmp_path), "--method", "trades",
                                      "--sweep-beta", "0,6", "--compare", "standard,pgd",
                                      "--train-n", "256", *TINY_ARGS])
    assert result.exit_code == 0, result.output
    table = json.loads((tmp_path / "sweep.json").read_text())
    assert table["parameter"] == "beta" and table["method"] == "trades"
    assert [(p["method"], p["beta"]) for p in table["points"]] == [
        ("trades", 0.0), ("trades", 6.0), ("standard", None), ("pgd", None)]
    assert [p["dir"] for p in table["points"]] == ["beta-0", "beta-6", "method-standard",
                                                   "method-pgd"]
    for point in table["points"]:
        assert (tmp_path / point["dir"] / "best.pt").exists()
        assert 0 <= point["robust_accuracy"] <= point["clean_accuracy"] <= 1
        own = json.loads((tmp_path / point["dir"] / "best.json").read_text())
        assert own["training"]["method"] == point["method"]
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    card = json.loads((tmp_path / "card.json").read_text())
    validate_card(card)
    assert card["tradeoff"]["points"] == table["points"]
    assert [e["model"]["name"] for e in card["entries"]] == ["trades β=0", "trades β=6",
                                                             "standard", "pgd"]
    for entry, point in zip(card["entries"], table["points"], strict=True):
        assert entry["evaluation"]["robust_accuracy"] == point["robust_accuracy"]
    html = (tmp_path / "card.html").read_text()
    assert "Robustness-accuracy trade-off" in html and "method-pgd" not in html
    card["tradeoff"]["points"][0]["robust_accuracy"] = 1.5
    with pytest.raises(InputError, match="fractions"):
        validate_card(card)


def test_sweep_settings_refuse_what_cannot_be_swept() -> None:
    from bastion.train.sweep import run_sweep, settings

    with pytest.raises(ConfigError, match="trades or mart"):
        run_sweep(TINY, [1.0, 2.0], Path("unused"))
    with pytest.raises(ConfigError, match="--compare takes distinct methods"):
        settings(TINY, (), ["pgd", "magic"])
    with pytest.raises(ConfigError, match="--compare takes distinct methods"):
        settings(TINY, (), ["pgd", "pgd"])
    with pytest.raises(ConfigError, match="needs --sweep-beta"):
        settings(TINY, (), ())
    # A compared beta method gets the default beta, not the swept one.
    mart = settings(replace(TINY, method="trades", beta=1.0), (1.0,), ["mart"])
    assert [(c.method, c.beta, folder) for c, folder, _ in mart] == [
        ("trades", 1.0, "beta-1"), ("mart", TrainConfig().beta, "method-mart")]


def test_dp_without_opacus_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = builtins.__import__

    def no_opacus(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "opacus" or name.startswith("opacus."):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_opacus)
    model = nn.Linear(4, 2)
    with pytest.raises(MissingDependencyError, match=r"bastion\[dp\]"):
        Private(model, torch.optim.SGD(model.parameters(), lr=0.1), n_train=10, batches=2,
                noise_multiplier=1.0, max_grad_norm=1.0, noise_generator=torch.Generator())


def test_dp_refuses_batchnorm_with_a_way_out() -> None:
    pytest.importorskip("opacus")
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(),
                          nn.Linear(72, 2))
    with pytest.raises(ConfigError, match="without BatchNorm"):
        Private(model, torch.optim.SGD(model.parameters(), lr=0.1), n_train=10, batches=2,
                noise_multiplier=1.0, max_grad_norm=1.0, noise_generator=torch.Generator())
