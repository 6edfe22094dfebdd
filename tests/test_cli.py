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


# ---------------------------------------------------------------- --attack NAME:key=value


def test_attack_options_on_the_command_line_reach_the_attack(tmp_path):
    out = tmp_path / "r.json"
    res = invoke("evaluate", "--model", "advertorch-lenet5-std", "--samples", "10",
                 "--attack", "pgd:steps=3,loss=margin,random_start=false", "--attack", "fgsm",
                 "--no-progress", "--json", str(out))
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())
    assert got["n"] == 10  # --samples is --n
    assert set(got["per_attack"]) == {"pgd-3", "fgsm"}
    params = got["params"]["attacks"]["pgd-3"]
    assert (params["steps"], params["loss"], params["random_start"]) == (3, "margin", False)
    assert isinstance(got["flags"], list) and got["probe"]["n"] == 10


def test_unknown_attack_key_lists_the_valid_ones():
    res = invoke("evaluate", "--model", "advertorch-lenet5-std", "--n", "5", "--attack",
                 "pgd:stepz=3", "--no-progress")
    assert res.exit_code == 2
    assert "no parameter stepz" in res.output and "steps" in res.output


def test_shared_options_apply_where_the_attack_takes_them():
    from bastion.jobs import EvalSpec, build_attacks

    built = build_attacks(EvalSpec(model="m", attacks=("fgsm", "pgd", "pgd:steps=7,restarts=2"),
                                   steps=5, restarts=3))
    assert list(built) == ["fgsm", "pgd-5", "pgd-7"]
    assert (built["pgd-5"].restarts, built["pgd-7"].restarts) == (3, 2)  # own key wins
    same = build_attacks(EvalSpec(model="m", attacks=("pgd", "pgd:loss=margin")))
    assert list(same) == ["pgd-40", "pgd-40-2"] and same["pgd-40-2"].loss == "margin"


def test_bad_attack_specs_are_config_errors():
    import pytest

    from bastion.errors import ConfigError
    from bastion.jobs import EvalSpec, build_attacks

    cases = {("pgd:steps",): "not key=value", ("pgd:steps=1.5",): "integer",
             ("pgd:early_stop=1",): "true or false", ("pgd:steps=2,steps=3",): "twice",
             ("nope",): "unknown attack"}
    for attacks, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            build_attacks(EvalSpec(model="m", attacks=attacks))
    with pytest.raises(ConfigError, match="--steps was given but none"):
        build_attacks(EvalSpec(model="m", attacks=("fgsm",), steps=5))


def test_every_registered_attack_is_buildable_by_name_with_a_stable_label():
    from bastion.attacks import REGISTRY
    from bastion.jobs import EvalSpec, build_attacks

    built = build_attacks(EvalSpec(model="m", attacks=tuple(REGISTRY)))
    assert len(built) == len(REGISTRY)
    for label, attack in built.items():
        assert label.split("-")[0] == type(attack).name.split("-")[0]


def test_attack_values_parse_to_python_types():
    from hypothesis import given
    from hypothesis import strategies as st

    from bastion.evaluation.attack_spec import parse_attack

    @given(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False))
    def round_trip(i, f):
        name, params = parse_attack(f"x:a={i},b={f!r},c=True,d=none,e=ce")
        assert name == "x"
        assert params == {"a": i, "b": f, "c": True, "d": None, "e": "ce"}

    round_trip()
