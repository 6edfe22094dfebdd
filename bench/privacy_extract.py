"""Extraction of mnist-smallcnn-std from an attacker pool that excludes MNIST train.

Two modes. ``--defenses a,b``: bastion's Knockoff copy behind each output defence.
``--compare``: bastion's extraction attacks side by side with ART's CopycatCNN and
KnockoffNets (random sampling) on the same victim, pool, copy architecture and budgets,
tools alternating inside each budget; ART's copies get the same number of Adam steps
(epochs = steps * 64 / budget, batch 64). The pool is MNIST val (10,000 images), then,
for budgets beyond it, jittered copies of MNIST val (moved up to 2 px, turned up to 10
degrees): images the attacker makes itself.

    OMP_NUM_THREADS=1 python bench/privacy_extract.py --compare --budgets 500,1000,5000,20000 \
        --json docs/results/privacy_extract_peers.json
    OMP_NUM_THREADS=1 python bench/privacy_extract.py --budgets 500,2000,5000 --test 2000 \
        --json docs/results/privacy_extract.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bastion import data
from bastion.privacy._fit import jitter
from bastion.privacy.defenses import DEFENSES, build_defense, defended_accuracy, is_label_only
from bastion.privacy.extraction import extract, measure_copy, steal
from bastion.privacy.stealing import make_extraction
from bastion.zoo.registry import build_for, load


def _pool(n: int) -> torch.Tensor:
    val = data.load("mnist", "val").x
    parts, gen = [val], torch.Generator().manual_seed(1)
    while sum(len(p) for p in parts) < n:
        parts.append(jitter(val, 2.0, gen))
    return torch.cat(parts)[:n]


def _art_copy(kind: str, victim: nn.Module, pool: torch.Tensor, b: int, *, arch: str,
              steps: int, probs: bool) -> nn.Module:
    """ART's CopycatCNN or KnockoffNets (random) on the first ``b`` pool images."""
    import numpy as np
    from art.attacks.extraction import CopycatCNN, KnockoffNets
    from art.estimators.classification import PyTorchClassifier

    def wrap(model: nn.Module) -> PyTorchClassifier:
        return PyTorchClassifier(model, loss=nn.CrossEntropyLoss(),
                                 optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
                                 input_shape=(1, 28, 28), nb_classes=10, clip_values=(0, 1))

    np.random.seed(0)
    torch.manual_seed(0)
    epochs = max(1, math.ceil(steps * 64 / b))
    common = {"batch_size_fit": 64, "batch_size_query": 500, "nb_epochs": epochs,
              "nb_stolen": b, "use_probability": probs}
    # ART's predict returns the model's output: a softmax on top so that its
    # use_probability answers are probabilities, as the victim would serve them
    served = wrap(nn.Sequential(victim, nn.Softmax(dim=1)))
    attack = (CopycatCNN(served, **common) if kind == "copycat"
              else KnockoffNets(served, sampling_strategy="random", verbose=False, **common))
    thief = wrap(build_for(arch, pool[:2], 10))
    copy: nn.Module = attack.extract(pool[:b].numpy(), thieved_classifier=thief).model
    return copy.eval()


def compare(args: argparse.Namespace) -> dict[str, Any]:
    budgets = [int(b) for b in args.budgets.split(",")]
    victim = load("mnist-smallcnn-std")
    pool, test = _pool(max(budgets)), data.load("mnist", "test", args.test)
    seeds = data.load("mnist", "val").x
    victim_pred = victim(test.x).argmax(1)
    out: dict[str, Any] = {"victim_accuracy": float((victim_pred == test.y).float().mean()),
                           "test_size": args.test, "rows": []}
    fit_args = {"arch": args.arch, "steps": args.steps, "augment": args.augment,
                "transfer": args.transfer}
    for b in budgets:
        runs: list[tuple[str, bool]] = [(t, True) for t in args.tools.split(",") if t]
        if b in args.probs_at:
            runs += [("bastion-knockoff", False), ("art-knockoffnets", False)]
        for tool, label_only in runs:
            start = time.time()
            if tool.startswith("bastion"):
                attack = make_extraction(tool.split("-")[1])
                images = seeds if attack.name == "jacobian" else pool
                row = steal(attack, victim, images, test.x, test.y, budgets=[b],
                            label_only=label_only, **fit_args).rows[0]
            else:
                copy = _art_copy(tool.split("-")[1], victim, pool, b, arch=args.arch,
                                 steps=args.steps, probs=not label_only)
                row = {"queries": b, **measure_copy(copy, victim, victim_pred, test.x, test.y,
                                                args.transfer, 0.3)}
            row |= {"tool": tool, "answers": "labels" if label_only else "probabilities",
                    "seconds": round(time.time() - start, 1)}
            out["rows"].append(row)
            print(f"{tool:18s} {row['answers']:13s} {b:6d} fidelity {row['fidelity']:.1%} "
                  f"{row['fidelity_ci']} accuracy {row['accuracy']:.1%} transfer "
                  f"{row.get('transfer', 0):.1%} {row['seconds']:.0f}s", flush=True)
    return out


def defenses(args: argparse.Namespace) -> dict[str, Any]:
    budgets = [int(b) for b in args.budgets.split(",")]
    victim = load("mnist-smallcnn-std")
    pool = _pool(max(budgets))
    test = data.load("mnist", "test", args.test)
    out = {}
    for name in args.defenses.split(","):
        start = time.time()
        defended = build_defense(name, victim)
        res = extract(defended, pool, test.x, test.y, budgets=budgets,
                      label_only=is_label_only(name), arch=args.arch, steps=args.steps,
                      augment=args.augment)
        out[name] = {**res.to_dict(), "defended_accuracy":
                     defended_accuracy(defended, test.x, test.y), "seconds": time.time() - start}
        for row in res.rows:
            print(f"{name:16s} {row['queries']:6d} fidelity {row['fidelity']:.1%} "
                  f"{row['fidelity_ci']} accuracy {row['accuracy']:.1%} {row['accuracy_ci']}",
                  flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", action="store_true", help="bastion beside ART")
    parser.add_argument("--tools", default="bastion-knockoff,art-copycat,art-knockoffnets",
                        help="--compare: bastion-knockoff, bastion-jacobian, art-copycat, "
                             "art-knockoffnets")
    parser.add_argument("--probs-at", default="5000", type=lambda s: [
        int(b) for b in s.split(",") if b], help="--compare: budgets also run on probabilities")
    parser.add_argument("--budgets", default="500,2000,5000")
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--arch", default="wong-small")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--augment", type=float, default=0.0)
    parser.add_argument("--transfer", type=int, default=500)
    parser.add_argument("--defenses", default=",".join(DEFENSES))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    out = compare(args) if args.compare else defenses(args)
    out["settings"] = {k: v for k, v in vars(args).items() if k != "json"}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
