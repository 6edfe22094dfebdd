"""Choose the ensemble's mix and threshold: ``bastion guard train --part mix``.

The ``ensemble`` layer scores ``sigmoid(mix * logit(p_transformer) + (1 - mix) *
logit(p_ngram))`` (:func:`bastion.guard.scanners.input.ensemble.mixed`). For every mix of
:data:`MIX_GRID` the threshold is the lowest score with FPR <= 1% on S-Labs val that
flags at most 3% of the ``benign-dev`` prompts (benign prompts with attack words, never
trained on; :func:`~bastion.guard.training.thresholds.guarded_threshold`); the mix kept
is the one with the highest val TPR among those that flag at most ``max_dev_flagged``
of benign-dev, or the one flagging the fewest when none does; ties go to the highest
mix, since the transformer carries the defence against benign padding. Each prompt is
read as the layer reads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bastion.guard.corpora import load_corpus
from bastion.guard.scanners.input.ensemble import META_FILE, EnsembleScanner, mixed
from bastion.guard.training.thresholds import MAX_DEV_FLAGGED, guarded_rates

#: the mixes tried (weight of the transformer's logit).
MIX_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
Scores = tuple[np.ndarray, np.ndarray]


def member_scores(transformer_weights: str | None = None,
                  classifier_weights: str | None = None, sentences: bool | None = None
                  ) -> tuple[np.ndarray, Scores, Scores]:
    """``(labels, (val_transformer, val_ngram), (dev_transformer, dev_ngram))``: S-Labs
    val's labels and each member's probability for every S-Labs val and ``benign-dev``
    prompt, each prompt read as the member reads it (``None`` weights: the bundled)."""
    val, dev = load_corpus("s-labs-val"), load_corpus("benign-dev")
    transformer, ngram = EnsembleScanner(transformer_weights=transformer_weights,
                                         classifier_weights=classifier_weights,
                                         sentences=sentences).members()

    def scores(texts: list[str]) -> Scores:
        return (np.asarray([transformer.scan(t).score for t in texts]),
                np.asarray([ngram.find(t).score for t in texts]))

    labels = np.asarray([e.label for e in val])
    return labels, scores([e.text for e in val]), scores([e.text for e in dev])


def choose_mix(table: Sequence[dict[str, float]], max_dev_flagged: float
               ) -> dict[str, float]:
    """The row of ``table`` (``mix``, ``tpr``, ``dev_flagged``, ...) with the highest
    ``tpr`` among those with ``dev_flagged <= max_dev_flagged`` (ties: the highest
    ``mix``); when none qualifies, the one with the lowest ``dev_flagged``."""
    within = [r for r in table if r["dev_flagged"] <= max_dev_flagged]
    if within:
        return max(within, key=lambda r: (r["tpr"], r["mix"]))
    return min(table, key=lambda r: (r["dev_flagged"], -r["tpr"]))


def calibrate_mix(out_dir: str | Path, *, transformer_weights: str | None = None,
                  classifier_weights: str | None = None, grid: Sequence[float] = MIX_GRID,
                  max_dev_flagged: float = MAX_DEV_FLAGGED,
                  log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Choose ``mix`` and its threshold (see the module docstring), write
    ``ensemble.json`` into ``out_dir`` and return it."""
    log("scoring S-Labs val and benign-dev with both members ...")
    labels, (pt, pn), (dt, dn) = member_scores(transformer_weights, classifier_weights)
    table = []
    for mix in grid:
        r = guarded_rates(mixed(pt, pn, mix), labels, mixed(dt, dn, mix))
        table.append({"mix": mix, **r})
        log(f"mix {mix:.2f}: val TPR {r['tpr']:.4f} at FPR {r['fpr']:.4f}; benign-dev "
            f"flagged {r['dev_flagged']:.4f}")
    best = choose_mix(table, max_dev_flagged)
    members = {}
    for name, v, d in (("transformer", pt, dt), ("ngram", pn, dn)):
        r = guarded_rates(v, labels, d)
        members[name] = {"val_tpr": r["tpr"], "dev_flagged": r["dev_flagged"]}
    record = {
        "model": "mix * logit(transformer) + (1 - mix) * logit(n-gram head)",
        "mix": best["mix"],
        "threshold": best["threshold"],
        "rule": "per mix, threshold = lowest score with FPR <= 1% on S-Labs val and "
                f"<= {MAX_DEV_FLAGGED:.0%} of benign-dev flagged; mix = highest val TPR "
                f"among mixes flagging <= {max_dev_flagged:.0%} of benign-dev (ties: "
                "the highest mix)",
        "val": {"n": len(labels), "tpr": best["tpr"], "fpr": best["fpr"]},
        "benign_dev": {"n": len(dt), "flagged": best["dev_flagged"]},
        "members_alone": members,
        "grid": table,
        "transformer_weights": transformer_weights or "bundled",
        "classifier_weights": classifier_weights or "bundled",
        "command": "bastion guard train --part mix",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log(f"mix {record['mix']}, threshold {record['threshold']:.6f}: val TPR "
        f"{best['tpr']:.4f} at FPR {best['fpr']:.4f}, benign-dev flagged "
        f"{best['dev_flagged']:.4f}; wrote {out / META_FILE}")
    return record
