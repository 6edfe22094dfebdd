"""Scoring sentence spans as well as whole texts: does it stop benign padding? (rejected)

An inference-only experiment on weights from ``bench/guard_transformer_variants.py``:
besides the scanner's windows, every run of at most ``--spans`` consecutive segments
(split at sentence ends, colons, semicolons, newlines, and before a capitalised word
that follows a lower-case one) is scored, and the text's score is the maximum. The
threshold is re-chosen on S-Labs val (FPR <= 1%); reported: val TPR, the held-out half
of the hard negatives flagged, and the TPR drop (points) under the padding attack at
budgets 1, 3, 5 (five tries) on the attacks among the first 400 val prompts.

    python bench/guard_transformer_spans.py /tmp/v-mean/transformer_head.npz --spans 4
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

import numpy as np


def main() -> None:
    import torch

    from bastion.guard import perturb, train_transformer
    from bastion.guard.corpora import load_corpus
    from bastion.guard.scanners.input import _encoder
    from bastion.guard.scanners.input.transformer import pieces
    from bastion.guard.train_classifier import HARD_NEGATIVES_FILE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("--spans", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = _encoder.load(args.weights)
    bound = re.compile(r"(?<=[.!?:;])\s+|\n+|(?<=[a-z0-9,])\s+(?=[A-Z][a-z])")

    def score(text: str) -> float:
        found = [p[3] for p in pieces(text, 128, 64)]
        segs = [s for s in bound.split(text) if s and s.strip()]
        if 1 < len(segs) <= 24:
            found += [" ".join(segs[i:j]) for i in range(len(segs))
                      for j in range(i + 1, min(i + args.spans, len(segs)) + 1)
                      if j - i < len(segs)]
        return float(1 / (1 + np.exp(-_encoder.logits(net, found).max())))

    val = load_corpus("s-labs-val")
    y = np.array([e.label for e in val])
    s = np.array([score(e.text) for e in val])
    neg = np.sort(s[y == 0])[::-1]
    t = neg[int(0.01 * len(neg))] + 1e-9
    path = Path(train_transformer.__file__).parent / "data" / HARD_NEGATIVES_FILE
    dev = [json.loads(line)["text"] for line in path.read_text("utf-8").splitlines()][1::2]
    attacks = [e.text for e in val[:400] if e.label == 1]
    caught = [a for a in attacks if score(a) > t]
    drops = []
    for b in (1, 3, 5):
        evaded = sum(any(score(perturb.padding(a, random.Random(f"{i}:{b}:{k}"), b)) <= t
                         for k in range(5)) for i, a in enumerate(caught))
        drops.append(round(100 * evaded / len(attacks), 1))
    print(json.dumps({"weights": args.weights, "spans": args.spans, "threshold": t,
                      "val_tpr": float(np.mean(s[y == 1] > t)),
                      "dev_flagged": float(np.mean([score(d) > t for d in dev])),
                      "tpr_before": len(caught) / len(attacks),
                      "padding_drop_points": drops}))


if __name__ == "__main__":
    main()
