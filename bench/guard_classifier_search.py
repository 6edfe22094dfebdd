"""Model search for the guard classifier (issue 7): feature sets, heads, hard negatives.

Phase ``cache`` embeds every text once with MiniLM (training texts whole, as the trainer
does; S-Labs val and the over-refusal set cut into the scanner's 64/32-token
windows) and stores the arrays under ``--cache`` (default /work/runs/guard-cache).
Phase ``search`` fits each candidate on the training data only, picks its threshold on
S-Labs val (FPR <= 1%) and prints val numbers, 5-fold CV AUROC on train and the
over-refusal flag rate (measured, never trained on). Each candidate is fitted twice, each
half of bastion's hard negatives held out once, and the held-out half's flag rate is
reported too. S-Labs test is not read: bench/guard_classifier.py scores the chosen head.

    OMP_NUM_THREADS=1 .venv/bin/python bench/guard_classifier_search.py cache
    OMP_NUM_THREADS=1 .venv/bin/python bench/guard_classifier_search.py search

Phase ``robust`` (n-gram heads only, no MiniLM; about 10 minutes on 2 cores) compares
training recipes and piece cuts for over-refusal and perturbation robustness, each
candidate fitted twice with each half of bastion's hard negatives held out once: S-Labs
val TPR at the val threshold (FPR <= 1%), the held-out hard negatives flagged at that
threshold (the benign dev set; the over-refusal set is not read), and the TPR drop in
points on the attacks among the first 400 S-Labs val prompts when a black-box attacker
gets 5 tries of one family and budget (classifier alone, no rules), as in
bench/guard_classifier.py:

    OMP_NUM_THREADS=1 .venv/bin/python bench/guard_classifier_search.py robust
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path("/work/runs/guard-cache")


def _key(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def cached_embed(texts: list[str], name: str, cache: Path) -> np.ndarray:
    """MiniLM embeddings of ``texts``, read from ``cache/name-<hash>.npy`` when there."""
    from bastion.guard.scanners.input.classifier import embed

    path = cache / f"{name}-{_key(texts)}.npy"
    if path.exists():
        return np.load(path)
    began = time.perf_counter()
    x = embed(texts)
    np.save(path, x)
    print(f"embedded {name}: {len(texts)} texts in {time.perf_counter() - began:.0f} s",
          flush=True)
    return x


def window_texts(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Every text cut into the scanner's windows; ``owner[i]`` is window i's text index."""
    from bastion.guard.scanners.input.classifier import token_offsets, windows

    out: list[str] = []
    owner: list[int] = []
    for i, text in enumerate(texts):
        if not text.strip():
            out.append(text)
            owner.append(i)
            continue
        for s, e in windows(text, token_offsets(text), 64, 32):
            out.append(text[s:e])
            owner.append(i)
    return out, np.asarray(owner)


def _fold(row: dict) -> int:
    """Which half of the hard negatives a row is held out in (templates by phrase)."""
    if "phrase" in row:
        return int(row["phrase"]) % 2
    return zlib.crc32(row["text"].encode("utf-8")) % 2


#: (embedding scale, use n-grams, hard-negative weight, C): the candidates compared.
CANDIDATES = [(1.0, False, 0.0, 16.0), (1.0, False, 10.0, 16.0), (1.0, True, 0.0, 4.0),
              (1.0, True, 10.0, 4.0), (2.0, True, 10.0, 4.0), (3.0, True, 10.0, 4.0),
              (2.0, True, 10.0, 1.0), (0.0, True, 0.0, 4.0), (0.0, True, 10.0, 4.0),
              (0.5, True, 10.0, 4.0), (0.5, True, 0.0, 4.0), (1.0, True, 10.0, 8.0)]


