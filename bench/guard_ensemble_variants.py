"""Session-7 variants: a transformer's and an n-gram head's weights, alone and mixed
(docs/guard.md, "ensemble"; docs/results/guard_session7_variants.txt).

For the given members it reports, never S-Labs test nor the over-refusal set:

* S-Labs val TPR at the threshold chosen there (FPR <= 1%), for each member alone and
  for each mix, every prompt scanned as the layer scans it, and the share of
  ``benign-dev`` (bastion's benign prompts with trigger words, never trained on) flagged
  at that threshold;
* the same at the guarded threshold (FPR <= 1% on val *and* at most 3% of benign-dev
  flagged, :func:`bastion.guard.train_classifier.guarded_threshold`), with val's FPR;
* with ``--attack-mix M``, the TPR drop in points under the padding, synonym,
  synonym-strict and typo perturbations (``--families``; budgets 1, 3, 5; five tries)
  on the attacks among the first ``--attack-limit`` val prompts, the layer alone as the
  guard (``M = 1``: the transformer alone), at the guarded threshold.

    python bench/guard_ensemble_variants.py --transformer DIR/transformer_head.npz \\
        --ngram DIR/classifier_head.npz --attack-mix 0.8
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np


class _Verdict:
    def __init__(self, verdict: str) -> None:
        self.verdict = verdict


class _Guard:
    """The shape ``attack_guard`` expects, around a scoring function and a threshold."""

    def __init__(self, score: Any, threshold: float) -> None:
        self.score, self.threshold = score, threshold

    def scan_input(self, text: str) -> _Verdict:
        return _Verdict("block" if self.score(text) >= self.threshold else "allow")


def main() -> dict[str, Any]:
    import torch

    from bastion.guard.attacks import attack_guard
    from bastion.guard.corpora import load_corpus
    from bastion.guard.evaluate import auroc
    from bastion.guard.scanners.input.ensemble import (
        EnsembleScanner,
        member_scores,
        mixed,
        tpr_at_fpr,
    )
    from bastion.guard.train_classifier import guarded_rates

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transformer", help="transformer .npz (default: bundled)")
    ap.add_argument("--ngram", help="n-gram head .npz (default: the ensemble's bundled one)")
    ap.add_argument("--mixes", default="0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    ap.add_argument("--attack-mix", type=float, help="run the perturbation attack here")
    ap.add_argument("--attack-limit", type=int, default=400)
    ap.add_argument("--families", default="padding,synonym,synonym-strict,typos",
                    help="perturbation families attacked (synonym-strict since session 10)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--neuralchemy", action="store_true",
                    help="also score neuralchemy-val (never trained on) at each row's "
                         "guarded threshold: TPR, FPR and AUROC (since session 10)")
    ap.add_argument("--no-sentences", action="store_true",
                    help="the transformer reads whole prompts only (before session 8)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    sentences = False if args.no_sentences else None
    y, (vt, vn), (dt, dn) = member_scores(args.transformer, args.ngram, sentences)
    ny, nt, nn = np.zeros(0), np.zeros(0), np.zeros(0)
    if args.neuralchemy:
        nc = load_corpus("neuralchemy-val")
        members = EnsembleScanner(transformer_weights=args.transformer,
                                  classifier_weights=args.ngram, sentences=sentences).members()
        ny = np.asarray([e.label for e in nc])
        nt, nn = (np.asarray([m.scan(e.text).score for e in nc]) for m in members)
    rows: dict[str, Any] = {}

    def row(v: np.ndarray, d: np.ndarray, n: np.ndarray) -> dict[str, float]:
        # both rules: FPR <= 1% on val alone (before session 8), and also <= 3% of
        # benign-dev flagged (guarded_threshold, since session 8)
        t, tpr, _ = tpr_at_fpr(v, y)
        g = guarded_rates(v, y, d)
        out = {"val_tpr": tpr, "dev_flagged": float(np.mean(d >= t)),
               "guarded_val_tpr": g["tpr"], "guarded_val_fpr": g["fpr"],
               "guarded_dev_flagged": g["dev_flagged"]}
        if len(n):
            out |= {"nc_tpr": float(np.mean(n[ny == 1] >= g["threshold"])),
                    "nc_fpr": float(np.mean(n[ny == 0] >= g["threshold"])),
                    "nc_auroc": auroc(ny, n)}
        return out

    rows["transformer"], rows["ngram"] = row(vt, dt, nt), row(vn, dn, nn)
    for mix in (float(m) for m in args.mixes.split(",")):
        rows[f"mix {mix}"] = row(mixed(vt, vn, mix), mixed(dt, dn, mix),
                                 mixed(nt, nn, mix) if len(nt) else nt)
    out: dict[str, Any] = {"transformer": args.transformer or "bundled",
                           "ngram": args.ngram or "bundled", "sentences": sentences,
                           "rows": rows}
    if args.attack_mix is not None:
        mix = args.attack_mix
        threshold = guarded_rates(mixed(vt, vn, mix), y, mixed(dt, dn, mix))["threshold"]
        transformer, ngram = EnsembleScanner(transformer_weights=args.transformer,
                                             classifier_weights=args.ngram,
                                             sentences=sentences).members()

        def score(text: str) -> float:
            return float(mixed(transformer.scan(text).score, ngram.scan(text).score, mix))

        a = attack_guard(_Guard(score, threshold),
                         load_corpus("s-labs-val")[:args.attack_limit],
                         families=args.families.split(","), budgets=(1, 3, 5),
                         tries=5, seed=0)
        out["attack"] = {"mix": mix, "tpr_before": a["tpr_before"],
                         "drop_points": {f"{r['family']}-{r['budget']}": r["tpr_drop_points"]
                                         for r in a["results"]}}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
