"""Membership inference at low FPR on a small Fashion-MNIST (or MNIST) model: every
registered attack (loss and confidence thresholds, Shokri, LiRA offline and online,
RMIA) against a target trained with one recipe (standard, PGD-AT or DP-SGD).

    OMP_NUM_THREADS=1 python bench/privacy_membership.py --recipe standard \
        --pool 2500 --shadows 16 --targets 4 --epochs 60 --state /tmp/mi-std \
        --json docs/results/privacy/membership-standard.json

Shadow models train in a pool of ``--workers`` processes; rerun with the same
``--state`` folder to resume after an interruption.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--pool", type=int, default=2500, help="pool (each model trains on half)")
    parser.add_argument("--population", type=int, default=1000, help="test images for RMIA")
    parser.add_argument("--shadows", type=int, default=16)
    parser.add_argument("--targets", type=int, default=4, help="models played as target")
    parser.add_argument("--recipe", default="standard", choices=["standard", "pgd-at", "dp"])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64, help="DP: expected Poisson batch")
    parser.add_argument("--lr", type=float, default=None,
                        help="Adam's (default 1e-3) or DP-SGD's (default 0.1) step size")
    parser.add_argument("--eps", type=float, default=0.1, help="PGD-AT radius (L-inf)")
    parser.add_argument("--noise", type=float, default=1.0, help="DP noise multiplier")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--state", type=Path, default=None, help="resume folder")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from bastion import data
    from bastion.privacy._train import Recipe
    from bastion.privacy.membership import membership_audit

    pool = data.load(args.data, "train", args.pool)
    pop = data.load(args.data, "test", args.population)
    recipe = Recipe(method=args.recipe, epochs=args.epochs, batch=args.batch, lr=args.lr,
                    eps=args.eps, noise_multiplier=args.noise)
    start = time.time()
    res = membership_audit(pool.x, pool.y, shadows=args.shadows, recipe=recipe,
                           seed=args.seed, population=(pop.x, pop.y), targets=args.targets,
                           workers=args.workers, state=args.state, log=print)
    out = {"data": args.data, **res.to_dict(), "seconds": round(time.time() - start, 1)}
    for name, a in out["attacks"].items():
        low, one = a["tpr_at_fpr"]
        print(f"{name:22s} AUC {a['auroc']:.3f} {a['auroc_ci']}  TPR@0.1% {low['tpr']:.2%} "
              f"{low['tpr_ci']}  TPR@1% {one['tpr']:.2%} {one['tpr_ci']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
