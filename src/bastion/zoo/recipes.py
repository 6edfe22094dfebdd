"""How each bundled checkpoint was made, runnable: ``bastion zoo train NAME``.

Each recipe is a :class:`Recipe` turned into a :class:`bastion.train.TrainConfig` and run
by the full trainer (:func:`bastion.train.train`): Adam, fixed seed, training on the
MNIST train split (50,000 images), validation each epoch on the first 1,000 images of
the MNIST val split, the best validation epoch kept (robust accuracy for robust
recipes, clean for standard ones). The run lives in a resumable folder (default
``runs/zoo/NAME``); at the end ``NAME.pt`` (a ``state_dict``) and ``NAME.json``
(command, recipe, wall time, accuracies, versions) are written to ``out_dir``: clean
accuracy on the 10,000 test images and, for robust recipes, PGD-40 robust accuracy on
the first 1,000 of them.
"""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from bastion import data
from bastion.errors import ConfigError
from bastion.zoo.registry import CHECKPOINTS, build

if TYPE_CHECKING:  # bastion.train imports the zoo: import it lazily at run time
    from bastion.train import TrainConfig


@dataclass(frozen=True)
class Recipe:
    """Training settings of one bundled checkpoint.

    ``eps`` = 0 means standard training. With eps > 0, PGD adversarial training (PGD-AT,
    ``steps`` steps of 2.5*eps/steps, random start); eps ramps linearly from 0 over the
    first ``ramp_epochs`` epochs, which keeps MNIST training at eps=0.3 from stalling
    early. ``noise_sigma`` > 0 means Gaussian noise augmentation instead (the base model
    of randomized smoothing). With more than 2 epochs the last one runs at lr/10 to
    settle the weights. ``poison`` plants a backdoor in the training data
    (:mod:`bastion.poison`), for models that test backdoor detectors. ``data`` and
    ``val_n`` name the training set and the validation images per epoch.
    """

    arch: str
    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    eps: float = 0.0
    steps: int = 0
    ramp_epochs: int = 0
    noise_sigma: float = 0.0
    seed: int = 0
    poison: str | None = None
    data: str = "mnist"
    val_n: int = 1000


RECIPES: dict[str, Recipe] = {
    "mnist-smallcnn-std": Recipe(arch="smallcnn", epochs=4),
    "mnist-lenet5-pgd": Recipe(arch="lenet5", epochs=12, eps=0.3, steps=10, ramp_epochs=3),
    "mnist-smallcnn-noise-0.25": Recipe(arch="smallcnn", epochs=4, noise_sigma=0.25),
    "mnist-badnets": Recipe(arch="lenet5", epochs=4,
                            poison="badnets:rate=0.1,target=0,size=3"),
    # not shipped: it trains in about 10 s on a CPU (docs/data.md, the CIFAR-shaped path)
    "cifar10-small-synthetic": Recipe(arch="cifar-small", epochs=3, batch_size=32, lr=3e-3,
                                      data="cifar10-synthetic", val_n=200),
}

#: a 1-epoch run on a few hundred images, to check the recipe path end to end.
TINY: dict[str, Any] = {"epochs": 1, "train_n": 256, "val_n": 100, "val_steps": 3, "eval_n": 100,
        "eval_steps": 5}


def config(name: str, recipe: Recipe) -> TrainConfig:
    """The :class:`bastion.train.TrainConfig` of ``recipe``."""
    from bastion.train import TrainConfig

    robust = recipe.eps > 0
    milestones = ((recipe.epochs - 1) / recipe.epochs,) if recipe.epochs > 2 else ()
    method = "pgd" if robust else "gaussian" if recipe.noise_sigma > 0 else "standard"
    return TrainConfig(
        method=method, model=recipe.arch, data=recipe.data,
        # only gaussian recipes set a sigma; the others keep TrainConfig's (unused) default
        noise_sigma=recipe.noise_sigma if recipe.noise_sigma > 0 else TrainConfig.noise_sigma,
        # standard recipes train on clean data; eps only sets their validation attack
        eps=recipe.eps if robust else 0.3, epochs=recipe.epochs,
        batch_size=recipe.batch_size, lr=recipe.lr, optimizer="adam",
        lr_schedule="piecewise" if milestones else "constant", lr_milestones=milestones,
        eps_ramp_epochs=float(recipe.ramp_epochs), steps=max(1, recipe.steps),
        val_n=recipe.val_n, eval_n=1000, eval_steps=40, seed=recipe.seed, out_name=name,
        poison=recipe.poison)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    """Clean top-1 accuracy in [0, 1]."""
    model.eval()
    with torch.inference_mode():
        correct = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                      for i in range(0, len(x), batch))
    return correct / len(x)


def train(name: str, out_dir: Path = CHECKPOINTS, log: Callable[[str], None] = print, *,
          work: Path | None = None, tiny: bool = False) -> dict[str, Any]:
    """Train bundled model ``name`` from scratch; write NAME.pt and NAME.json to out_dir.

    Args:
        work: resumable run folder (default ``runs/zoo/NAME``): rerun to resume.
        tiny: 1 epoch on 256 images, to check the path (not a usable checkpoint).
    """
    from bastion.certify.recipe import ZOO_RECIPES, train_zoo
    from bastion.train import train as run_training

    if name in ZOO_RECIPES and not tiny:  # certified training has its own loop
        train_zoo(name, out_dir)
        return json.loads((out_dir / f"{name}.json").read_text())
    if name not in RECIPES:
        known = ", ".join([*RECIPES, *ZOO_RECIPES])
        raise ConfigError(f"no recipe for {name!r}; recipes exist for: {known}")
    recipe = RECIPES[name]
    cfg = config(name, recipe)
    if tiny:
        cfg = replace(cfg, **TINY)
    work = work or Path("runs") / "zoo" / (name + ("-tiny" if tiny else ""))
    command = f"bastion zoo train {name}"
    summary = run_training(cfg, work, command=command, log=log)
    assert summary is not None  # a single process is rank 0
    model = build(recipe.arch)
    model.load_state_dict(torch.load(work / "best.pt", map_location="cpu", weights_only=True))
    test = data.load(recipe.data, "test", None if not tiny else 1000)
    result: dict[str, Any] = {
        "name": name,
        "command": command,
        "recipe": asdict(recipe),
        "trainer": {"config": cfg.to_dict(), "best_epoch": summary["training"]["best_epoch"],
                    "run_folder": str(work)},
        "train_seconds": summary["train_seconds"],
        "clean_test_accuracy": accuracy(model, test.x, test.y),
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    if "training_integrity" in summary:
        result["training_integrity"] = summary["training_integrity"]
    if recipe.eps > 0:
        result[f"pgd40_robust_accuracy_first_{summary['test_n']}"] = \
            summary["robust_test_accuracy"]
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "best.pt", out_dir / f"{name}.pt")
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    log(f"{name}: wrote {out_dir / (name + '.pt')}: {json.dumps(result)}")
    return result
