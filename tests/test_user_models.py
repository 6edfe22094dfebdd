"""``--model`` beyond the zoo: Python files, package.module:callable, TorchScript,
torch.export archives and robustbench: names; ``--device``; the out-of-memory back-off.

One small convolutional net is trained on scikit-learn's digits (1x8x8, a fraction of a
second) and saved in every form; the identical-numbers test uses a bundled zoo model.
"""

from __future__ import annotations

import json
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from bastion import data
from bastion.cli import app
from bastion.errors import (
    BastionWarning,
    ConfigError,
    InputError,
    MissingDependencyError,
    ModelError,
)
from bastion.evaluation.backoff import is_out_of_memory, with_backoff
from bastion.evaluation.runner import evaluate
from bastion.jobs import parse_device
from bastion.threat import ThreatModel
from bastion.zoo import formats
from bastion.zoo.registry import load as load_zoo
from bastion.zoo.user import describe, load_any

runner = CliRunner()

ARCH = '''
import torch
from torch import nn


class ToyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def make_model():
    return ToyNet()


def make_number():
    return 3


def make_failing():
    raise ValueError("no weights here")


NOT_CALLABLE = 7
'''


def _train_toy(model: nn.Module) -> nn.Module:
    """About 90% digits test accuracy in 40 Adam steps."""
    train = data.load("digits", "train")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for p in model.parameters():
            nn.init.normal_(p, std=0.1)
        opt = torch.optim.Adam(model.parameters(), lr=2e-2)
        for _ in range(40):
            opt.zero_grad()
            nn.functional.cross_entropy(model(train.x), train.y).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The trained toy net as: an architecture file + state_dict, TorchScript (no
    suffix: found by content), a torch.export archive, and one with a fixed batch."""
    root = tmp_path_factory.mktemp("toy")
    (root / "toyarch.py").write_text(ARCH)
    sys.path.insert(0, str(root))
    try:
        import toyarch
    finally:
        sys.path.remove(str(root))
    model = _train_toy(toyarch.ToyNet())
    x = torch.rand(4, 1, 8, 8)
    torch.save(model.state_dict(), root / "toy.pt")
    torch.jit.trace(model, x).save(str(root / "toy_scripted"))
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes={"x": {0: batch}}),
                      str(root / "toy.pt2"))
    torch.export.save(torch.export.export(model, (x,)), str(root / "fixed.pt2"))
    del sys.modules["toyarch"]  # later imports must find it through the cwd
    return {"root": root, "file": root / "toyarch.py", "weights": root / "toy.pt",
            "script": root / "toy_scripted", "export": root / "toy.pt2",
            "fixed": root / "fixed.pt2"}


# -- every form loads, and gives the same logits ---------------------------------------


def test_each_form_loads_to_the_same_function(toy, monkeypatch):
    monkeypatch.chdir(toy["root"])
    monkeypatch.delitem(sys.modules, "toyarch", raising=False)
    x = data.load("digits", "test", 32).x
    forms = {
        "file": load_any(f"{toy['file']}:make_model", toy["weights"]),
        "callable": load_any("toyarch:make_model", toy["weights"]),
        "torchscript": load_any(str(toy["script"])),
        "export": load_any(str(toy["export"])),
    }
    reference = forms["file"](x)
    for name, model in forms.items():
        assert not model.training, name
        assert torch.equal(model(x), reference), name
    assert formats.file_format(toy["script"]) == "torchscript"
    assert formats.file_format(toy["export"]) == "export"
    assert formats.file_format(toy["weights"]) == "weights"
    assert describe(str(toy["script"]))[0] == "torchscript"
    assert describe("toyarch:make_model")[0] == "callable"
    assert describe("mnist-lenet5-pgd")[0] == "bundled"
    # torch.export refuses .eval(); bastion's wrapper takes it, alone or in a Sequential.
    assert not nn.Sequential(nn.Identity(), forms["export"]).train().eval()[1].training


def test_a_module_attribute_is_taken_as_it_is(tmp_path, monkeypatch):
    (tmp_path / "holder.py").write_text("import torch\nNET = torch.nn.Linear(4, 2)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "holder", raising=False)
    model, how = formats.load_callable("holder:NET")
    assert isinstance(model, nn.Linear) and how == "module attribute"


# -- identical numbers through the command line -----------------------------------------


def _evaluate(model: str, out: Path, *extra: str) -> dict:
    res = runner.invoke(app, [
        "evaluate", "--model", model, *extra, "--n", "24", "--eps", "0.35", "--attack",
        "fgsm", "--attack", "pgd", "--steps", "4", "--sweep", "0.2", "--mean", "0",
        "--std", "1", "--batch-size", "12", "--no-progress", "--json", str(out)],
        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


def test_a_zoo_model_gives_identical_numbers_in_every_form(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = load_zoo("mnist-lenet5-pgd")
    x = torch.rand(3, 1, 28, 28)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    torch.jit.trace(model, x).save(str(tmp_path / "lenet.bin"))
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes={
        "x": {0: torch.export.Dim("batch")}}), str(tmp_path / "lenet.pt2"))
    (tmp_path / "zoo_file.py").write_text(
        "from bastion.zoo.models import LeNet5\n\ndef build():\n    return LeNet5()\n")
    runs = {
        "zoo": _evaluate("mnist-lenet5-pgd", tmp_path / "a.json"),
        "state_dict": _evaluate("bastion.zoo.models:LeNet5", tmp_path / "b.json",
                                "--weights", str(tmp_path / "w.pt")),
        "file": _evaluate("zoo_file.py:build", tmp_path / "c.json",
                          "--checkpoint", "w.pt", "--device", "auto"),
        "torchscript": _evaluate("lenet.bin", tmp_path / "d.json"),
        "export": _evaluate("lenet.pt2", tmp_path / "e.json"),
    }
    keys = ("n", "clean_accuracy", "robust_accuracy", "per_attack", "sweep")
    first = {k: runs["zoo"][k] for k in keys}
    assert first["robust_accuracy"] < first["clean_accuracy"]  # the attacks did something
    for name, got in runs.items():
        assert {k: got[k] for k in keys} == first, name
    kinds = {name: got["model"]["kind"] for name, got in runs.items()}
    assert kinds == {"zoo": "bundled", "state_dict": "callable", "file": "file",
                     "torchscript": "torchscript", "export": "export"}


def _diagnose(model: str, out: Path, *extra: str) -> dict:
    res = runner.invoke(app, [
        "diagnose", "--model", model, *extra, "--data", "digits", "--n", "30", "--eps",
        "0.1", "--steps", "5", "--square-queries", "30", "--black-box-points", "5",
        "--surrogate", "none", "--no-progress", "--json", str(out)], catch_exceptions=False)
    assert res.exit_code in (0, 3), res.output  # 3: a check failed on the toy net
    return json.loads(out.read_text())


def test_diagnose_gives_identical_numbers_for_the_file_and_torchscript(toy, tmp_path):
    by_file = _diagnose(f"{toy['file']}:make_model", tmp_path / "f.json",
                        "--checkpoint", str(toy["weights"]))
    by_script = _diagnose(str(toy["script"]), tmp_path / "s.json")
    assert by_file["clean_accuracy"] > 0.5
    for key in ("clean_accuracy", "curves"):
        assert by_script[key] == by_file[key], key
    assert ([c["verdict"] for c in by_script["checks"]]
            == [c["verdict"] for c in by_file["checks"]])
    assert by_script["model"]["kind"] == "torchscript"


def _certify(model: str, out: Path, *extra: str) -> dict:
    res = runner.invoke(app, [
        "certify", "--model", model, *extra, "--data", "digits", "--n", "20", "--eps",
        "0.1", "--steps", "3", "--json", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


def test_certify_gives_identical_numbers_for_the_file_and_torchscript(toy, tmp_path):
    smoothing = ("--method", "smoothing", "--sigma", "0.25", "--n0", "20", "--samples",
                 "100", "--batch-size", "200")
    by_file = _certify(f"{toy['file']}:make_model", tmp_path / "f.json",
                       "--checkpoint", str(toy["weights"]), *smoothing)
    by_script = _certify(str(toy["script"]), tmp_path / "s.json", *smoothing)
    for key in ("clean_accuracy", "certified_accuracy", "empirical_robust_accuracy",
                "sweep", "smoothing"):
        if key == "smoothing":  # its throughput is a timing
            by_file[key].pop("noisy_samples_per_second")
            by_script[key].pop("noisy_samples_per_second")
        assert by_script[key] == by_file[key], key
    # Bound methods read the model layer by layer: the Python form works, the compiled
    # form says what to do instead.
    assert _certify(f"{toy['file']}:make_model", tmp_path / "c.json", "--checkpoint",
                    str(toy["weights"]), "--method", "crown")["n"] == 20
    res = runner.invoke(app, ["certify", "--model", str(toy["script"]), "--data", "digits",
                              "--n", "5", "--method", "crown"])
    assert res.exit_code == 2 and "TorchScript" in res.output and "smoothing" in res.output


# -- clear errors ----------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "error", "says"), [
    ("missing/net.pt2", ConfigError, "does not exist"),
    ("toyarch:make_number", ConfigError, "returned int, not a torch.nn.Module"),
    ("toyarch:make_failing", ConfigError, "ValueError: no weights here"),
    ("toyarch:NOT_CALLABLE", ConfigError, "neither an nn.Module nor a callable"),
    ("toyarch:make_nothing", ConfigError, "has no attribute 'make_nothing'"),
    ("no_such_module_x:make", ConfigError, "cannot import 'no_such_module_x'"),
])
def test_bad_model_specs_say_what_to_do(toy, monkeypatch, spec, error, says):
    monkeypatch.chdir(toy["root"])
    monkeypatch.delitem(sys.modules, "toyarch", raising=False)
    with pytest.raises(error, match=says):
        load_any(spec)


def test_bad_model_files_say_what_to_do(toy, tmp_path):
    broken = tmp_path / "broken.ts"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("broken/constants.pkl", b"not a pickle")
        archive.writestr("broken/code/__torch__/m.py", b"garbage(")
    with pytest.raises(InputError, match=r"torch\.jit\.load failed.*re-save it"):
        load_any(str(broken))
    with pytest.raises(InputError, match=r"--checkpoint .*toy\.pt"):
        load_any(str(toy["weights"]))  # weights only: needs an architecture
    other = tmp_path / "notes.bin"
    other.write_bytes(b"\x00\x01 plain bytes")
    with pytest.raises(InputError, match="not a model file bastion can read"):
        load_any(str(other))
    with pytest.raises(InputError, match=r"exactly 4 inputs.*Dim\('batch'\)"):
        load_any(str(toy["fixed"]))
    with pytest.raises(ConfigError, match="--checkpoint does not apply"):
        load_any(str(toy["script"]), toy["weights"])
    with pytest.raises(ConfigError, match="unknown model 'lenet'"):
        load_any("lenet")


def test_a_model_of_the_wrong_input_shape_fails_at_the_first_batch(toy, tmp_path):
    # The digits net (1x8x8) on MNIST (1x28x28): refused before any attack, with advice.
    for command in (["evaluate", "--no-progress"], ["diagnose"], ["certify"]):
        res = runner.invoke(app, [*command, "--model", str(toy["script"]), "--n", "4"])
        assert res.exit_code == 2, (command, res.output)
        flat = " ".join(res.output.split())
        assert "failed on inputs of shape (4, 1, 28, 28)" in flat, command
        assert "--resize" in flat


# -- robustbench: (not installed here; the real loader runs against a stand-in) -------


def test_robustbench_names_are_parsed_and_checked():
    assert formats.parse_robustbench("robustbench:cifar10/Linf/Carmon2019Unlabeled") == (
        "cifar10", "Linf", "Carmon2019Unlabeled")
    assert formats.parse_robustbench("robustbench:CIFAR100/l2/X")[:2] == ("cifar100", "L2")
    for bad in ("robustbench:Carmon2019", "robustbench:cifar10//X",
                "robustbench:cifar10/Linf/X/Y"):
        with pytest.raises(ConfigError, match="robustbench:DATASET/THREAT/NAME"):
            formats.parse_robustbench(bad)
    with pytest.raises(ConfigError, match="not one of Linf, L2, corruptions"):
        formats.parse_robustbench("robustbench:cifar10/L1/X")


def test_robustbench_missing_says_how_to_install_and_that_it_needs_the_network(monkeypatch):
    monkeypatch.setitem(sys.modules, "robustbench", None)  # import fails, as when absent
    monkeypatch.setitem(sys.modules, "robustbench.utils", None)
    with pytest.raises(MissingDependencyError, match=r"pip install .*robustbench.*network"):
        load_any("robustbench:cifar10/Linf/Standard")
    res = runner.invoke(app, ["evaluate", "--model", "robustbench:cifar10/Linf/Standard",
                              "--no-progress"])
    assert res.exit_code == 2 and "robustbench" in res.output


def test_robustbench_loader_calls_load_model_of_a_stand_in(monkeypatch, tmp_path):
    calls: list[dict] = []

    def load_model(**kwargs):
        calls.append(kwargs)
        if kwargs["model_name"] == "Offline":
            raise OSError("could not download: no network")
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).train()

    package = types.ModuleType("robustbench")
    utils = types.ModuleType("robustbench.utils")
    utils.load_model = load_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "robustbench", package)
    monkeypatch.setitem(sys.modules, "robustbench.utils", utils)
    monkeypatch.chdir(tmp_path)
    model = load_any("robustbench:cifar10/Linf/Standard")
    assert not model.training and model(torch.rand(2, 3, 2, 2)).shape == (2, 3)
    assert calls == [{"model_name": "Standard", "dataset": "cifar10", "threat_model": "Linf",
                      "model_dir": "models"}]
    assert describe("robustbench:cifar10/Linf/Standard")[0] == "robustbench"
    with pytest.raises(ConfigError, match=r"no network.*needs the network"):
        load_any("robustbench:cifar10/Linf/Offline")
    with pytest.raises(ConfigError, match="does not apply"):
        load_any("robustbench:cifar10/Linf/Standard", tmp_path / "w.pt")


# -- devices ---------------------------------------------------------------------------


def test_devices_are_checked_and_auto_picks_what_exists():
    assert parse_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and parse_device("auto").type == "mps":
        expected = "mps"
    assert parse_device("auto").type == expected
    with pytest.raises(ConfigError, match="use cpu, cuda, cuda:N, mps or auto"):
        parse_device("gpu0")
    with pytest.raises(ConfigError, match="not supported"):
        parse_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            parse_device("cuda:1")


# -- out-of-memory back-off ------------------------------------------------------------


class RunsOutOfMemory(nn.Module):
    """``net``, but a forward of more than ``limit`` inputs raises ``error``: what a GPU
    does when a batch does not fit."""

    def __init__(self, net: nn.Module, limit: int, error: Exception) -> None:
        super().__init__()
        self.net, self.limit, self.error = net, limit, error
        self.refused = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            self.refused += 1
            raise self.error
        return self.net(x)


@pytest.mark.parametrize("error", [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"),
])
def test_out_of_memory_halves_the_batch_and_keeps_the_numbers(toy, error):
    net = load_any(f"{toy['file']}:make_model", toy["weights"])
    test = data.load("digits", "test", 64)
    threat = ThreatModel(norm="Linf", eps=0.1)
    from bastion.attacks.pgd import PGD

    def run(model: nn.Module, batch_size: int):
        return evaluate(model, test, threat, [PGD(steps=5)], eps_sweep=(0.05,),
                        batch_size=batch_size, seed=3)

    undisturbed = run(net, 64)  # never runs out of memory
    flaky = RunsOutOfMemory(net, limit=20, error=error).eval()
    with pytest.warns(BastionWarning) as caught:
        backed = run(flaky, 64)
    said = [str(w.message) for w in caught]
    assert [s.split(";")[0] for s in said] == ["out of device memory at batch size 64",
                                                "out of device memory at batch size 32"]
    assert "going on at batch size 16" in said[-1]
    assert flaky.refused >= 2  # 64 and 32 were both refused
    got, want = backed.to_dict(), undisturbed.to_dict()
    for key in ("n", "clean_accuracy", "robust_accuracy", "per_attack", "sweep"):
        assert got[key] == want[key], key
    assert got["params"]["batch_size"] == 16 and got["params"]["batch_size_asked"] == 64
    assert 0 < got["robust_accuracy"] < got["clean_accuracy"]


def test_a_backed_off_run_resumes_from_its_file(toy, tmp_path):
    net = load_any(f"{toy['file']}:make_model", toy["weights"])
    test = data.load("digits", "test", 40)
    flaky = RunsOutOfMemory(net, limit=20, error=torch.cuda.OutOfMemoryError("CUDA out of "
                                                                              "memory")).eval()
    state = tmp_path / "run.json"

    def run():
        with pytest.warns(BastionWarning, match="going on at batch size 20"):
            return evaluate(flaky, test, ThreatModel(norm="Linf", eps=0.1), batch_size=40,
                            seed=1, state=state).to_dict()

    first = run()
    assert state.exists()
    again = run()  # resumes from the file: same numbers
    assert again["robust_accuracy"] == first["robust_accuracy"]
    assert again["params"]["batch_size"] == 20


def test_under_torchrun_auto_means_this_rank_s_gpu(monkeypatch):
    from bastion.evaluation.shard import Shard, rank_device

    shard = Shard(rank=1, world_size=2, local_rank=1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert rank_device("auto", shard) == "cuda:1"
    assert rank_device("cuda", shard) == "cuda:1"
    assert rank_device("auto", None) == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert rank_device("auto", shard) == "auto"


def test_back_off_stops_at_one_and_leaves_other_errors_alone():
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory")
    sizes: list[int] = []

    def always(size: int) -> None:
        sizes.append(size)
        raise oom

    with pytest.warns(BastionWarning), pytest.raises(ModelError, match="even at batch size 1"):
        with_backoff(always, 5)
    assert sizes == [5, 2, 1]
    with pytest.raises(ModelError, match=r"agree.*--batch-size 4"):
        with_backoff(always, 8, allowed=False, why_not="processes must agree")

    def broken(size: int) -> None:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        with_backoff(broken, 8)
    assert with_backoff(lambda size: size * 2, 8) == (16, 8)
    assert is_out_of_memory(oom) and not is_out_of_memory(ValueError("out of memory"))
