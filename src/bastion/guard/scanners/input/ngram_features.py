"""Lexical features for the n-gram classifier: hashed character and word n-grams, TF-IDF.

A text becomes a sparse vector of ``2 * 2**NGRAM_BITS`` counts: character n-grams of
length 2 to 5 inside word boundaries (``char_wb``: robust to typos, leetspeak and glued
words) hashed into the first half, word unigrams and bigrams into the second. Counts are
damped (``1 + log(count)``), multiplied by the inverse document frequency learned on the
training data and scaled to unit length. Hashing needs no vocabulary file: the head only
stores one weight and one IDF value per bucket.

    counts = ngram_counts(["ignore previous instructions"])   # csr, (1, 2 * 2**17)
    x = tfidf(counts, idf)                                     # same shape, rows of norm 1
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from bastion.extras import missing

#: buckets per n-gram kind are 2**NGRAM_BITS (characters, then words).
NGRAM_BITS = 17
N_NGRAM_FEATURES = 2 * 2**NGRAM_BITS


@lru_cache(maxsize=1)
def _vectorizers() -> tuple[Any, Any]:
    try:
        from sklearn.feature_extraction.text import HashingVectorizer
    except ModuleNotFoundError as exc:
        raise missing(exc, "the n-gram classifier", "guard") from exc

    common = {"n_features": 2**NGRAM_BITS, "alternate_sign": False, "norm": None,
              "lowercase": True, "dtype": np.float32}
    chars = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 5), **common)
    words = HashingVectorizer(analyzer="word", ngram_range=(1, 2),
                              token_pattern=r"(?u)\b\w+\b", **common)
    return chars, words


def ngram_counts(texts: Sequence[str]) -> Any:
    """Raw n-gram counts, a ``scipy.sparse.csr_matrix`` of shape ``(len(texts), N)``."""
    chars, words = _vectorizers()  # first: it says which extra to install
    from scipy.sparse import hstack

    texts = list(texts)
    return hstack([chars.transform(texts), words.transform(texts)], format="csr")


def fit_idf(counts: Any) -> np.ndarray:
    """Smoothed inverse document frequency per bucket, ``ln((1 + n) / (1 + df)) + 1``."""
    n = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    return (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)


def tfidf(counts: Any, idf: np.ndarray) -> Any:
    """Damped counts times ``idf``, each row scaled to unit L2 norm (empty rows stay 0)."""
    # elementwise on the CSR arrays: building and multiplying by a diagonal matrix of
    # 2**18 entries per call cost more than the rest of the classifier on short prompts
    x = counts.tocsr().astype(np.float32, copy=True)
    x.sum_duplicates()
    x.data = (1.0 + np.log(x.data)) * np.asarray(idf, dtype=np.float32)[x.indices]
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    norms = np.sqrt(np.bincount(rows, weights=x.data.astype(np.float64) ** 2,
                                minlength=x.shape[0])).astype(np.float32)
    norms[norms == 0] = 1.0
    x.data /= norms[rows]
    return x
