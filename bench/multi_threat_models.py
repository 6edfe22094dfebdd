"""Factories for the models of the multi-threat training comparison (docs/benchmarks.md).

Each loads ``$BASTION_MT_DIR/<run>/best.pt`` (default ``out/mt``), the best checkpoint
of a ``bastion train --model lenet5 ... --out out/mt/<run>`` run, so that the threat
matrix can take them as ``--model bench/multi_threat_models.py:linf`` and so on.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from bastion.zoo.models import LeNet5


def _load(run: str) -> nn.Module:
    path = Path(os.environ.get("BASTION_MT_DIR", "out/mt")) / run / "best.pt"
    model = LeNet5()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def linf() -> nn.Module:
    """PGD-AT at Linf 0.3 only."""
    return _load("linf")


def l1() -> nn.Module:
    """PGD-AT (sparse L1 steps) at L1 10 only."""
    return _load("l1")


def union_avg() -> nn.Module:
    """PGD-AT against Linf 0.3 and L1 10, mean of the two losses."""
    return _load("union-avg")


def main(argv: list[str] | None = None) -> None:
    """Run as a script: say what this module is and list its factories."""
    import argparse

    parser = argparse.ArgumentParser(
        description="Model factories for the multi-threat comparison; pass them to bastion "
                    "as --model bench/multi_threat_models.py:NAME (NAME: linf, l1, union_avg).")
    parser.parse_args(argv)
    parser.print_help()


if __name__ == "__main__":
    main()
