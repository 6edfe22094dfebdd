"""PRADA plus the out-of-distribution share test (bastion.privacy.query_monitor) on query
streams against mnist-smallcnn-std, per kind of client, in process (no HTTP).

Tuning (not reported): benign replays of MNIST val set PRADA's delta to 0.005 below the
smallest Shapiro-Wilk W any of them reached. The share test's thresholds come from MNIST
train (components from its first 25,000 images, thresholds from the next 25,000).
Reported: ``--sessions`` streams of ``--queries`` queries per kind: benign MNIST test
replays (random orders), Knockoff from Fashion-MNIST train + digits train + noise,
Knockoff from MNIST val (the training data's distribution), and Jacobian augmentation
from 150 MNIST val seeds (a fresh seed set per session).

    OMP_NUM_THREADS=1 python bench/prada_combined.py --sessions 10 --queries 2000 \
        --json docs/results/prada_combined.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import prada_streams as streams
from bastion import data
from bastion.common.intervals import interval_list, wilson_interval
from bastion.privacy.prada import PradaMonitor
from bastion.privacy.query_monitor import CombinedMonitor, QueryShareMonitor


def _labels(victim: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([victim(x[i:i + 1000]).argmax(1)
                          for i in range(0, len(x), 1000)]).numpy()


def _min_w(victim: torch.nn.Module, x: torch.Tensor) -> float:
    """The smallest W PRADA reaches on stream ``x`` (a never-flagging delta)."""
    monitor, flat, labels = PradaMonitor(1e-9), x.flatten(1).numpy(), _labels(victim, x)
    ws = [monitor.observe("k", row, int(lab)).w for row, lab in zip(flat, labels, strict=True)]
    return min(w for w in ws if w is not None)


def _session(monitor: CombinedMonitor, victim: torch.nn.Module, x: torch.Tensor,
             key: str) -> dict[str, Any]:
    flat, labels = x.flatten(1).numpy(), _labels(victim, x)
    verdict: dict[str, Any] = {}
    for row, lab in zip(flat, labels, strict=True):
        verdict = monitor.observe(key, row, int(lab))
    return {"flagged": verdict["flagged"], "flagged_at": verdict["flagged_at"],
            "by": verdict["by"], "prada_at": verdict["prada"]["flagged_at"],
            "share_at": verdict["share"]["flagged_at"],
            "out_share": verdict["share"]["out"] / len(x)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--tuning", type=int, default=5, help="benign MNIST val streams")
    parser.add_argument("--jacobian-steps", type=int, default=100,
                        help="Adam steps of the attacker's copy per round")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from bastion import zoo

    start = time.time()
    victim = zoo.load("mnist-smallcnn-std").eval()
    train = data.load("mnist", "train").x[:50000].flatten(1).numpy()
    share = QueryShareMonitor().fit(train)
    tuning = [_min_w(victim, streams.benign("val", args.queries, 100 + s))
              for s in range(args.tuning)]
    delta = round(min(tuning) - 0.005, 3)  # a margin: reported streams are other orders
    print(f"tuning: min W per val stream {[round(w, 3) for w in tuning]} -> delta {delta}, "
          f"share p0 {share.p0:.4f}", flush=True)
    val = data.load("mnist", "val").x

    def label_of(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(_labels(victim, x))

    kinds = {
        "benign (MNIST test replay)": lambda s: streams.benign("test", args.queries, s),
        "knockoff (Fashion-MNIST, digits, noise)":
            lambda s: streams.knockoff("train", args.queries, s),
        "knockoff (MNIST val)": lambda s: streams.benign("val", args.queries, 200 + s),
        "jacobian (150 MNIST val seeds)": lambda s: streams.jacobian(
            val[torch.randperm(len(val), generator=torch.Generator().manual_seed(300 + s))
                [:150]], label_of, args.queries, s, steps=args.jacobian_steps),
    }
    out: dict[str, Any] = {"delta": delta, "tuning_min_w": tuning, "p0": share.p0,
                           "settings": {k: str(v) for k, v in vars(args).items()}, "kinds": {}}
    for kind, make in kinds.items():
        rows = []
        for s in range(args.sessions):
            monitor = CombinedMonitor(PradaMonitor(delta), share)
            rows.append(_session(monitor, victim, make(s), f"{kind}-{s}"))
        flagged = sum(r["flagged"] for r in rows)
        ats = [r["flagged_at"] for r in rows if r["flagged_at"] is not None]
        out["kinds"][kind] = {
            "flagged": flagged, "sessions": args.sessions,
            "rate_ci": interval_list(wilson_interval(flagged, args.sessions), 100, 1),
            "first_flag": [min(ats), max(ats)] if ats else None, "sessions_detail": rows}
        print(f"{kind:42s} flagged {flagged}/{args.sessions} "
              f"{out['kinds'][kind]['rate_ci']} at {out['kinds'][kind]['first_flag']}",
              flush=True)
    out["seconds"] = round(time.time() - start, 1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
