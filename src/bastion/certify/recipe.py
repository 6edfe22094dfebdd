"""Script entry point for certified training on MNIST, and model factories for the CLI.

    python -m bastion.certify.recipe --arch wong-small --epochs 20 --eps 0.3 \\
        --method crown-ibp --out out/certified/wong-small.pt

writes the trained ``state_dict`` to ``--out`` (the resumable training state goes next
to it, ``*.state.pt``: rerun the same command to resume). Certify the result with

    bastion certify --model src/bastion/certify/recipe.py:make_wong_small \\
        --checkpoint out/certified/wong-small.pt --method crown --eps 0.3

The factories below build the architectures without weights, for ``--model FILE.py:NAME``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from bastion import data as data_registry
from bastion.certify.training import Schedule, train_certified
from bastion.zoo.models import MLP, Cnn4, WongSmall


def make_wong_small() -> nn.Module:
    """Wong & Kolter's small MNIST CNN (the zoo's ``wong-small``), untrained."""
    return WongSmall()


def make_mlp() -> nn.Module:
    """A 784-256-256-10 ReLU MLP (the zoo's ``mlp``), untrained."""
    return MLP()


def make_cnn4() -> nn.Module:
    """The zoo's 4-conv ``cnn4`` (conv8-conv16/2-conv16-conv32/2-fc100-fc10), untrained."""
    return Cnn4()


FACTORIES = {"wong-small": make_wong_small, "mlp": make_mlp, "cnn4": make_cnn4}

#: the zoo's certified checkpoints: ``bastion zoo train NAME`` runs :func:`main` with
#: these arguments (plus ``--threads 1 --out``), as recorded in each ``NAME.json``.
ZOO_RECIPES: dict[str, list[str]] = {
    "mnist-certified-0.1": ["--arch", "wong-small", "--epochs", "10", "--eps", "0.2",
                            "--warmup", "1", "--ramp", "5", "--method", "crown-ibp"],
    "mnist-certified-0.3": ["--arch", "wong-small", "--epochs", "20", "--eps", "0.4",
                            "--method", "crown-ibp"],
    # IBP training on 20,000 images keeps it near 20 minutes on one CPU thread: the
    # CROWN-IBP pass costs this 4-conv net about 20 times an IBP step.
    "mnist-certified-cnn4-0.1": ["--arch", "cnn4", "--n", "20000", "--epochs", "8",
                                 "--eps", "0.2", "--warmup", "1", "--ramp", "4",
                                 "--method", "ibp", "--lr", "1e-3"],
}


def train_zoo(name: str, out_dir: Path) -> int:
    """Rebuild the certified zoo checkpoint ``name`` into ``out_dir/NAME.pt`` (+ .json)."""
    return main([*ZOO_RECIPES[name], "--threads", "1", "--out", str(out_dir / f"{name}.pt")])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bastion.certify.recipe",
                                     description="IBP / CROWN-IBP training on MNIST.")
    parser.add_argument("--arch", choices=sorted(FACTORIES), default="wong-small")
    parser.add_argument("--n", type=int, default=None, help="first N training images")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--eps", type=float, default=0.3, help="Linf radius to train for")
    parser.add_argument("--method", choices=("ibp", "crown-ibp"), default="crown-ibp")
    parser.add_argument("--warmup", type=float, default=1.0, help="epochs at eps=0")
    parser.add_argument("--ramp", type=float, default=10.0, help="epochs to ramp eps")
    parser.add_argument("--kappa-end", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, help="state_dict file to write")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = FACTORIES[args.arch]()
    train = data_registry.load("mnist", "train", args.n)
    schedule = Schedule(warmup=args.warmup, ramp=args.ramp, kappa=(1.0, args.kappa_end))
    history = train_certified(model, (train.x, train.y), args.eps, args.epochs,
                              method=args.method, batch_size=args.batch_size, lr=args.lr,
                              schedule=schedule, seed=args.seed,
                              checkpoint=args.out.with_suffix(".state.pt"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out)
    meta = {"command": "python -m bastion.certify.recipe", "args": {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "history": history}
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
