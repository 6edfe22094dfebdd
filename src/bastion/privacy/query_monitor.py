"""A per-client test of *what* a client asks: the share of its queries that look unlike
the model's training data, beside PRADA's test of *how* its queries are spread.

    from bastion.privacy.query_monitor import QueryShareMonitor, CombinedMonitor
    share = QueryShareMonitor().fit(train_x)          # (N, D) training images, flattened
    monitor = CombinedMonitor(PradaMonitor(0.9), share)
    verdict = monitor.observe("key-1", x, label)      # verdict["flagged"], ["by"]

A query is *out* when either cheap score passes its threshold:

- ``residual``: the L2 distance (pixel units) from the query to its projection on the
  top ``components`` principal components of the reference images (far from every
  training image's subspace: another domain, noise);
- ``midtone``: the share of pixels strictly between 0.05 and 0.95 (near-binary images
  such as digits have few; natural photos, noise and images moved by small signed steps
  have many).

Each threshold is the ``quantile`` of its score on half of the reference images (the
components come from the other half, so the thresholds are not fitted to their own
data), and ``p0``, the share of those held-out reference images that are out by either
score, is the rate expected from a client whose queries look like the training data. For
a client with ``k`` out queries among ``n``, the one-sided binomial tail
``P(K >= k | n, p0)`` below ``alpha`` flags it. The test runs after every query, so
``alpha`` is small (1e-6 by default: about 1% family-wise over 10,000 looks, by the union
bound). A pool of the training data's own distribution (for MNIST: MNIST's val split) is
*not* out, and no distribution test can tell it from a benign client.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from bastion.errors import ConfigError, InputError
from bastion.privacy.prada import PradaMonitor


@dataclass
class _Counts:
    queries: int = 0
    out: int = 0
    p_value: float = 1.0
    flagged_at: int | None = None


class QueryShareMonitor:
    """The out-of-distribution share test per client; thread-safe.

    Args:
        components: principal components of the ``residual`` score.
        quantile: each score's threshold, as a quantile of held-out reference scores.
        alpha: the binomial tail below which a client is flagged (for good).
        min_queries: queries before the first test.
        max_clients: clients remembered (least recently seen forgotten first).
    """

    def __init__(self, *, components: int = 50, quantile: float = 0.995, alpha: float = 1e-6,
                 min_queries: int = 20, max_clients: int = 1000) -> None:
        if not 0 < quantile < 1 or not 0 < alpha < 1:
            raise ConfigError(f"quantile and alpha must be in (0, 1), got {quantile} and "
                              f"{alpha}")
        if components < 1 or min_queries < 1 or max_clients < 1:
            raise ConfigError("components, min_queries and max_clients must be >= 1")
        self.components, self.quantile, self.alpha = components, quantile, alpha
        self.min_queries, self.max_clients = min_queries, max_clients
        self._clients: OrderedDict[str, _Counts] = OrderedDict()
        self._lock = threading.Lock()
        self.p0: float | None = None

    def fit(self, reference: np.ndarray) -> QueryShareMonitor:
        """Components from the first half of ``reference`` (N, D) in [0, 1], thresholds
        and ``p0`` from the second half. N >= 2 * (components + 1)."""
        ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
        if len(ref) < 2 * (self.components + 1):
            raise InputError(f"fit needs at least {2 * (self.components + 1)} reference "
                             f"images for {self.components} components, got {len(ref)}")
        half = len(ref) // 2
        self.mean = ref[:half].mean(0)
        _, _, vt = np.linalg.svd(ref[:half] - self.mean, full_matrices=False)
        self.basis = vt[:self.components]
        scores = self._scores(ref[half:])
        self.thresholds = np.quantile(scores, self.quantile, axis=0)
        self.p0 = max(float((scores > self.thresholds).any(1).mean()), 1.0 / (len(ref) - half))
        return self

    def _scores(self, x: np.ndarray) -> np.ndarray:
        """(N, 2) residual and midtone scores of (N, D) queries."""
        centred = x - self.mean
        residual = np.linalg.norm(centred - centred @ self.basis.T @ self.basis, axis=1)
        midtone = ((x > 0.05) & (x < 0.95)).mean(1)
        return np.stack([residual, midtone], 1)

    def score(self, x: Any) -> np.ndarray:
        """(N,) suspicion of (N, ...) queries: the larger score / threshold ratio (> 1 is
        out)."""
        if self.p0 is None:
            raise ConfigError("QueryShareMonitor.fit(reference) must run before scoring")
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        if flat.shape[1] != len(self.mean):
            raise InputError(f"queries of {flat.shape[1]} values; the reference had "
                             f"{len(self.mean)}")
        ratio: np.ndarray = (self._scores(flat) / np.maximum(self.thresholds, 1e-12)).max(1)
        return ratio

    def observe(self, key: str, x: Any) -> dict[str, Any]:
        """Record one query of client ``key``; its verdict: ``flagged``, ``queries``,
        ``out``, ``p_value``, ``flagged_at``."""
        from scipy.stats import binom

        out = bool(self.score(np.asarray(x)[None])[0] > 1)
        with self._lock:
            counts = self._clients.setdefault(key, _Counts())
            self._clients.move_to_end(key)
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
            counts.queries += 1
            counts.out += out
            if counts.queries >= self.min_queries and counts.flagged_at is None:
                counts.p_value = float(binom.sf(counts.out - 1, counts.queries, self.p0))
                if counts.p_value < self.alpha:
                    counts.flagged_at = counts.queries
            return {"flagged": counts.flagged_at is not None, "queries": counts.queries,
                    "out": counts.out, "p_value": counts.p_value,
                    "flagged_at": counts.flagged_at}


class CombinedMonitor:
    """PRADA's distance test or the out-of-distribution share test: either flags."""

    def __init__(self, prada: PradaMonitor, share: QueryShareMonitor) -> None:
        self.prada, self.share = prada, share

    def observe(self, key: str, x: Any, label: int) -> dict[str, Any]:
        """One query answered with ``label``; ``flagged``, ``by`` (the tests that
        flagged, in order of flagging) and both verdicts."""
        p = self.prada.observe(key, x, label)
        s = self.share.observe(key, x)
        firsts = {"prada": p.flagged_at, "share": s["flagged_at"]}
        by = sorted((k for k, v in firsts.items() if v is not None), key=lambda k: firsts[k])
        at = min((v for v in firsts.values() if v is not None), default=None)
        return {"flagged": at is not None, "flagged_at": at, "by": by,
                "prada": p.to_dict(), "share": s}
