"""PRADA (Juuti et al. 2019): flag a client whose queries look like a model-extraction
attack, from the distribution of distances between its queries.

    from bastion.privacy.prada import PradaMonitor
    monitor = PradaMonitor()                # delta 0.93, window 500: see docs/privacy.md
    for x, label in stream:                 # x: any array, flattened; label: served class
        verdict = monitor.observe("key-1", x, label)
        if verdict.flagged: ...

Per client and per predicted class ``c`` the monitor keeps a *growing set* ``G_c`` of
earlier queries. A new query ``x`` answered with class ``c`` gets the minimum L2
distance ``d`` to ``G_c`` (none when ``G_c`` is empty: ``x`` starts it). Every ``d``
joins the client's distance list ``D``; ``x`` joins ``G_c`` only when ``d`` exceeds the
class threshold ``T_c = max(T_c, mean - std of the distances that grew G_c)``, so
``G_c`` spreads over the class instead of piling up near-duplicates. Natural queries give
roughly normal distances; an extraction attack mixes very close queries (synthetic steps
from a seed, near-duplicates) with far ones (another domain, noise), and ``D`` stops
looking normal. Once ``D`` holds ``min_distances`` values, the Shapiro-Wilk statistic
``W`` of its last ``window`` values is taken after every query; ``W < delta`` flags the
client, for good (a flag is a fact about the client's past, not its present).

Memory is bounded: at most ``max_per_class`` queries per class in ``G_c`` (a full set
stops growing; distances are still measured against it), the last ``window`` distances,
and ``max_clients`` clients (the least recently seen is forgotten). That is about
``classes * max_per_class * dims * 4`` bytes per client: 10 x 1,000 x 784 x 4 = 31 MB
for an MNIST client at the defaults, the worst case. Everything is deterministic: no
sampling, the same stream gives the same verdicts.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bastion.errors import ConfigError, InputError


@dataclass(frozen=True)
class PradaVerdict:
    """The monitor's state for one client after a query.

    ``flagged``: the client has been flagged (now or earlier); ``new``: flagged by this
    query; ``w``: the last Shapiro-Wilk statistic (``None`` before ``min_distances``);
    ``queries``: the client's queries so far; ``flagged_at`` and ``w_at_flag``: the
    query count and W when flagged (``None`` if not flagged).
    """

    flagged: bool
    new: bool
    w: float | None
    queries: int
    flagged_at: int | None
    w_at_flag: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"flagged": self.flagged, "w": self.w, "queries": self.queries,
                "flagged_at": self.flagged_at, "w_at_flag": self.w_at_flag}


@dataclass
class _Class:
    stack: np.ndarray | None = None  # the growing set, (n, dims) float32
    grew_by: list[float] = field(default_factory=list)  # distances that grew the set
    threshold: float = 0.0


@dataclass
class _Client:
    classes: dict[int, _Class] = field(default_factory=dict)
    distances: deque[float] = field(default_factory=deque)
    queries: int = 0
    w: float | None = None
    flagged_at: int | None = None
    w_at_flag: float | None = None


def _positive_int(name: str, value: Any, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"PRADA {name} must be an integer >= {least}, got {value!r}")
    return value


class PradaMonitor:
    """PRADA per client; thread-safe (the service calls it from a thread pool).

    Args:
        delta: Shapiro-Wilk threshold in (0, 1); ``W < delta`` flags the client.
        min_distances: distances needed before the first test (>= 3, scipy's minimum).
        window: the test reads the last ``window`` distances (3 .. 5000: scipy's W is
            exact up to 5000 samples).
        max_per_class: cap on each class's growing set, queries.
        max_clients: clients remembered; the least recently seen is forgotten first.
    """

    def __init__(self, delta: float = 0.93, *, min_distances: int = 100, window: int = 500,
                 max_per_class: int = 1000, max_clients: int = 1000) -> None:
        if isinstance(delta, bool) or not isinstance(delta, int | float) or not 0 < delta < 1:
            raise ConfigError(f"PRADA delta is a Shapiro-Wilk threshold in (0, 1), got "
                              f"{delta!r}; the default is 0.93")
        self.delta = float(delta)
        self.min_distances = _positive_int("min_distances", min_distances, 3)
        self.window = _positive_int("window", window, 3)
        if self.window > 5000:
            raise ConfigError(f"PRADA window must be <= 5000 (Shapiro-Wilk's range), got "
                              f"{window}")
        if self.min_distances > self.window:
            raise ConfigError(f"PRADA min_distances ({min_distances}) cannot exceed window "
                              f"({window}): the test would never run")
        self.max_per_class = _positive_int("max_per_class", max_per_class)
        self.max_clients = _positive_int("max_clients", max_clients)
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._lock = threading.Lock()

    def _client(self, key: str) -> _Client:
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = _Client(distances=deque(maxlen=self.window))
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(key)
        return client

    def observe(self, key: str, x: Any, label: int) -> PradaVerdict:
        """Record one query ``x`` (any shape; flattened to float32) of client ``key``,
        answered with class ``label``; the client's verdict after it."""
        vec = np.asarray(x, dtype=np.float32).reshape(-1)
        if vec.size == 0 or not np.isfinite(vec).all():
            raise InputError("a PRADA query must be a non-empty array of finite numbers")
        with self._lock:
            client = self._client(key)
            was_flagged = client.flagged_at is not None
            client.queries += 1
            self._grow(client, vec, int(label))
            if len(client.distances) >= self.min_distances:
                client.w = _shapiro_w(np.fromiter(client.distances, dtype=np.float64))
                if not was_flagged and client.w < self.delta:
                    client.flagged_at, client.w_at_flag = client.queries, client.w
            return self._verdict(client, new=not was_flagged and client.flagged_at is not None)

    @staticmethod
    def _verdict(client: _Client, new: bool) -> PradaVerdict:
        return PradaVerdict(flagged=client.flagged_at is not None, new=new, w=client.w,
                            queries=client.queries, flagged_at=client.flagged_at,
                            w_at_flag=client.w_at_flag)

    def observe_batch(self, key: str, xs: np.ndarray, labels: Any) -> PradaVerdict:
        """:meth:`observe` each row of ``xs`` (N, ...) in order; the verdict after the
        last, with ``new`` set if any row flagged the client."""
        xs = np.asarray(xs, dtype=np.float32)
        labels = np.asarray(labels).reshape(-1)
        if len(xs) == 0 or len(xs) != len(labels):
            raise InputError(f"observe_batch needs N >= 1 queries and N labels, got "
                             f"{len(xs)} queries and {len(labels)} labels")
        new = False
        for row, label in zip(xs, labels, strict=True):
            verdict = self.observe(key, row, int(label))
            new = new or verdict.new
        return dataclasses.replace(verdict, new=new)

    def _grow(self, client: _Client, vec: np.ndarray, label: int) -> None:
        cls = client.classes.setdefault(label, _Class())
        if cls.stack is None:
            cls.stack = vec[None, :].copy()
            return
        if cls.stack.shape[1] != vec.size:
            raise InputError(f"query of {vec.size} values after queries of "
                             f"{cls.stack.shape[1]}: one client's queries must share a shape")
        d = float(np.sqrt(((cls.stack - vec) ** 2).sum(axis=1).min()))
        client.distances.append(d)
        if d > cls.threshold and len(cls.stack) < self.max_per_class:
            cls.stack = np.concatenate([cls.stack, vec[None, :]])
            cls.grew_by.append(d)
            spread = np.asarray(cls.grew_by)
            cls.threshold = max(cls.threshold, float(spread.mean() - spread.std()))

    def verdict(self, key: str) -> PradaVerdict | None:
        """The client's current state, or ``None`` if it is not remembered."""
        with self._lock:
            client = self._clients.get(key)
            return None if client is None else self._verdict(client, new=False)

    def stored_points(self, key: str) -> int:
        """Queries held in the client's growing sets (for checking the memory bound)."""
        with self._lock:
            client = self._clients.get(key)
            return 0 if client is None else sum(
                0 if c.stack is None else len(c.stack) for c in client.classes.values())

    def __len__(self) -> int:
        return len(self._clients)


def _shapiro_w(values: np.ndarray) -> float:
    """Shapiro-Wilk W of ``values`` (n >= 3); 1.0 for a constant sample, where the test
    is undefined (all distances equal is not the mixture PRADA looks for)."""
    from scipy.stats import shapiro

    if float(values.max() - values.min()) <= 1e-12:
        return 1.0
    return float(shapiro(values).statistic)
