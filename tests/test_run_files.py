"""Files a run reads and writes: resume state checked for tampering and truncation, one
run per output folder, clear messages for wrong checkpoints, model files and paths."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from bastion.cli import app
from bastion.common.state import StateFile, run_lock
from bastion.errors import BastionError, StateError
from bastion.zoo.user import load_from_file

runner = CliRunner()
MODEL = "import torch\n\ndef make_model():\n    return torch.nn.Linear(4, 2)\n"


def _saved(tmp_path: Path) -> Path:
    path = tmp_path / "state.json"
    store = StateFile(path, "fp")
    store.save("0/0", {"correct": [1, 0, 1, 1], "robust": [1, 0, 0, 1]})
    store.save("0/4", {"correct": [1, 1, 1, 1], "robust": [0, 0, 0, 1]})
    return path


def test_a_truncated_state_file_is_refused(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    saved = json.loads(path.read_text())
    saved["units"]["0/4"]["robust"] = saved["units"]["0/4"]["robust"][:2]  # valid JSON
    path.write_text(json.dumps(saved))
    with pytest.raises(StateError, match="does not match"):
        StateFile(path, "fp")


def test_an_intact_state_file_resumes(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    assert StateFile(path, "fp").done("0/4") == {"correct": [1, 1, 1, 1],
                                                 "robust": [0, 0, 0, 1]}


@pytest.mark.parametrize("content", [b"[1, 2, 3]", b"\xff\xfe\x00garbage\x81",
                                     b'{"fingerprint": "fp", "units": [1]}', b"null"])
def test_a_state_file_of_the_wrong_shape_is_refused_clearly(tmp_path: Path,
                                                            content: bytes) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateError, match="delete it to start over"):
        StateFile(path, "fp")


def test_concurrent_saves_to_one_state_file_do_not_collide(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    errors: list[BaseException] = []

    def work(tag: str) -> None:
        try:
            store = StateFile(path, "fp")
            for i in range(30):
                store.save(f"{tag}/{i}", {"correct": [1]})
        except BaseException as exc:  # collected: the test reports what went wrong
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(str(t),)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert not list(tmp_path.glob("*.tmp*"))


def test_a_second_run_on_one_folder_is_refused_while_the_first_holds_it(
        tmp_path: Path) -> None:
    with run_lock(tmp_path), pytest.raises(StateError, match="another run is using"), \
            run_lock(tmp_path):
        pass
    with run_lock(tmp_path):  # free again once the first run ended
        pass


@pytest.mark.parametrize("make", [
    lambda p: p.write_bytes(b""),
    lambda p: torch.save(torch.nn.Linear(4, 2), p),
    lambda p: torch.save(torch.zeros(3), p),
    lambda p: torch.save([1, 2], p),
    lambda p: p.write_text("weights go here"),
], ids=["empty", "whole-model", "tensor", "list", "text"])
def test_a_checkpoint_that_is_not_a_state_dict_gets_a_clear_message(tmp_path: Path,
                                                                    make) -> None:
    model = tmp_path / "model.py"
    model.write_text(MODEL)
    ckpt = tmp_path / "ckpt.pt"
    make(ckpt)
    with pytest.raises(BastionError, match="state_dict"):
        load_from_file(str(model), ckpt)


@pytest.mark.parametrize("source", ["def make_model(:\n", "def make_model():\n    1 / 0\n",
                                    "raise ImportError('no such lib')\n"])
def test_a_broken_model_file_gets_a_clear_message(tmp_path: Path, source: str) -> None:
    model = tmp_path / "model.py"
    model.write_text(source)
    with pytest.raises(BastionError, match=r"model\.py"):
        load_from_file(str(model))


@pytest.mark.parametrize("flag", ["--out", "--json"])
def test_unusable_output_paths_fail_before_the_run(tmp_path: Path, flag: str) -> None:
    model = tmp_path / "model.py"
    model.write_text("def make_model():\n    raise SystemExit('the run started')\n")
    target = tmp_path / "taken"
    if flag == "--out":
        target.write_text("a file, not a folder")
    else:
        target.mkdir()
    got = runner.invoke(app, ["evaluate", "--model", str(model), flag, str(target),
                              "--no-progress"])
    assert got.exit_code == 2, got.output
    assert str(target.name) in got.output and "the run started" not in got.output
