"""Membership inference on a small MNIST model: global loss threshold vs offline LiRA.

    OMP_NUM_THREADS=1 python bench/privacy_membership.py --pool 1000 --shadows 4 \
        --steps 800 --json bench/results/privacy_membership.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bastion import data
from bastion.privacy.membership import membership_audit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--shadows", type=int, default=4)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    pool = data.load("mnist", "train", args.pool)
    test = data.load("mnist", "test", 2000)
    start = time.time()
    res = membership_audit(pool.x, pool.y, shadows=args.shadows, steps=args.steps,
                           test=(test.x, test.y), log=print)
    out = {**res.to_dict(), "seconds": time.time() - start}
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
