"""The command line: the evaluate contract, model files, errors, the zoo listing."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from bastion.cli import app
from bastion.zoo import LeNet5, load

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_evaluate_writes_the_json_contract(tmp_path):
    out = tmp_path / "r.json"
    res = invoke("evaluate", "--model", "advertorch-lenet5-std", "--data", "mnist", "--split",
                 "test", "--n", "40", "--norm", "Linf", "--eps", "0.3", "--attack", "fgsm",
                 "--attack", "pgd", "--steps", "5", "--seed", "1", "--no-progress",
                 "--json", str(out))
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())
    for key in ("clean_accuracy", "robust_accuracy", "per_attack", "n", "seconds"):
        assert key in got
    assert got["n"] == 40
    assert set(got["per_attack"]) == {"fgsm", "pgd-5"}
    assert got["robust_accuracy"] <= min(got["per_attack"].values())
    assert got["clean_accuracy"] >= 0.9
    assert got["model"]["kind"] == "package"
    assert got["params"]["attacks"]["pgd-5"]["steps"] == 5


def test_model_given_as_a_python_file_with_checkpoint(tmp_path):
    ckpt = tmp_path / "weights.pt"
    torch.save(load("advertorch-lenet5-std").state_dict(), ckpt)
    source = tmp_path / "mymodel.py"
    source.write_text("from bastion.zoo import LeNet5\n\ndef build():\n    return LeNet5()\n")
    out = tmp_path / "r.json"
    res = invoke("evaluate", "--model", f"{source}:build", "--checkpoint", str(ckpt),
                 "--n", "20", "--attack", "fgsm", "--no-progress", "--json", str(out))
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())
    assert got["model"]["kind"] == "file"
    assert got["clean_accuracy"] >= 0.9  # the checkpoint was really loaded
    assert isinstance(LeNet5(), torch.nn.Module)


def test_model_file_without_factory_says_what_to_define(tmp_path):
    source = tmp_path / "empty.py"
    source.write_text("x = 1\n")
    res = invoke("evaluate", "--model", str(source), "--n", "5", "--no-progress")
    assert res.exit_code == 2
    assert "make_model" in res.output


def test_unknown_model_lists_names():
    res = invoke("evaluate", "--model", "no-such-model", "--n", "5", "--no-progress")
    assert res.exit_code == 2
    assert "advertorch-lenet5-adv" in res.output


def test_bad_norm_and_eps_are_explained():
    res = invoke("evaluate", "--model", "advertorch-lenet5-std", "--norm", "linf", "--n", "5",
                 "--no-progress")
    assert res.exit_code == 2 and "Did you mean" in res.output
    res = invoke("evaluate", "--model", "advertorch-lenet5-std", "--eps", "-1", "--n", "5",
                 "--no-progress")
    assert res.exit_code == 2 and "eps" in res.output


def test_out_writes_card_and_record(tmp_path):
    out = tmp_path / "run"
    res = invoke("evaluate", "--model", "advertorch-lenet5-std", "--n", "20", "--attack",
                 "fgsm", "--sweep", "0.1,0.2", "--no-progress", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert (out / "card.json").exists() and (out / "card.html").exists()
    lines = [json.loads(line) for line in (out / "record.jsonl").read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["run", "evaluation"]
    assert lines[0]["versions"]["torch"].startswith("2.13")
    assert all(line["run_id"] == lines[0]["run_id"] for line in lines)
    card = json.loads((out / "card.json").read_text())
    assert [p["eps"] for p in card["entries"][0]["evaluation"]["sweep"]] == [0.1, 0.2, 0.3]
    assert any(Path(p).name.endswith(".json") for p in (out / "state").iterdir())


def test_zoo_list_json_names_every_entry():
    res = invoke("zoo", "list", "--json")
    assert res.exit_code == 0
    listed = json.loads(res.output)
    names = {m["name"] for m in listed["models"]}
    assert {"advertorch-lenet5-std", "advertorch-lenet5-adv", "mnist-lenet5-pgd",
            "mnist-smallcnn-std"} <= names
    assert listed["aliases"]["mnist-robust"] in names


def test_unusable_device_is_explained():
    res = invoke("evaluate", "--model", "advertorch-lenet5-std", "--n", "5", "--device",
                 "warp-drive", "--no-progress")
    assert res.exit_code == 2 and "unknown device" in res.output
    if not torch.cuda.is_available():
        res = invoke("evaluate", "--model", "advertorch-lenet5-std", "--n", "5", "--device",
                     "cuda", "--no-progress")
        assert res.exit_code == 2 and "no CUDA GPU" in res.output
