"""How each bundled checkpoint was made, runnable: ``bastion zoo train NAME``.

A deliberately small trainer (plain or PGD adversarial training, Adam, fixed seed) so each
bundled checkpoint is reproducible by one command; the full trainer with TRADES, MART,
schedules and torchrun lives in ``bastion.train``. Trains on the MNIST train split
(50,000 images), reports clean accuracy on the 10,000 test images and, for robust
recipes, PGD-40 robust accuracy on the first 1,000 of them. Writes ``NAME.pt`` and
``NAME.json`` (command, wall time, accuracies, versions).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bastion import data
from bastion.attacks.pgd import PGD
from bastion.errors import ConfigError
from bastion.threat import ThreatModel
from bastion.zoo.registry import CHECKPOINTS, build


@dataclass(frozen=True)
class Recipe:
    """Training settings of one bundled checkpoint.

    ``eps`` = 0 means standard training. With eps > 0, each batch is replaced by PGD
    adversarial examples (``steps`` steps, step 2.5*eps/steps, random start); eps ramps
    linearly from 0 over the first ``ramp_epochs`` epochs, which keeps MNIST training at
    eps=0.3 from stalling early.
    """

    arch: str
    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    eps: float = 0.0
    steps: int = 0
    ramp_epochs: int = 0
    seed: int = 0


RECIPES: dict[str, Recipe] = {
    "mnist-smallcnn-std": Recipe(arch="smallcnn", epochs=4),
    "mnist-lenet5-pgd": Recipe(arch="lenet5", epochs=12, eps=0.3, steps=10, ramp_epochs=3),
}


def _epoch_eps(recipe: Recipe, epoch: int, batch: int, batches: int) -> float:
    if recipe.ramp_epochs == 0:
        return recipe.eps
    progress = (epoch + (batch + 1) / batches) / recipe.ramp_epochs
    return recipe.eps * min(1.0, progress)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    """Clean top-1 accuracy in [0, 1]."""
    model.eval()
    with torch.inference_mode():
        correct = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                      for i in range(0, len(x), batch))
    return correct / len(x)


def train(name: str, out_dir: Path = CHECKPOINTS,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train bundled model ``name`` from scratch; write NAME.pt and NAME.json to out_dir."""
    if name not in RECIPES:
        raise ConfigError(f"no recipe for {name!r}; recipes exist for: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    train_set, test_set = data.load("mnist", "train"), data.load("mnist", "test")
    model = build(recipe.arch)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    n, bs = len(train_set), recipe.batch_size
    batches = (n + bs - 1) // bs
    start = time.perf_counter()
    for epoch in range(recipe.epochs):
        if epoch == recipe.epochs - 1 and recipe.epochs > 2:
            for group in opt.param_groups:  # a last, low-lr epoch settles the weights
                group["lr"] = recipe.lr / 10
        order = torch.randperm(n, generator=gen)
        for b in range(batches):
            idx = order[b * bs:(b + 1) * bs]
            x, y = train_set.x[idx], train_set.y[idx]
            eps = _epoch_eps(recipe, epoch, b, batches)
            if eps > 0:
                model.eval()
                x = PGD(steps=recipe.steps).run(model, x, y, ThreatModel("Linf", eps),
                                                generator=gen).x_adv
            model.train()
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        log(f"{name}: epoch {epoch + 1}/{recipe.epochs} done, "
            f"{time.perf_counter() - start:.0f}s, last loss {loss.item():.3f}")
    seconds = time.perf_counter() - start
    model.eval()
    result: dict[str, Any] = {
        "name": name,
        "command": f"bastion zoo train {name}",
        "recipe": asdict(recipe),
        "train_seconds": round(seconds, 1),
        "clean_test_accuracy": accuracy(model, test_set.x, test_set.y),
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    if recipe.eps > 0:
        head = test_set.head(1000)
        attack = PGD(steps=40).run(model, head.x, head.y, ThreatModel("Linf", recipe.eps))
        with torch.inference_mode():
            clean_ok = model(head.x).argmax(1) == head.y
        result["pgd40_robust_accuracy_first_1000"] = int(
            (clean_ok & ~attack.success).sum()) / len(head)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_dir / f"{name}.pt")
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    log(f"{name}: wrote {out_dir / (name + '.pt')}: {json.dumps(result)}")
    return result
