"""Train the ensemble's n-gram member: ``bastion guard train --part ngram``.

A logistic regression (liblinear, class-balanced) on the hashed character 2-5-gram and
word 1-2-gram TF-IDF of :mod:`bastion.guard.scanners.input.ngram_features`, trained on
:func:`~bastion.guard.training.data.training_data` plus every hard negative at sample
weight :data:`HARD_NEGATIVE_WEIGHT`. ``C`` is chosen from :data:`C_GRID` by 5-fold
cross-validation on the training data, scoring the TPR at 1% FPR on each held-out fold
(an attack and its perturbed copy share a fold). S-Labs val serves only to pick the
threshold (FPR <= 1%), each prompt read as the member reads it (windows, sentences,
decoded payloads, 12-word phrases; the maximum). Weights are stored as float16.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bastion.guard.corpora import load_corpus
from bastion.guard.scanners.input.ngram import HEAD_FILE, META_FILE, Head, pieces
from bastion.guard.scanners.input.ngram_features import NGRAM_BITS, fit_idf, ngram_counts, tfidf
from bastion.guard.training.data import hard_negatives, training_data
from bastion.guard.training.thresholds import TARGET_FPR, threshold_for_fpr

#: regularisation strengths compared by cross-validation.
C_GRID = (1.0, 4.0, 16.0)
#: sample weight of bastion's hard negatives.
HARD_NEGATIVE_WEIGHT = 10.0


def _dataset(seed: int, augment: bool, extra: Sequence[str | Path],
             log: Callable[[str], Any]) -> dict[str, Any]:
    """Training texts, labels, groups, sample weights and counts, hard negatives last."""
    data = training_data(seed=seed, augment=augment, extra=extra, log=log)
    texts, labels, counts = data["texts"], data["labels"], data["counts"]
    known = set(texts)
    negatives = [t for t in hard_negatives() if t not in known]
    counts["bastion-hard-negatives"] = {"read": len(negatives), "kept": len(negatives),
                                        "attacks": 0}
    log(f"bastion-hard-negatives: {len(negatives)} benign texts, weight "
        f"{HARD_NEGATIVE_WEIGHT}")
    return {"texts": texts + negatives, "labels": labels + [0] * len(negatives),
            "counts": counts,
            "groups": np.r_[np.asarray(data["groups"]), len(texts) + np.arange(len(negatives))],
            "weights": np.r_[np.ones(len(texts)), np.full(len(negatives), HARD_NEGATIVE_WEIGHT)]}


def _tpr_at_target_fpr(model: Any, x: Any, y: np.ndarray) -> float:
    """Cross-validation score: TPR on a held-out fold at the fold's own 1%-FPR threshold
    (the operating point the layer is used at; ROC AUC would reward the whole curve)."""
    z = model.decision_function(x)
    t = threshold_for_fpr(z[y == 0])
    return float(np.mean(z[y == 1] >= t))


def _fit(x: Any, y: np.ndarray, groups: np.ndarray, weights: np.ndarray, seed: int,
         log: Callable[[str], Any]) -> tuple[Any, float, dict[str, float]]:
    """``(model, C, {C: cross-validated TPR})``: the best ``C`` of :data:`C_GRID`, refit on
    all the data."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score

    # an attack and its perturbed copy share a group and so a fold: otherwise the copy
    # in the training folds tells the model the held-out original, rewarding weak
    # regularisation
    folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
    cv: dict[str, float] = {}
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced",
                                   solver="liblinear")
        cv[str(c)] = float(np.mean(cross_val_score(
            model, x, y, cv=folds, groups=groups, scoring=_tpr_at_target_fpr,
            params={"sample_weight": weights})))
        log(f"C={c}: 5-fold TPR at FPR <= {TARGET_FPR:.0%} {cv[str(c)]:.4f}")
    best = float(max(C_GRID, key=lambda c: cv[str(c)]))
    model = LogisticRegression(C=best, max_iter=3000, class_weight="balanced",
                               solver="liblinear")
    model.fit(x, y, sample_weight=weights)
    return model, best, cv


