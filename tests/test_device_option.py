"""``--device`` on train and ood: the same option and auto rule as evaluate, and the device
reaches the model (checked on the CPU with a stand-in for the device parser)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import bastion.jobs
from bastion.cli import app
from bastion.errors import ConfigError
from bastion.train.dist import join


def test_train_accepts_what_evaluate_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert join("cpu").device == torch.device("cpu")
    assert join("auto").device.type in ("cpu", "mps")  # no GPU: auto is not cuda
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        join("cuda:1")
    with pytest.raises(ConfigError, match="unknown device"):
        join("tpu!")


def test_train_on_a_cuda_device_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    chosen: list[Any] = []
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(bastion.jobs, "parse_device", lambda name: torch.device("cuda", 1))
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert join("cuda:1").device == torch.device("cuda", 1) == chosen[0]


@pytest.mark.parametrize("command", [["train"], ["ood"], ["evaluate"], ["certify"],
                                     ["diagnose"], ["poison", "scan"], ["data", "audit"]])
def test_every_model_command_documents_the_same_device_option(command: list[str]) -> None:
    res = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "cuda:N, mps or auto" in " ".join(res.output.split())


def test_ood_moves_the_model_to_the_device_asked_for(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path) -> None:
    asked: list[str] = []

    def fake(name: str) -> torch.device:
        asked.append(name)
        return torch.device("cpu")

    monkeypatch.setattr(bastion.jobs, "parse_device", fake)
    res = CliRunner().invoke(app, ["ood", "--model", "mnist-smallcnn-std", "--ood", "uniform",
                                   "--detectors", "energy", "--n", "20", "--fit", "50",
                                   "--eps", "", "--no-progress", "--device", "cuda:3",
                                   "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert asked == ["cuda:3"]
