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
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
import zlib
from pathlib import Path

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


def main() -> None:
    import torch

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["cache", "search"])
    ap.add_argument("--cache", type=Path, default=CACHE)
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.phase == "search":
        search(args.cache)
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
