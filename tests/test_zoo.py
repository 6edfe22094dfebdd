"""The model zoo: architectures, the registry of named checkpoints, and the third-party
advertorch LeNet5 checkpoints (which must load and be accurate)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

import bastion.data.base
import bastion.zoo.registry as registry
from bastion import zoo
from bastion.data import LOADERS
from bastion.errors import ConfigError, MissingDependencyError
from bastion.zoo import ALIASES, ARCHITECTURES, ENTRIES

ADVERTORCH = ("advertorch-lenet5-std", "advertorch-lenet5-adv")
#: input shape (C, H, W) of each architecture's defaults; MNIST's unless listed
SHAPES = {"cifar-small": (3, 32, 32)}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architecture_maps_its_images_to_10_logits(arch: str) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = zoo.build(arch).eval()
    x = torch.rand(2, *SHAPES.get(arch, (1, 28, 28)), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 10)
    assert out.dtype == torch.float32
    assert bool(torch.isfinite(out).all())
    assert not torch.equal(out[0], out[1])  # the output depends on the input


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_architecture_takes_the_number_of_classes(arch: str) -> None:
    model = zoo.build(arch, num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.rand(2, *SHAPES.get(arch, (1, 28, 28)))).shape == (2, 3)


def test_unknown_architecture_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown architecture 'resnet'; available: .*lenet5"):
        zoo.build("resnet")


def test_entries_are_well_formed() -> None:
    assert set(ADVERTORCH) <= set(ENTRIES)
    for name, entry in ENTRIES.items():
        assert entry.name == name
        assert entry.arch in ARCHITECTURES, name
        assert entry.dataset in LOADERS, name
        assert entry.kind in ("bundled", "package", "broken"), name
        assert (entry.kind == "broken") == name.startswith("broken-"), name
        assert (entry.wrap is not None) == (entry.kind == "broken"), name
        assert entry.description
    for alias, target in ALIASES.items():
        assert target in ENTRIES, f"alias {alias} points at unknown {target}"
        assert alias not in ENTRIES
    assert zoo.names() == [*ENTRIES, *ALIASES]


def installed(name: str) -> bool:
    try:
        return ENTRIES[name].checkpoint().exists()
    except MissingDependencyError:
        return False


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_every_entry_loads_in_eval_mode(name: str) -> None:
    # Every entry's weights ship with bastion or a package scripts/env.sh installs.
    assert installed(name), f"weights of {name} are missing"
    model = zoo.load(name)
    assert not model.training
    assert not any(m.training for m in model.modules())
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    outputs = []
    for again in (model, zoo.load(name)):
        # broken-random draws from the global random state: same seed, same output
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(0)
            outputs.append(again(x))
    a, b = outputs
    assert a.shape == (3, 10)
    assert torch.equal(a, b)  # deterministic: same weights, no dropout


@pytest.mark.parametrize("name", ADVERTORCH)
def test_advertorch_checkpoints_are_installed(name: str) -> None:
    path = ENTRIES[name].checkpoint()
    assert path.exists() and path.suffix == ".pt"
    assert ENTRIES[name].kind == "package" and ENTRIES[name].arch == "lenet5"


def test_alias_resolves_to_its_entry() -> None:
    assert zoo.resolve("mnist-robust") is ENTRIES[ALIASES["mnist-robust"]]
    assert zoo.resolve("advertorch-lenet5-adv") is ENTRIES["advertorch-lenet5-adv"]


def test_unknown_model_lists_every_name() -> None:
    with pytest.raises(ConfigError, match="unknown model 'lenet'; registered models: ") as info:
        zoo.load("lenet")
    for name in zoo.names():
        assert name in str(info.value)
    assert "FILE.py[:factory], package.module:factory" in str(info.value)


@pytest.fixture
def checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty stand-in for the package's bundled checkpoint folder."""
    monkeypatch.setattr(registry, "CHECKPOINTS", tmp_path)
    return tmp_path


def test_missing_bundled_checkpoint_says_how_to_rebuild_it(checkpoints: Path) -> None:
    with pytest.raises(MissingDependencyError,
                       match=r"mnist-smallcnn-std\.pt is missing; rebuild it with "
                             r"'bastion zoo train mnist-smallcnn-std'"):
        zoo.load("mnist-smallcnn-std")


def test_bundled_checkpoint_loads_with_its_card(checkpoints: Path) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        trained = zoo.build("smallcnn")
    torch.save(trained.state_dict(), checkpoints / "mnist-smallcnn-std.pt")
    card = {"epochs": 1, "clean_accuracy": 0.5}
    (checkpoints / "mnist-smallcnn-std.json").write_text(json.dumps(card))
    model = zoo.load("mnist-smallcnn-std")
    assert not model.training  # dropout off
    for (k, v), (k2, v2) in zip(model.state_dict().items(), trained.state_dict().items(),
                                strict=True):
        assert k == k2 and torch.equal(v, v2)
    assert ENTRIES["mnist-smallcnn-std"].info() == card
    assert ENTRIES["mnist-lenet5-pgd"].info() == {}  # no card: empty


def test_checkpoint_of_the_wrong_architecture_fails_loudly(checkpoints: Path) -> None:
    torch.save(zoo.build("mlp").state_dict(), checkpoints / "mnist-smallcnn-std.pt")
    with pytest.raises(RuntimeError, match="state_dict"):
        zoo.load("mnist-smallcnn-std")


def test_missing_advertorch_package_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        if name == "advertorch_examples":
            return None
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(bastion.data.base.importlib.util, "find_spec", find_spec)
    with pytest.raises(MissingDependencyError,
                       match=r"pip install --no-deps advertorch==0\.2\.3"):
        zoo.load("advertorch-lenet5-adv")


@pytest.fixture(scope="module")
def mnist_500() -> tuple[torch.Tensor, torch.Tensor]:
    data = bastion.data.load("mnist", "test", n=500)
    return data.x, data.y


@pytest.mark.parametrize("name", ADVERTORCH)
def test_advertorch_lenet5_is_accurate_on_clean_mnist(
    name: str, mnist_500: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = mnist_500
    model = zoo.load(name)
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    assert accuracy >= 0.97
