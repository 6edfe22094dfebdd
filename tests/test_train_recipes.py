"""``bastion zoo train NAME`` runs through the new trainer with the recorded recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bastion import zoo
from bastion.train.schedules import lr_factor
from bastion.zoo.recipes import RECIPES, config, train


def test_recipes_keep_their_recorded_hyper_parameters() -> None:
    cfg = config("mnist-lenet5-pgd", RECIPES["mnist-lenet5-pgd"])
    assert (cfg.method, cfg.model, cfg.eps, cfg.steps, cfg.epochs) == ("pgd", "lenet5", 0.3,
                                                                       10, 12)
    assert (cfg.batch_size, cfg.lr, cfg.optimizer, cfg.eps_ramp_epochs) == (128, 1e-3, "adam",
                                                                            3.0)
    batches = 50_000 // 128 + 1
    total = cfg.epochs * batches
    # lr / 10 exactly for the last epoch, as the old trainer did
    factors = [lr_factor(cfg.lr_schedule, s, total, cfg.lr_milestones) for s in range(total)]
    assert all(f == 1.0 for f in factors[:11 * batches])
    assert all(f == pytest.approx(0.1) for f in factors[11 * batches:])
    std = config("mnist-smallcnn-std", RECIPES["mnist-smallcnn-std"])
    assert std.method == "standard" and std.model == "smallcnn" and std.epochs == 4
    noise = config("mnist-smallcnn-noise-0.25", RECIPES["mnist-smallcnn-noise-0.25"])
    assert (noise.method, noise.noise_sigma, noise.model) == ("gaussian", 0.25, "smallcnn")


@pytest.mark.slow
def test_tiny_dry_run_of_the_robust_recipe_writes_a_loadable_checkpoint(
        tmp_path: Path) -> None:
    result = train("mnist-lenet5-pgd", tmp_path / "zoo", log=lambda _: None,
                   work=tmp_path / "run", tiny=True)
    model = zoo.build("lenet5")
    model.load_state_dict(torch.load(tmp_path / "zoo" / "mnist-lenet5-pgd.pt",
                                     weights_only=True))
    meta = json.loads((tmp_path / "zoo" / "mnist-lenet5-pgd.json").read_text())
    assert meta == result
    assert meta["command"] == "bastion zoo train mnist-lenet5-pgd"
    assert meta["recipe"]["eps"] == 0.3 and meta["trainer"]["config"]["epochs"] == 1
    assert 0 <= meta["pgd40_robust_accuracy_first_100"] <= 1
    assert 0.1 < meta["clean_test_accuracy"] <= 1  # 256 images: above chance, far from good
    assert (tmp_path / "run" / "card.json").exists()


def test_certified_checkpoints_train_through_their_recipe(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    import bastion.certify.recipe as certified

    calls: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        calls.append(argv)
        Path(argv[argv.index("--out") + 1]).with_suffix(".json").write_text('{"ok": 1}')
        return 0

    monkeypatch.setattr(certified, "main", fake_main)
    assert train("mnist-certified-cnn4-0.1", tmp_path) == {"ok": 1}
    recipe = certified.ZOO_RECIPES["mnist-certified-cnn4-0.1"]
    assert calls[0][:len(recipe)] == recipe
    assert calls[0][-1] == str(tmp_path / "mnist-certified-cnn4-0.1.pt")


@pytest.mark.parametrize("name", ["mnist-certified-0.1", "mnist-certified-0.3",
                                  "mnist-certified-cnn4-0.1"])
def test_certified_recipes_match_their_bundled_cards(name: str) -> None:
    from bastion.certify.recipe import ZOO_RECIPES
    from bastion.zoo.registry import CHECKPOINTS

    card = json.loads((CHECKPOINTS / f"{name}.json").read_text())["recipe"]
    args = ZOO_RECIPES[name]
    for flag, value in zip(args[::2], args[1::2], strict=True):
        recorded = card[flag[2:].replace("-", "_")]
        assert (recorded == value if isinstance(recorded, str)
                else float(recorded) == float(value)), (flag, recorded, value)
