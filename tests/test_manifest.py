"""Provenance manifests: create, save, load, verify; a changed byte or label is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bastion.data import manifest as manifests
from bastion.data.files import load_npz, save_npz
from bastion.errors import ConfigError, InputError, StateError


def data(n: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 8, 8, generator=gen), torch.arange(n) % 10


def test_a_manifest_round_trips_and_verifies(tmp_path: Path) -> None:
    x, y = data()
    made = manifests.create(x, y, name="toy/train", source="toy.npz", added_by="alice")
    path = made.save(tmp_path / "m.json")
    loaded = manifests.load(path)
    assert loaded == made and loaded.digest() == made.digest()
    assert loaded.added_by[0] == "alice" and loaded.source[3] == "toy.npz" and len(loaded) == 50
    found = manifests.verify(loaded, x, y)
    assert found.ok and "all 50 samples match" in found.summary()


def test_one_changed_byte_of_one_image_is_named() -> None:
    x, y = data()
    made = manifests.create(x, y, name="toy", source="s", added_by="a")
    raw = x.numpy().copy()
    raw.view("uint8").reshape(50, -1)[17, 5] ^= 1  # flip one bit of one byte of image 17
    found = manifests.verify(made, torch.from_numpy(raw), y)
    assert not found.ok and found.changed_images == [17] and found.changed_labels == []
    assert "1 changed image(s) at index 17" in found.summary()


def test_one_changed_label_is_named() -> None:
    x, y = data()
    made = manifests.create(x, y, name="toy", source="s", added_by="a")
    y2 = y.clone()
    y2[33] = (y2[33] + 1) % 10
    found = manifests.verify(made, x, y2)
    assert found.changed_labels == [33] and found.changed_images == []


def test_added_or_removed_samples_fail_verification() -> None:
    x, y = data()
    made = manifests.create(x, y, name="toy", source="s", added_by="a")
    found = manifests.verify(made, x[:-1], y[:-1])
    assert not found.ok and "lists 50 samples, the data has 49" in found.summary()


def test_the_digest_changes_with_any_field() -> None:
    x, y = data()
    a = manifests.create(x, y, name="toy", source="s", added_by="a", added_at="2026-01-01")
    b = manifests.create(x, y, name="toy", source="s", added_by="b", added_at="2026-01-01")
    assert a.digest() != b.digest()


def test_bad_manifests_and_inputs_get_clear_errors(tmp_path: Path) -> None:
    x, y = data()
    with pytest.raises(ConfigError, match="does not exist"):
        manifests.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(StateError, match="not a bastion-manifest/1"):
        manifests.load(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="who adds"):
        manifests.create(x, y, name="t", source="s", added_by=" ")
    with pytest.raises(InputError, match="50 images but 49 labels"):
        manifests.create(x, y[:-1], name="t", source="s", added_by="a")


def test_data_files_round_trip_and_refuse_nan(tmp_path: Path) -> None:
    x, y = data()
    save_npz(tmp_path / "d.npz", x, y, base="mnist")
    x2, y2, base = load_npz(tmp_path / "d.npz")
    assert torch.equal(x2, x) and torch.equal(y2, y) and base == "mnist"
    x[2, 0, 0, 0] = float("nan")
    save_npz(tmp_path / "n.npz", x, y, base="mnist")
    with pytest.raises(InputError, match="1 images hold NaN"):
        load_npz(tmp_path / "n.npz")
