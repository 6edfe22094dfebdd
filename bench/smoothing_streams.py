"""Per-image randomized-smoothing certificates, to compare two versions' noise draws.

Runs CERTIFY as ``bastion certify --method smoothing`` does (generator seeded with 0,
sigma 0.25, n0 100, n 10,000, alpha 0.001, 1,000 noisy copies per batch) on the first
``--n`` MNIST test images with ``mnist-smallcnn-noise-0.25``, and prints (or writes) each
image's class, label and radius. Run it on two checkouts (``PYTHONPATH=src``) and compare:

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/smoothing_streams.py --n 20 --json new.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from bastion import data
from bastion.certify.smoothing import certify
from bastion.zoo.user import load_any


def run(n: int, samples: int) -> dict[str, object]:
    """Labels, true classes, radii (L2, 4 decimals) and seconds for the first n images."""
    torch.set_num_threads(1)
    model = load_any("mnist-smallcnn-noise-0.25").eval()
    test = data.load("mnist", "test", n)
    began = time.perf_counter()
    res = certify(model, test.x, 0.25, 100, samples, 0.001, 1000,
                  generator=torch.Generator().manual_seed(0))
    return {"label": res.label.tolist(), "y": test.y.tolist(),
            "radius": [round(r, 4) for r in res.radius.tolist()],
            "seconds": round(time.perf_counter() - began, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="test images")
    parser.add_argument("--samples", type=int, default=10_000, help="CERTIFY's n")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args()
    text = json.dumps(run(args.n, args.samples))
    if args.json is None:
        print(text)
    else:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
