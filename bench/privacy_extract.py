"""Extraction of mnist-smallcnn-std with MNIST val images as the attacker's pool,
undefended and behind each output defence, at several query budgets.

    OMP_NUM_THREADS=1 python bench/privacy_extract.py --budgets 500,2000,5000 --test 2000 \
        --json bench/results/privacy_extract.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bastion import data
from bastion.privacy.defenses import DEFENSES, build_defense, defended_accuracy, is_label_only
from bastion.privacy.extraction import extract
from bastion.zoo.registry import load


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budgets", default="500,2000,5000")
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--defenses", default=",".join(DEFENSES))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    victim = load("mnist-smallcnn-std")
    pool = data.load("mnist", "val", max(budgets)).x
    test = data.load("mnist", "test", args.test)
    out = {}
    for name in args.defenses.split(","):
        start = time.time()
        defended = build_defense(name, victim)
        res = extract(defended, pool, test.x, test.y, budgets=budgets,
                      label_only=is_label_only(name), steps=args.steps)
        out[name] = {**res.to_dict(), "defended_accuracy":
                     defended_accuracy(defended, test.x, test.y), "seconds": time.time() - start}
        for row in res.rows:
            print(f"{name:16s} {row['queries']:6d} fidelity {row['fidelity']:.1%} "
                  f"{row['fidelity_ci']} accuracy {row['accuracy']:.1%} {row['accuracy_ci']}",
                  flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
