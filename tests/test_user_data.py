"""The user's own data: files, image folders, torchvision and Hugging Face names, the
layout/range/label checks, and --mean/--std put inside the model."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from bastion import data
from bastion.cli import app
from bastion.data import checks
from bastion.errors import ConfigError, InputError, MissingDependencyError
from bastion.zoo.normalize import parse_floats, with_normalization

rng = np.random.default_rng(0)


def write_folder(root: Path, sizes: list[tuple[int, int]], classes: int = 3,
                 mode: str = "RGB") -> Path:
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            shape = (h, w, 3) if mode == "RGB" else (h, w)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
                root / f"class{c}" / f"{i}.png")
    return root


def test_uint8_nhwc_npz_is_converted_with_notes(tmp_path):
    x = rng.integers(0, 256, (6, 5, 7, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 2, 0, 1, 2]))
    ds = data.load(str(tmp_path / "d.npz"))
    assert ds.x.shape == (6, 3, 5, 7) and ds.x.dtype == torch.float32
    assert torch.allclose(ds.x[2, 1], torch.from_numpy(x[2, :, :, 1] / 255.0).float())
    assert ds.classes == ("0", "1", "2")
    assert any("NHWC" in n for n in ds.notes) and any("255" in n for n in ds.notes)


def test_pt_file_float_nchw_loads_unchanged(tmp_path):
    x = torch.rand(4, 1, 6, 6)
    torch.save({"x": x, "y": torch.tensor([1, 0, 1, 0])}, tmp_path / "d.pt")
    ds = data.load(str(tmp_path / "d.pt"), n=3, classes=2)
    assert torch.equal(ds.x, x[:3]) and ds.notes == () and ds.classes == ("0", "1")


@pytest.mark.parametrize(("x", "y", "classes", "says"), [
    (np.full((2, 3, 6, 6), 1.5, np.float32), [0, 1], None, "--mean/--std"),
    (np.full((2, 3, 6, 6), 300, np.int32), [0, 1], None, "[0, 255]"),
    (np.full((2, 3, 6, 6), np.nan, np.float32), [0, 1], None, "NaN"),
    (np.zeros((2, 3, 6, 6), np.float32), [0, 5], 3, "--classes"),
    (np.zeros((2, 3, 6, 6), np.float32), [0, -1], None, "labels must be"),
    (np.zeros((2, 3, 5, 3), np.float32), [0, 1], None, "channel axis"),
    (np.zeros((2, 4, 4), np.float32), [0, 1, 1], None, "shape (2,)"),
])
def test_bad_arrays_are_refused_with_what_to_do(tmp_path, x, y, classes, says):
    np.savez(tmp_path / "d.npz", x=x, y=np.array(y))
    with pytest.raises(InputError, match=re.escape(says)):
        data.load(str(tmp_path / "d.npz"), classes=classes)


def test_file_without_x_and_y_names_the_arrays(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((1, 1, 2, 2)))
    with pytest.raises(InputError, match=r"x \(images\) and"):
        data.load(str(tmp_path / "d.npz"))
    torch.save([1, 2], tmp_path / "d.pt")
    with pytest.raises(InputError, match="dict with tensors"):
        data.load(str(tmp_path / "d.pt"))


def test_folder_of_mixed_sizes_needs_resize(tmp_path):
    root = write_folder(tmp_path / "imgs", [(9, 11), (12, 8)])
    with pytest.raises(InputError, match="--resize"):
        data.load(str(root))
    ds = data.load(str(root), resize=(8, 10), n=4)
    assert ds.x.shape == (4, 3, 8, 10)
    assert ds.classes == ("class0", "class1", "class2")
    assert ds.y.tolist() == [0, 1, 2, 0]  # classes dealt in turn, so n spans them all


def test_folder_split_subfolder_and_grayscale(tmp_path):
    write_folder(tmp_path / "set" / "train", [(4, 4)], classes=2, mode="L")
    ds = data.load(str(tmp_path / "set"), "train")
    assert ds.x.shape == (2, 1, 4, 4) and ds.source.endswith("train")


def test_resize_and_classes_refused_for_built_in_sets():
    with pytest.raises(ConfigError, match="your own data"):
        data.load("mnist-sample", resize=(8, 8))


def test_parse_resize():
    assert checks.parse_resize("32") == (32, 32) and checks.parse_resize("24,32") == (24, 32)
    with pytest.raises(ConfigError, match="H,W"):
        checks.parse_resize("a")


def test_torchvision_name_uses_the_stand_in_module(tmp_path, monkeypatch):
    made = {}

    class FakeCIFAR:
        classes = ("cat", "dog")

        def __init__(self, root, train, download):
            made.update(root=root, train=train, download=download)
            self.data = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
            self.targets = [0, 1, 0, 1, 1]

    fake = types.ModuleType("torchvision.datasets")
    fake.CIFAR10 = FakeCIFAR  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    with pytest.raises(ConfigError, match="--data-root"):
        data.load("torchvision:CIFAR10")
    ds = data.load("torchvision:CIFAR10", "train", n=4, root=tmp_path)
    assert made == {"root": str(tmp_path), "train": True, "download": True}
    assert ds.x.shape == (4, 3, 8, 8) and ds.classes == ("cat", "dog")
    with pytest.raises(ConfigError, match="no data set 'Nope'"):
        data.load("torchvision:Nope", root=tmp_path)


def test_hf_name_uses_the_stand_in_module(monkeypatch):
    rows = [{"img": Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)),
             "label": i % 2} for i in range(4)]

    class FakeSet(list):  # type: ignore[type-arg]
        column_names = ("img", "label")
        features = types.MappingProxyType(
            {"label": types.SimpleNamespace(names=["no", "yes"])})

        def select(self, idx):
            return FakeSet(self[i] for i in idx)

    fake = types.ModuleType("datasets")
    fake.load_dataset = lambda name, split: FakeSet(rows)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", fake)
    ds = data.load("hf:someone/pets", "test", n=3)
    assert ds.x.shape == (3, 3, 6, 6) and ds.y.tolist() == [0, 1, 0]
    assert ds.classes == ("no", "yes")


def test_missing_packages_say_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(MissingDependencyError, match="pip install datasets"):
        data.load("hf:x")
    with pytest.raises(MissingDependencyError, match="pip install torchvision"):
        data.load("torchvision:CIFAR10", root=Path("."))


def test_normalization_layer_is_first_and_keeps_pixel_inputs():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    wrapped = with_normalization(net, (0.5,), (0.25,), channels=3)
    x = torch.rand(2, 3, 2, 2)
    assert torch.allclose(wrapped(x), net((x - 0.5) / 0.25))
    assert with_normalization(net, (), (), channels=3) is net
    for mean, std, says in [((0.5,), (), "together"), ((0.1, 0.2), (1.0,), "3 channels"),
                            ((0.1,), (0.0,), "> 0")]:
        with pytest.raises(ConfigError, match=says):
            with_normalization(net, mean, std, channels=3)
    with pytest.raises(ConfigError, match="comma-separated"):
        parse_floats("0.1;0.2", "--mean")


def test_evaluate_cli_on_a_folder_with_normalization(tmp_path):
    root = write_folder(tmp_path / "imgs", [(10, 9), (7, 12)])
    (tmp_path / "net.py").write_text(
        "import torch\n\ndef make_model():\n    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))\n")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, [
        "evaluate", "--model", str(tmp_path / "net.py"), "--data", str(root), "--resize", "8",
        "--mean", "0.5,0.5,0.5", "--std", "0.25", "--eps", "0.03", "--attack", "pgd",
        "--steps", "3", "--no-progress", "--json", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())
    assert got["n"] == 6 and got["data"]["name"] == str(root)
    assert got["model"]["normalization"]["mean"] == [0.5, 0.5, 0.5]
    assert any("255" in note for note in got["data"]["notes"])
    bad = CliRunner().invoke(app, ["evaluate", "--model", str(tmp_path / "net.py"), "--data",
                                   str(root), "--resize", "x"])
    assert bad.exit_code == 2 and "--resize takes" in bad.output


@pytest.mark.parametrize("command", [
    ["diagnose", "--steps", "3", "--square-queries", "20", "--black-box-points", "4"],
    ["certify", "--method", "crown", "--steps", "3"],
])
def test_diagnose_and_certify_take_a_file_with_normalization(tmp_path, command):
    x = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 2] * 2))
    (tmp_path / "net.py").write_text(
        "import torch\n\ndef make_model():\n    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))\n")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, [
        *command, "--model", str(tmp_path / "net.py"), "--data", str(tmp_path / "d.npz"),
        "--n", "6", "--eps", "0.01", "--classes", "3", "--mean", "0.5", "--std", "0.2",
        "--json", str(out)], catch_exceptions=False)
    assert res.exit_code in (0, 3), res.output  # 3: a check flagged the untrained model
    got = json.loads(out.read_text())
    assert got["model"]["normalization"] == {
        "mean": [0.5], "std": [0.2],
        "applied": "inside the model; inputs and eps in [0, 1] pixel units"}
    assert got["data"]["n"] == 6 and any("NHWC" in s for s in got["data"]["notes"])


def test_folder_with_split_folders_needs_one_of_them(tmp_path):
    write_folder(tmp_path / "set" / "train", [(4, 4)], classes=2)
    write_folder(tmp_path / "set" / "test", [(4, 4)], classes=2)
    assert len(data.load(str(tmp_path / "set"), "test")) == 2
    with pytest.raises(ConfigError, match="split folders test, train, not 'val'"):
        data.load(str(tmp_path / "set"), "val")


def test_audit_reads_a_user_file_once_and_train_refuses_it(tmp_path):
    from bastion.poison.cli import load_images
    from bastion.train.data import load_splits

    np.savez(tmp_path / "d.npz", x=rng.random((5, 1, 6, 6)).astype(np.float32),
             y=np.arange(5) % 2)
    x, y, base = load_images(str(tmp_path / "d.npz"), "train,val")
    assert x.shape == (5, 1, 6, 6) and y.tolist() == [0, 1, 0, 1, 0]
    assert base == str(tmp_path / "d.npz")
    with pytest.raises(ConfigError, match="no validation or test split"):
        load_splits(str(tmp_path / "d.npz"), train_n=None, val_n=1, val_holdout=1)


def test_train_splits_from_a_folder_hold_out_validation(tmp_path):
    from bastion.train.data import load_splits

    write_folder(tmp_path / "set" / "train", [(4, 4)] * 3, classes=2)
    write_folder(tmp_path / "set" / "test", [(4, 4)], classes=2)
    splits = load_splits(str(tmp_path / "set"), train_n=None, val_n=2, val_holdout=2)
    assert splits.x_train.shape == (4, 3, 4, 4) and splits.x_val.shape == (2, 3, 4, 4)
    assert splits.num_classes == 2 and splits.val_source.endswith("train[-2:]")


def test_commands_that_read_data_as_it_is_refuse_what_they_cannot_honour(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 1, 6, 6), np.float32), y=np.array([0, 1]))
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", "--model", "mnist-smallcnn-std", "--threats",
                              "linf:0.1", "--mean", "0.5", "--std", "0.2"])
    assert res.exit_code == 2 and "drop --resize" in res.output
    res = runner.invoke(app, ["ood", "--model", "mnist-smallcnn-std", "--id",
                              str(tmp_path / "d.npz"), "--n", "2"])
    assert res.exit_code != 0 and "train/ and test/" in res.output


def test_evaluate_refuses_out_of_range_labels_saying_what_to_do(tmp_path):
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (3, 6, 6, 3), dtype=np.uint8),
             y=np.array([0, 1, 7]))
    res = CliRunner().invoke(app, ["evaluate", "--model", "mnist-smallcnn-std", "--data",
                                   str(tmp_path / "d.npz"), "--classes", "3", "--no-progress"])
    assert res.exit_code == 2
    assert "labels span [0, 7] but there are 3 classes" in " ".join(res.output.split())


def test_card_shows_the_normalisation_and_load_notes(tmp_path):
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (3, 6, 6, 3), dtype=np.uint8),
             y=np.array([0, 1, 2]))
    (tmp_path / "net.py").write_text(
        "import torch\n\ndef make_model():\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 6 * 6, 3))\n")
    res = CliRunner().invoke(app, [
        "evaluate", "--model", str(tmp_path / "net.py"), "--data", str(tmp_path / "d.npz"),
        "--mean", "0.5", "--std", "0.2", "--eps", "0.01", "--attack", "fgsm", "--no-progress",
        "--out", str(tmp_path / "out")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    html = (tmp_path / "out" / "card.html").read_text()
    assert "mean 0.5, std 0.2, applied inside the model" in html
    assert "converted to NCHW" in html
