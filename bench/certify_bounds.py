"""Tightness and time of IBP, CROWN-IBP and full CROWN on the bundled MNIST models.

    OMP_NUM_THREADS=1 python bench/certify_bounds.py --n 20 --eps 0.02 --json out.json

For each model and method: certified accuracy, mean lower bound of the margins (higher is
tighter), seconds, and PGD-40's robust accuracy on the same images as the empirical
upper limit (a certified sample PGD breaks would be a soundness bug: counted too).

auto_LiRPA is not compared: auto-lirpa 0.3 requires torch < 1.13 (no wheel for Python
3.11), and installed without its dependencies next to torch 2.13 it fails on import
(``torch.onnx.symbolic_helper._set_opset_version`` no longer exists); see docs/certify.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from bastion import data, zoo
from bastion.attacks import PGD
from bastion.certify import certify
from bastion.threat import ThreatModel

MODELS = ("mnist-lenet5-pgd", "mnist-smallcnn-std")
METHODS = ("ibp", "crown-ibp", "crown")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--eps", type=float, default=0.02)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    test = data.load("mnist", "test", args.n)
    threat = ThreatModel("Linf", args.eps)
    rows = []
    for name in args.models.split(","):
        model = zoo.load(name)
        found = PGD(steps=40).run(model, test.x, test.y, threat,
                                  generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            clean = model(test.x).argmax(1) == test.y
        robust = clean & ~found.success
        for method in args.methods.split(","):
            began = time.perf_counter()
            cert = certify(model, test.x, test.y, threat, method=method, batch_size=args.n)
            seconds = time.perf_counter() - began
            assert cert.lower is not None
            row = {"model": name, "method": method, "n": args.n, "eps": args.eps,
                   "certified_accuracy": float(cert.certified.float().mean()),
                   "pgd40_robust_accuracy": float(robust.float().mean()),
                   "certified_but_broken": int((cert.certified & ~robust).sum()),
                   "mean_lower_margin": float(cert.lower.mean()),
                   "seconds": round(seconds, 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