def search(cache: Path) -> None:
    """Fit every candidate twice (each half of the hard negatives held out once)."""
    from scipy.sparse import csr_matrix, hstack, vstack
    from sklearn.linear_model import LogisticRegression

    from bastion.guard import train_classifier as tc
    from bastion.guard.corpora import load_corpus, read_jsonl
    from bastion.guard.evaluate import auroc
    from bastion.guard.scanners.input._ngrams import fit_idf, ngram_counts, tfidf

    data = tc.training_data(seed=0, augment=True, log=lambda s: None)
    x_text, y = data["texts"], np.asarray(data["labels"])
    e_train = cached_embed(x_text, "train", cache)
    hn_path = Path(tc.__file__).parent / "data" / tc.HARD_NEGATIVES_FILE
    rows = [json.loads(line) for line in hn_path.read_text("utf-8").splitlines() if line]
    # the 132 hard negatives this table was made with (the robust phase reads all)
    rows = [r for r in rows if r.get("source") in tc.RECIPES["bundled"].hard_negative_sources]
    hn = [r["text"] for r in rows]
    fold = np.asarray([_fold(r) for r in rows])
    e_hn = cached_embed(hn, "hardneg", cache)
    read_jsonl(hn_path)  # the file is a valid corpus

    def windowed(name: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        ex = load_corpus(name)
        wins, owner = window_texts([e.text for e in ex])
        return wins, owner, cached_embed(wins, f"{name}-windows", cache), \
            np.asarray([e.label for e in ex])

    vw, vo, ev, vy = windowed("s-labs-val")
    ow, oo, eo, oy = windowed("over-refusal")
    c_train, c_hn, c_val, c_over = (ngram_counts(t) for t in (x_text, hn, vw, ow))

    def best(z: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
        out = np.full(n, -np.inf)
        np.maximum.at(out, owner, z)
        return out

    for alpha, use_ngrams, hn_weight, c in CANDIDATES:
        res = []
        for k in (0, 1):
            sel = fold != k
            counts = vstack([c_train, c_hn[sel]]).tocsr()
            idf = fit_idf(counts)

            def feats(e: np.ndarray, cnt: object, idf: np.ndarray = idf,
                      alpha: float = alpha, use_ngrams: bool = use_ngrams) -> object:
                parts = [csr_matrix(e * alpha)] if alpha else []
                if use_ngrams:
                    parts.append(tfidf(cnt, idf))
                return hstack(parts).tocsr() if len(parts) > 1 else parts[0]

            yy = np.r_[y, np.zeros(sel.sum(), int)]
            w = np.r_[np.ones(len(y)), np.full(sel.sum(), hn_weight)]
            model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced",
                                       solver="liblinear")
            model.fit(feats(np.vstack([e_train, e_hn[sel]]), counts), yy, sample_weight=w)
            pv = best(model.decision_function(feats(ev, c_val)), vo, len(vy))
            t = tc.threshold_for_fpr(pv[vy == 0])
            ph = model.decision_function(feats(e_hn[~sel], c_hn[~sel]))
            po = best(model.decision_function(feats(eo, c_over)), oo, len(oy))
            res.append((auroc(vy, pv), np.mean(pv[vy == 1] >= t), np.mean(ph >= t),
                        np.mean(po >= t)))
        m = np.mean(res, axis=0)
        print(f"embed_scale={alpha} ngrams={use_ngrams} hard_neg_weight={hn_weight} C={c}: "
              f"val AUROC {m[0]:.4f}, val TPR@1%FPR {m[1]:.4f}, held-out hard negatives "
              f"flagged {m[2]:.3f}, over-refusal flagged {m[3]:.3f}", flush=True)


#: robust-phase candidates: (label, settings); unspecified settings as in ``_BASE``.
#: ``rounds``: how many of the robust recipe's augmentation rounds are trained on (1: the
#: bundled recipe's single round).
_BASE: dict = {"clauses": False, "min_words": 0, "phrase_words": 12, "hard_neg_weight": 10.0,
               "C": 16.0, "benign_pieces": False, "rounds": 1, "padding": 0.0,
               "phrase_offset": 0.0}
ROBUST_CANDIDATES: list[tuple[str, dict]] = [
    ("bundled recipe", {}),
    ("+ 3-word piece minimum", {"min_words": 3}),
    ("+ benign pieces, hard negatives x30, C=4",
     {"min_words": 3, "benign_pieces": True, "hard_neg_weight": 30.0, "C": 4.0}),
    ("+ heavy typos/synonym copy",
     {"min_words": 3, "benign_pieces": True, "hard_neg_weight": 30.0, "C": 4.0, "rounds": 2}),
    ("+ clauses", {"min_words": 3, "benign_pieces": True, "hard_neg_weight": 30.0, "C": 4.0,
                   "rounds": 2, "clauses": True}),
    ("+ C=2", {"min_words": 3, "benign_pieces": True, "hard_neg_weight": 30.0, "C": 2.0,
               "rounds": 2, "clauses": True}),
    ("+ leetspeak copy (recipe robust)",
     {"min_words": 3, "benign_pieces": True, "hard_neg_weight": 30.0, "C": 2.0, "rounds": 3,
      "clauses": True}),
    ("robust, phrase_words=0", {"min_words": 3, "benign_pieces": True, "hard_neg_weight": 30.0,
                                "C": 2.0, "rounds": 3, "clauses": True, "phrase_words": 0}),
    ("robust, phrases need +1 logit", {"min_words": 3, "benign_pieces": True,
                                       "hard_neg_weight": 30.0, "C": 2.0, "rounds": 3,
                                       "clauses": True, "phrase_offset": 1.0}),
    ("robust, hard negatives x100", {"min_words": 3, "benign_pieces": True,
                                     "hard_neg_weight": 100.0, "C": 2.0, "rounds": 3,
                                     "clauses": True}),
    ("robust + padded copies of half the attacks",
     {"min_words": 3, "benign_pieces": True, "hard_neg_weight": 30.0, "C": 2.0, "rounds": 3,
      "clauses": True, "padding": 0.5}),
]
#: (family, budget) cells of the robust phase's attack.
ROBUST_CELLS = [("padding", 1), ("padding", 5), ("synonym", 3), ("synonym", 5),
                ("typos", 3), ("typos", 5), ("leetspeak", 3), ("leetspeak", 5)]


def robust() -> None:
    """Compare recipes for over-refusal and perturbation robustness (see the docstring)."""
    import random

    from scipy.sparse import vstack
    from sklearn.linear_model import LogisticRegression

    from bastion.guard import train_classifier as tc
    from bastion.guard.corpora import load_corpus
    from bastion.guard.perturb import PERTURBATIONS
    from bastion.guard.scanners.input._ngrams import fit_idf, ngram_counts, tfidf
    from bastion.guard.scanners.input.classifier import pieces

    began = time.perf_counter()
    rounds = tc.RECIPES["robust"].augment_rounds
    data = tc.training_data(seed=0, augment=True, rounds=rounds, log=lambda s: None)
    texts, labels = data["texts"], np.asarray(data["labels"])
    n_base = len(texts) - sum(data["counts"][k]["kept"] for k, _, _ in rounds)
    round_of = np.zeros(len(texts), dtype=np.int64)
    at = n_base
    for r, (key, _, _) in enumerate(rounds, 1):
        round_of[at:at + data["counts"][key]["kept"]] = r
        at += data["counts"][key]["kept"]
    hn_path = Path(tc.__file__).parent / "data" / tc.HARD_NEGATIVES_FILE
    rows = [json.loads(line) for line in hn_path.read_text("utf-8").splitlines() if line]
    hn = [r["text"] for r in rows]
    fold = np.asarray([_fold(r) for r in rows])
    # padded copies of the original attacks, with short benign training prompts
    rng = random.Random(1)
    short = [t for t, y in zip(texts[:n_base], labels[:n_base], strict=True)
             if y == 0 and 4 <= len(t.split()) <= 25]
    padded = []
    for i in np.flatnonzero((labels == 1) & (round_of == 0)):
        around = rng.sample(short, rng.choice((1, 2, 3, 5)))
        cut = rng.randint(0, len(around))
        padded.append(" ".join([*around[:cut], texts[i], *around[cut:]]))
    pad_draw = np.asarray([random.Random(f"p{i}").random() for i in range(len(padded))])
    counts = {"train": ngram_counts(texts), "pad": ngram_counts(padded)}
    bench = {"val": load_corpus("s-labs-val")}
    vy = np.asarray([e.label for e in bench["val"]])
    attacks = [e.text for e in bench["val"][:400] if e.label == 1]
    evals: dict[str, list[str]] = {"val": [e.text for e in bench["val"]], "hn": hn,
                                   "att": attacks}
    for family, budget in ROBUST_CELLS:
        evals[f"{family}{budget}"] = [
            PERTURBATIONS[family](t, random.Random(f"x:{family}:{budget}:{i}:{k}"), budget)
            for i, t in enumerate(attacks) for k in range(5)]
    print(f"data ready in {time.perf_counter() - began:.0f} s: {len(texts)} training texts, "
          f"{len(hn)} hard negatives, {len(attacks)} val attacks", flush=True)
    cut_cache: dict[tuple, dict] = {}

    def cut(clauses: bool, min_words: int, phrase_words: int) -> dict:
        key = (clauses, min_words, phrase_words)
        if key not in cut_cache:
            tables = {}
            for name, items in evals.items():
                lab, txt, own = [], [], []
                for i, t in enumerate(items):
                    found = (pieces(t, 64, 32, phrase_words=phrase_words, clauses=clauses,
                                    min_words=min_words) if t.strip() else
                             [(0, 0, "window", t)])
                    lab += [p[2] for p in found]
                    txt += [p[3] for p in found]
                    own += [i] * len(found)
                tables[name] = (np.asarray(lab), ngram_counts(txt), np.asarray(own), len(items))
            benign = [i for i in range(n_base) if labels[i] == 0]
            bits, _ = tc.benign_pieces([texts[i] for i in benign], [0] * len(benign),
                                            per_text=3, seed=0, clauses=clauses,
                                            min_words=max(min_words, 3))
            hbits, howners = tc.benign_pieces(hn, [0] * len(hn), per_text=3,
                                              whole=range(len(hn)), clauses=clauses,
                                              min_words=max(min_words, 3))
            cut_cache[key] = {"tables": tables, "bits": ngram_counts(bits),
                              "hbits": ngram_counts(hbits), "howners": howners}
        return cut_cache[key]

    hn_counts = ngram_counts(hn)
    print("| candidate | val TPR | held-out hard negatives flagged | "
          + " | ".join(f"{f} {b}" for f, b in ROBUST_CELLS) + " |", flush=True)
    for label, settings in ROBUST_CANDIDATES:
        cfg = {**_BASE, **settings}
        c = cut(cfg["clauses"], cfg["min_words"], cfg["phrase_words"])
        res = []
        for k in (0, 1):
            keep = fold != k
            sel_train = round_of <= cfg["rounds"]
            blocks = [counts["train"][sel_train], hn_counts[keep]]
            y = [labels[sel_train], np.zeros(keep.sum())]
            w = [np.ones(sel_train.sum()), np.full(keep.sum(), cfg["hard_neg_weight"])]
            if cfg["benign_pieces"]:
                hkeep = keep[c["howners"]]
                blocks += [c["bits"], c["hbits"][hkeep]]
                y += [np.zeros(c["bits"].shape[0]), np.zeros(hkeep.sum())]
                w += [np.ones(c["bits"].shape[0]), np.full(hkeep.sum(), cfg["hard_neg_weight"])]
            if cfg["padding"]:
                pick = pad_draw < cfg["padding"]
                blocks.append(counts["pad"][pick])
                y.append(np.ones(pick.sum()))
                w.append(np.ones(pick.sum()))
            x = vstack(blocks).tocsr()
            idf = fit_idf(x)
            model = LogisticRegression(C=cfg["C"], max_iter=3000, class_weight="balanced",
                                       solver="liblinear")
            model.fit(tfidf(x, idf), np.concatenate(y), sample_weight=np.concatenate(w))

            def score(name: str, c: dict = c, model: Any = model, idf: np.ndarray = idf,
                      offset: float = cfg["phrase_offset"]) -> np.ndarray:
                lab, cnt, own, n = c["tables"][name]
                z = model.decision_function(tfidf(cnt, idf)) - offset * (lab == "phrase")
                out = np.full(n, -np.inf)
                np.maximum.at(out, own, z)
                return out

            sv = score("val")
            t = tc.threshold_for_fpr(sv[vy == 0])
            caught = score("att") >= t
            row = [float(np.mean(sv[vy == 1] >= t)), float(np.mean(score("hn")[~keep] >= t))]
            for family, budget in ROBUST_CELLS:
                tries = score(f"{family}{budget}").reshape(-1, 5)
                row.append(100 * float(np.mean(caught & (tries < t).any(axis=1))))
            res.append(row)
        m = np.mean(res, axis=0)
        print(f"| {label} | {m[0]:.1%} | {m[1]:.1%} | "
              + " | ".join(f"{v:.1f}" for v in m[2:]) + " |", flush=True)
    print(f"done in {time.perf_counter() - began:.0f} s")


def main() -> None:
    import torch

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["cache", "search", "robust"])
    ap.add_argument("--cache", type=Path, default=CACHE)
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.phase == "search":
        search(args.cache)
        return
    if args.phase == "robust":
        robust()
        return
    from bastion.guard import train_classifier as tc
    from bastion.guard.corpora import load_corpus

    data = tc.training_data(seed=0, augment=True, log=lambda s: print(s, flush=True))
    cached_embed(data["texts"], "train", args.cache)
    for name in ("s-labs-val", "over-refusal"):
        ex = load_corpus(name)
        wins, _ = window_texts([e.text for e in ex])
        cached_embed(wins, f"{name}-windows", args.cache)


if __name__ == "__main__":
    main()
