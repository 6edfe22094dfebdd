"""Cost of per-sample random streams: time per model pass of PGD and Square.

Runs PGD (random start) and Square on a zoo model and prints, per attack, the seconds,
the passes (forward + backward, per sample) and the microseconds per pass. The attacks
draw through :mod:`bastion.common.draws`; to compare with another checkout (e.g. one that
drew from a ``torch.Generator``), run this script under each checkout's ``PYTHONPATH``
alternately in one session, so shared load hits both, and compare the per-pass times.

Usage (the numbers in docs/devices.md):
    for i in 1 2 3; do
        OMP_NUM_THREADS=1 PYTHONPATH=OTHER/src python bench/draws_cost.py --label other
        OMP_NUM_THREADS=1 PYTHONPATH=src python bench/draws_cost.py --label this
    done
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="this", help="name printed before the numbers")
    parser.add_argument("--model", default="advertorch-lenet5-std", help="zoo model")
    parser.add_argument("--n", type=int, default=100, help="MNIST test images")
    parser.add_argument("--eps", type=float, default=0.3, help="Linf radius")
    args = parser.parse_args()

    import torch

    from bastion import data
    from bastion.attacks import PGD, Square
    from bastion.threat import ThreatModel
    from bastion.zoo import load

    torch.set_num_threads(1)
    model = load(args.model).eval()
    test = data.load("mnist", "test", args.n)
    threat = ThreatModel("Linf", args.eps)
    parts = []
    for attack in (PGD(steps=20), Square(n_queries=300)):
        began = time.perf_counter()
        res = attack.run(model, test.x, test.y, threat,
                         generator=torch.Generator().manual_seed(0))
        seconds = time.perf_counter() - began
        passes = res.passes.forward + res.passes.backward
        parts.append(f"{attack.name} {seconds:.3f}s passes={passes} "
                     f"us/pass={1e6 * seconds / passes:.1f} broken={int(res.success.sum())}")
    print(args.label, " | ".join(parts))


if __name__ == "__main__":
    main()
