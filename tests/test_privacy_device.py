"""``--device`` on the privacy commands: the same option as evaluate, a refused device
stops before anything loads, and the device asked for reaches every model that runs.

No GPU here: a stand-in parser answers ``cpu:0``, a device that compares unequal to the
default ``cpu`` (so a spy can tell it arrived) and that tensors and models accept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

import bastion.jobs
from bastion.privacy.cli import register

STAND_IN = torch.device("cpu", 0)
COMMANDS = [["extract"], ["audit"], ["dp-audit"], ["invert", "--model", "mnist-smallcnn-std"]]


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(_app(), ["privacy", *args, "--no-progress"],
                              env={"COLUMNS": "200"})


class Recorder(nn.Module):
    """A small MNIST classifier that records every device it is moved to."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
        self.moves: list[Any] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def to(self, *args: Any, **kwargs: Any) -> Recorder:  # type: ignore[override]
        self.moves.append(args[0] if args else kwargs.get("device"))
        return super().to(*args, **kwargs)


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The device parser answers ``cpu:0`` and records what it was asked."""
    asked: list[str] = []

    def fake(name: str) -> torch.device:
        asked.append(name)
        return STAND_IN

    monkeypatch.setattr(bastion.jobs, "parse_device", fake)
    return asked


@pytest.mark.parametrize("command", [c[:1] for c in COMMANDS])
def test_every_privacy_model_command_has_the_device_option(command: list[str]) -> None:
    res = CliRunner().invoke(_app(), ["privacy", *command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "cuda:N, mps or auto" in " ".join(res.output.split())


@pytest.mark.parametrize("command", COMMANDS)
def test_a_device_that_is_not_there_is_refused_before_anything_loads(
        command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import bastion.data
    import bastion.zoo.user

    loaded: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(bastion.data, "load", lambda *a, **k: loaded.append("data"))
    monkeypatch.setattr(bastion.zoo.user, "load_any", lambda *a, **k: loaded.append("model"))
    res = _invoke(*command, "--device", "cuda:1")
    assert res.exit_code == 2, res.output
    assert "no CUDA GPU" in " ".join(res.output.split())
    assert loaded == []


def test_extract_runs_the_victim_and_trains_the_copy_on_the_device(
        stand_in: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import bastion.privacy.extraction as extraction
    import bastion.zoo.user

    victim = Recorder()
    monkeypatch.setattr(bastion.zoo.user, "load_any", lambda *a, **k: victim)
    fits: list[Any] = []
    real_fit = extraction.fit

    def fit(*args: Any, **kwargs: Any) -> nn.Module:
        fits.append(kwargs["device"])
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(extraction, "fit", fit)
    res = _invoke("extract", "--pool", "mnist:val", "--n-test", "20", "--budgets", "20",
                  "--arch", "mlp", "--steps", "2", "--transfer", "5", "--device", "cuda:3",
                  "--json", str(tmp_path / "e.json"))
    assert res.exit_code == 0, res.output
    assert stand_in == ["cuda:3"]
    assert victim.moves == [STAND_IN] and fits == [STAND_IN]


def test_audit_trains_every_model_on_the_device(
        stand_in: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import bastion.privacy.shadows as shadows

    trained: list[Any] = []
    real_train = shadows.train

    def train(*args: Any, **kwargs: Any) -> Any:
        trained.append(kwargs["device"])
        return real_train(*args, **kwargs)

    monkeypatch.setattr(shadows, "train", train)
    res = _invoke("audit", "--data", "mnist", "--pool", "40", "--population", "10",
                  "--shadows", "2", "--epochs", "1", "--workers", "1", "--device", "cuda:2",
                  "--json", str(tmp_path / "mi.json"))
    assert res.exit_code == 0, res.output
    assert stand_in == ["cuda:2"]
    # a worker gets the device as a string (it crosses to a spawned process as is)
    assert trained == [str(STAND_IN)] * 3 and torch.device(trained[0]) == STAND_IN


def test_dp_audit_trains_on_the_device(stand_in: list[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("opacus")
    import bastion.privacy.dp_audit as dp_audit

    trained: list[Any] = []
    real_train = dp_audit.train

    def train(*args: Any, **kwargs: Any) -> Any:
        trained.append(kwargs["device"])
        return real_train(*args, **kwargs)

    monkeypatch.setattr(dp_audit, "train", train)
    res = _invoke("dp-audit", "--data", "mnist", "--n", "120", "--canaries", "40",
                  "--noise", "4.0", "--epochs", "1", "--device", "mps")
    assert res.exit_code == 0, res.output
    assert stand_in == ["mps"] and trained == [STAND_IN]


def test_invert_moves_each_model_to_the_device(stand_in: list[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import bastion.privacy.mi_cli as mi_cli

    models: list[Recorder] = []

    def load(spec: str) -> Recorder:
        models.append(Recorder())
        return models[-1]

    monkeypatch.setattr(mi_cli, "_load_model", load)
    res = _invoke("invert", "--model", "a", "--model", "b", "--n", "200", "--steps", "2",
                  "--device", "auto")
    assert res.exit_code == 0, res.output
    assert stand_in == ["auto"]
    assert [m.moves for m in models] == [[STAND_IN], [STAND_IN]]
