"""Per-session anomaly detection: the signals of a jailbreak search or a model extraction.

A single prompt can look harmless; a session can still be an attack. Three signals are
counted over a sliding window of ``window_s`` seconds per (API key, session):

* **flagged burst**: ``flagged_burst`` prompts the guard did not allow;
* **probing**: a prompt with ``near_duplicates`` earlier prompts at cosine similarity
  ``>= similarity`` (small edits of one prompt: a search for the variant that passes);
  an identical repeat of a prompt that was allowed is not an edit and does not count;
* **volume**: ``volume`` prompts in the window.

Similarity uses hashed character 3-grams (a ``dims``-dimensional count vector, L2
normalised) because it is cheap (microseconds, no model, no extra process) and robust to
the small character edits an optimiser makes. Crossing any threshold *escalates* the
session once per ``cooldown_s``: the caller files a review item and, with ``throttle``,
rate-limits the session at ``throttle_rate_per_s`` until ``throttle_s`` have passed.

Without a session id every prompt of a key shares one session, so probing or volume
there would throttle all of an app's users at once: such a *shared* session is
escalated but throttled only for a flagged burst (``throttle_shared_probing`` changes
that). Flagged prompts are also counted per key over all its sessions
(``key_flagged_burst``), so an attacker who sends each try with a new session id is
still escalated (filed for review; the key is not throttled).

State lives in this process (bounded: ``max_sessions`` sessions, ``max_history`` prompts
each), so with several replicas each sees its share of a session; escalations go to the
shared database and the throttle to the shared rate limiter.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class AnomalyConfig:
    """Thresholds of the three signals; windows and durations in seconds."""

    window_s: float = 300.0
    flagged_burst: int = 5
    similarity: float = 0.9
    near_duplicates: int = 6
    volume: int = 600
    cooldown_s: float = 300.0
    throttle: bool = True
    throttle_rate_per_s: float = 0.2
    throttle_s: float = 600.0
    throttle_shared_probing: bool = False
    key_flagged_burst: int = 10
    dims: int = 2048
    max_history: int = 64
    max_sessions: int = 10_000


#: characters read from each end of a longer prompt.
_EDGE_CHARS = 2000


def ngram_vector(text: str, dims: int = 2048, n: int = 3) -> np.ndarray:
    """Hashed character ``n``-gram counts of ``text``, L2 normalised.

    Returns a float32 array of shape ``(dims,)``; all zeros for text shorter than ``n``.
    Lower-cased and whitespace-collapsed first, so case and spacing edits do not count;
    a text over 4,000 characters is read at its first and last 2,000.
    crc32 rather than ``hash()``: Python's string hash is salted per process, and replicas
    (and tests) should agree on a prompt's vector.
    """
    if len(text) > 2 * _EDGE_CHARS:
        # Bound the cost on huge prompts: probing edits show at the start or the end.
        text = text[:_EDGE_CHARS] + " " + text[-_EDGE_CHARS:]
    norm = " ".join(text.lower().split())
    vec = np.zeros(dims, dtype=np.float32)
    grams = [norm[i:i + n] for i in range(len(norm) - n + 1)]
    if not grams:
        return vec
    idx = np.fromiter((zlib.crc32(g.encode("utf-8")) % dims for g in grams), dtype=np.int64,
                      count=len(grams))
    np.add.at(vec, idx, 1.0)
    vec /= np.linalg.norm(vec)
    return vec


@dataclass(frozen=True)
class Escalation:
    """Why a session was escalated: the signals that crossed (names) and their counts."""

    signals: tuple[str, ...]
    counts: dict[str, int]

    @property
    def reason(self) -> str:
        return "; ".join(f"{s}: {self.counts[s]}" for s in self.signals)


@dataclass
class _Session:
    events: deque[tuple[float, bool]] = field(default_factory=deque)  # (time, flagged)
    flagged: int = 0  # flagged events in ``events``, kept as they come and go (a sum over
    #                   the window per prompt would cost O(volume) under the lock)
    #: (time, vector, digest of an allowed prompt or None)
    vectors: deque[tuple[float, np.ndarray, int | None]] = field(default_factory=deque)
    escalated_at: float = -float("inf")
    throttled_until: float = -float("inf")


class AnomalyDetector:
    """Count the signals per session; thread-safe (FastAPI runs sync code in a pool)."""

    def __init__(self, config: AnomalyConfig | None = None) -> None:
        self.config = config or AnomalyConfig()
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()

    def _session(self, key: str) -> _Session:
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = _Session()
            while len(self._sessions) > self.config.max_sessions:
                self._sessions.popitem(last=False)  # forget the least recently seen
        else:
            self._sessions.move_to_end(key)
        return session

    def throttled(self, key: str, now: float | None = None) -> bool:
        """Whether ``key``'s session is under an escalation throttle now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            session = self._sessions.get(key)
            return session is not None and now < session.throttled_until

    def observe(self, key: str, text: str, flagged: bool, now: float | None = None,
                shared: bool = False) -> Escalation | None:
        """Record one prompt of session ``key``; an :class:`Escalation` when it tips over.

        Args:
            key: the session identity (API key id and session id joined).
            text: the prompt; only its n-gram vector is kept, never the text.
            flagged: whether the guard's verdict was anything but ``allow``.
            now: monotonic seconds (tests pass their own clock).
            shared: the key's session-less traffic (throttled for flagged bursts only).
        """
        cfg = self.config
        now = time.monotonic() if now is None else now
        vec = ngram_vector(text, cfg.dims)  # outside the lock: the only costly step
        digest = None if flagged else zlib.crc32(text.encode("utf-8", "replace"))
        with self._lock:
            s = self._session(key)
            horizon = now - cfg.window_s
            while s.events and s.events[0][0] < horizon:
                s.flagged -= s.events.popleft()[1]
            while s.vectors and s.vectors[0][0] < horizon:
                s.vectors.popleft()
            near = 0
            edits = [v for _, v, d in s.vectors if digest is None or d != digest]
            if edits and vec.any():
                near = int(np.count_nonzero(np.stack(edits) @ vec >= cfg.similarity))
            s.events.append((now, flagged))
            s.flagged += flagged
            s.vectors.append((now, vec, digest))
            if len(s.vectors) > cfg.max_history:
                s.vectors.popleft()
            counts = {"flagged_burst": s.flagged,
                      "probing": near, "volume": len(s.events)}
            limits = {"flagged_burst": cfg.flagged_burst, "probing": cfg.near_duplicates,
                      "volume": cfg.volume}
            crossed = tuple(name for name in counts if counts[name] >= limits[name])
            if not crossed or now - s.escalated_at < cfg.cooldown_s:
                return None
            s.escalated_at = now
            if cfg.throttle and (not shared or cfg.throttle_shared_probing
                                 or "flagged_burst" in crossed):
                s.throttled_until = now + cfg.throttle_s
            return Escalation(signals=crossed, counts=counts)

    def observe_key(self, key_id: str, flagged: bool,
                    now: float | None = None) -> Escalation | None:
        """Count one prompt of API key ``key_id`` over all its sessions; an
        :class:`Escalation` (signal ``key_flagged_burst``, no throttle) when its flagged
        prompts in the window reach ``key_flagged_burst``."""
        cfg = self.config
        now = time.monotonic() if now is None else now
        with self._lock:
            s = self._session(f"key-total:{key_id}")
            horizon = now - cfg.window_s
            while s.events and s.events[0][0] < horizon:
                s.flagged -= s.events.popleft()[1]
            if not flagged:
                return None  # only flagged prompts are kept: the count is all this needs
            s.events.append((now, True))
            s.flagged += 1
            if s.flagged < cfg.key_flagged_burst or now - s.escalated_at < cfg.cooldown_s:
                return None
            s.escalated_at = now
            return Escalation(signals=("key_flagged_burst",),
                              counts={"key_flagged_burst": s.flagged})