def member_scores(head: Head, texts: list[str]) -> np.ndarray:
    """Per-text probability as the member reads it: the maximum over
    :func:`~bastion.guard.scanners.input.ngram.pieces` (a blank text is one piece)."""
    found: list[str] = []
    owner: list[int] = []
    for i, text in enumerate(texts):
        parts = [p[3] for p in pieces(text)] if text.strip() else [text]
        found += parts
        owner += [i] * len(parts)
    z = head.logits(found)
    best = np.full(len(texts), -np.inf)
    np.maximum.at(best, np.asarray(owner), z)
    return 1.0 / (1.0 + np.exp(-np.clip(best, -60.0, 60.0)))


def train_ngram(out_dir: str | Path, *, seed: int = 0, augment: bool = True,
                extra: Sequence[str | Path] = (),
                log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Train the head; write ``ensemble_ngram_head.npz`` and ``.json`` into ``out_dir``
    and return the record written to the JSON."""
    began = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = _dataset(seed, augment, extra, log)
    log(f"featurising {len(data['texts'])} training texts ...")
    ngrams = ngram_counts(data["texts"])
    idf = fit_idf(ngrams)
    y = np.asarray(data["labels"], dtype=np.int64)
    model, c, cv = _fit(tfidf(ngrams, idf).tocsr(), y, data["groups"], data["weights"],
                        seed, log)
    # stored as float16 (half the size); the scores use exactly these rounded values
    ngram_coef = model.coef_.reshape(-1).astype(np.float32).astype(np.float16)
    idf16 = idf.astype(np.float16)
    intercept = np.asarray([model.intercept_[0]], dtype=np.float32)
    head = Head(ngram_coef.astype(np.float32), idf16.astype(np.float32), float(intercept[0]))
    val = load_corpus("s-labs-val")
    yv = np.asarray([e.label for e in val])
    pv = member_scores(head, [e.text for e in val])
    threshold = threshold_for_fpr(pv[yv == 0])
    stats = {"n": len(val), "fpr": float(np.mean(pv[yv == 0] >= threshold)),
             "tpr": float(np.mean(pv[yv == 1] >= threshold))}
    log(f"C={c}; threshold {threshold:.6f} on S-Labs val: FPR {stats['fpr']:.4f}, "
        f"TPR {stats['tpr']:.4f}")
    np.savez_compressed(out / HEAD_FILE, intercept=intercept, ngram_coef=ngram_coef,
                        idf=idf16)
    record = _record(data, c, cv, threshold, stats, seed=seed, augment=augment)
    record["wall_time_s"] = round(time.perf_counter() - began, 1)
    (out / META_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {out / HEAD_FILE} and {out / META_FILE} in {record['wall_time_s']} s")
    return record


def _record(data: dict[str, Any], c: float, cv: dict[str, float], threshold: float,
            val: dict[str, float], *, seed: int, augment: bool) -> dict[str, Any]:
    """The JSON record written beside the head."""
    import sklearn

    return {
        "model": "hashed character 2-5-gram and word 1-2-gram TF-IDF",
        "head": "logistic regression on tf-idf (sigmoid(tfidf @ ngram_coef + intercept)), "
                "class_weight=balanced",
        "ngram_bits": NGRAM_BITS,
        "C": c,
        "C_chosen_by": "5-fold cross-validation",
        "cv_tpr_at_1pct_fpr": cv,
        "seed": seed,
        "augment": augment,
        "hard_negative_weight": HARD_NEGATIVE_WEIGHT,
        "training_counts": data["counts"],
        "n_train": len(data["texts"]),
        "n_train_attacks": int(sum(data["labels"])),
        "dropped": "training texts equal to an S-Labs val or test text, and duplicates",
        "held_out": "S-Labs val (threshold only) and test; the over-refusal set",
        "threshold": threshold,
        "threshold_rule": f"lowest score with FPR <= {TARGET_FPR:.0%} on S-Labs val, "
                          "read like the member (64/32-token windows, sentences, decoded "
                          "payloads, 12-word phrases; the maximum)",
        "val": val,
        "command": "bastion guard train --part ngram" + ("" if augment else " --no-augment")
                   + ("" if seed == 0 else f" --seed {seed}"),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "platform": sys.platform,
    }
