"""APGD-L1 strength: bastion's against the reference implementation and L1 attacks of peers.

Every tool attacks the same model on the same first MNIST test images under L1 eps=10
(the radius of the MNIST L1 benchmarks of Croce & Hein 2021), with 100 iterations and
one start, in one run:

- ``bastion-apgd``: :class:`bastion.attacks.APGD` (cross-entropy, ``eps_schedule=True``);
- ``bastion-autoattack``: bastion's L1 AutoAttack cascade (APGD-CE 5 restarts, APGD-T 5
  targets, both on the schedule);
- ``reference-apgd``: ``APGDAttack(norm="L1", use_largereps=True)`` from fra31/auto-attack,
  loaded from a local copy of its source (``--reference DIR``, the folder holding
  ``autoattack/``; skipped when not given);
- ``art-apgd``: ART's ``AutoProjectedGradientDescent(norm=1)`` (dense L1 steps, then the
  L1-ball projection and clipping);
- ``art-pgd``: ART's ``ProjectedGradientDescent(norm=1)``, step 2.5 eps / iterations;
- ``torchattacks-eadl1``: torchattacks' ``EADL1`` (elastic-net, a minimal-perturbation
  attack: 9 binary search steps × 100 iterations); its points count only when their L1
  distance is at most eps.

A sample counts robust when the model is right on the clean image and on the tool's point,
or when the tool's point lies outside ball ∩ box (tolerance 1e-4 on the L1 size). Robust
accuracies carry Wilson 95% intervals.

Usage (the numbers in docs/benchmarks.md):
    OMP_NUM_THREADS=1 .venv/bin/python bench/apgd_l1.py --n 500 --threads 1 \
        --reference /path/to/auto-attack --out docs/results/threats/apgd_l1.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import binomtest
from torch import nn

from bastion import data, zoo
from bastion.attacks import APGD, AutoAttack
from bastion.threat import ThreatModel
from pgd_speed import machine_info

EPS = 10.0
SEED = 0
TOOLS = ("bastion-apgd", "bastion-autoattack", "reference-apgd", "art-apgd", "art-pgd",
         "torchattacks-eadl1")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="first n MNIST test images")
    parser.add_argument("--models", nargs="+", default=["mnist-lenet5-pgd"], help="zoo names")
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument("--n-iter", type=int, default=100)
    parser.add_argument("--eps", type=float, default=EPS)
    parser.add_argument("--reference", type=Path, default=None,
                        help="folder holding fra31/auto-attack's autoattack/ package")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


def score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor,
          eps: float) -> dict[str, Any]:
    """Robust accuracy with its Wilson interval; points outside ball ∩ box do not count."""
    threat = ThreatModel("L1", eps)
    inside = threat.contains(x_adv, x, tol=1e-4)
    with torch.no_grad():
        right = model(x).argmax(1) == y
        fooled = (model(x_adv).argmax(1) != y) & inside
    k, n = int((right & ~fooled).sum()), int(x.shape[0])
    ci = binomtest(k, n).proportion_ci(method="wilson")
    return {"robust": k, "n": n, "robust_accuracy": k / n,
            "interval": [round(ci.low, 4), round(ci.high, 4)],
            "outside_ball": int((~inside).sum())}


def run_tool(tool: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             args: argparse.Namespace) -> torch.Tensor:
    """The tool's points (N, ...) for every sample."""
    threat = ThreatModel("L1", args.eps)
    gen = torch.Generator().manual_seed(SEED)
    if tool == "bastion-apgd":
        return APGD(steps=args.n_iter, eps_schedule=True).run(model, x, y, threat,
                                                               generator=gen).x_adv
    if tool == "bastion-autoattack":
        return AutoAttack(steps=args.n_iter).run(model, x, y, threat, generator=gen).x_adv
    if tool == "reference-apgd":
        sys.path.insert(0, str(args.reference))
        from autoattack.autopgd_base import APGDAttack

        ref = APGDAttack(model, norm="L1", eps=args.eps, n_iter=args.n_iter, n_restarts=1,
                         loss="ce", seed=SEED, device=torch.device("cpu"),
                         use_largereps=True)
        out: torch.Tensor = ref.perturb(x, y)
        return out
    if tool == "torchattacks-eadl1":
        import torchattacks

        # EADL1 needs max_iterations >= 10
        return torchattacks.EADL1(model, max_iterations=max(args.n_iter, 10))(x, y)
    return torch.from_numpy(_art(tool, model, x, y, args))


def _art(tool: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
         args: argparse.Namespace) -> np.ndarray:
    from art.attacks.evasion import AutoProjectedGradientDescent, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(),
                            input_shape=tuple(x.shape[1:]), nb_classes=10,
                            clip_values=(0.0, 1.0))
    if tool == "art-apgd":
        attack: Any = AutoProjectedGradientDescent(
            clf, norm=1, eps=args.eps, eps_step=2 * args.eps, max_iter=args.n_iter,
            nb_random_init=1, loss_type="cross_entropy", batch_size=250, verbose=False)
    else:
        attack = ProjectedGradientDescent(
            clf, norm=1, eps=args.eps, eps_step=2.5 * args.eps / args.n_iter,
            max_iter=args.n_iter, num_random_init=1, batch_size=250, verbose=False)
    result: np.ndarray = attack.generate(x.numpy(), y.numpy())
    return result


def bench_model(name: str, args: argparse.Namespace) -> dict[str, Any]:
    model = zoo.load(name).eval()
    ds = data.load("mnist", "test", args.n)
    rows = []
    for tool in args.tools:
        if tool == "reference-apgd" and args.reference is None:
            continue
        torch.manual_seed(SEED)
        np.random.seed(SEED)
        began = time.perf_counter()
        x_adv = run_tool(tool, model, ds.x, ds.y, args).detach().float()
        row = {"tool": tool, **score(model, ds.x, ds.y, x_adv, args.eps),
               "seconds": round(time.perf_counter() - began, 2)}
        print(json.dumps({"model": name, **row}), flush=True)
        rows.append(row)
    return {"model": name, "rows": rows}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"command": "python bench/apgd_l1.py " + shlex.join(argv or sys.argv[1:]),
              "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": machine_info(), "eps": args.eps, "norm": "L1",
              "n_iter": args.n_iter, "models": [bench_model(m, args) for m in args.models]}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
