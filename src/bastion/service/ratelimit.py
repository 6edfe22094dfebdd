"""Token-bucket rate limits per API key: in this process, or shared through Redis.

A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per second; a
request takes one token or is refused with the seconds until one is back (the
``Retry-After`` of the 429). Against model extraction the bucket bounds queries per key
whatever the client does; the anomaly throttle uses a second, slower bucket.

:class:`MemoryLimiter` is exact for one process. :class:`RedisLimiter` keeps each bucket
in a Redis hash and updates it in one Lua script, which Redis runs atomically, on Redis's
own clock (``TIME``), so replicas with skewed clocks still share one bucket.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Decision:
    """``allowed``; when refused, ``retry_after_s`` until a token is back (seconds)."""

    allowed: bool
    retry_after_s: float = 0.0

    @property
    def retry_after_header(self) -> str:
        """Whole seconds for the ``Retry-After`` header (at least 1)."""
        return str(max(1, math.ceil(self.retry_after_s)))


class LimiterUnavailable(Exception):
    """The shared limiter cannot be reached; the service answers 503 (fails closed)."""


class Limiter(Protocol):
    def take(self, bucket: str, rate: float, burst: float) -> Decision: ...
    def ping(self) -> None: ...


def _refill(tokens: float, last: float, now: float, rate: float, burst: float) -> float:
    return min(burst, tokens + max(0.0, now - last) * rate)


class MemoryLimiter:
    """Buckets in a dict, for one process; buckets that have refilled are dropped when the
    dict grows past ``max_buckets`` (a missing bucket is a full one, so nothing changes)."""

    def __init__(self, max_buckets: int = 100_000) -> None:
        # bucket -> (tokens, monotonic seconds of the last update, when it is full again)
        self._buckets: dict[str, tuple[float, float, float]] = {}
        self._lock = threading.Lock()
        self.max_buckets = max_buckets

    def take(self, bucket: str, rate: float, burst: float) -> Decision:
        now = time.monotonic()
        with self._lock:
            tokens, last, _ = self._buckets.get(bucket, (burst, now, now))
            tokens = _refill(tokens, last, now, rate, burst)
            if tokens >= 1.0:
                tokens -= 1.0
                decision = Decision(True)
            else:
                decision = Decision(False, (1.0 - tokens) / rate)
            self._buckets[bucket] = (tokens, now, now + (burst - tokens) / rate)
            if len(self._buckets) > self.max_buckets:
                self._buckets = {k: v for k, v in self._buckets.items() if v[2] > now}
            return decision

    def ping(self) -> None:
        return None


# KEYS[1]: the bucket's hash. ARGV: rate (tokens/s), burst, ttl (ms).
# Returns {allowed (0/1), milliseconds until the next token}.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ms')
local tokens = tonumber(state[1])
local last = tonumber(state[2])
if tokens == nil then
  tokens = burst
  last = now
end
tokens = math.min(burst, tokens + math.max(0, now - last) * rate / 1000)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ms', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {allowed, wait}
"""


class RedisLimiter:
    """Buckets in Redis under ``prefix``, shared by every replica that uses the same URL."""

    def __init__(self, url: str, prefix: str = "bastion:") -> None:
        import redis

        self.prefix = prefix
        # Short timeouts: a Redis outage must surface as an error, not a hung request.
        self.client: Any = redis.Redis.from_url(url, socket_timeout=2.0,
                                                socket_connect_timeout=2.0)
        self._script = self.client.register_script(_LUA)

    def take(self, bucket: str, rate: float, burst: float) -> Decision:
        # A bucket left alone refills in burst/rate seconds; keep it that long, then let
        # Redis forget it (a missing bucket is a full one).
        ttl_ms = max(1000, math.ceil(burst / rate * 1000) + 1000)
        import redis

        try:
            allowed, wait_ms = self._script(keys=[f"{self.prefix}rl:{bucket}"],
                                            args=[rate, burst, ttl_ms])
        except redis.RedisError as exc:
            raise LimiterUnavailable(type(exc).__name__) from None
        return Decision(bool(allowed), float(wait_ms) / 1000.0)

    def ping(self) -> None:
        self.client.ping()


def make_limiter(redis_url: str | None, prefix: str = "bastion:") -> Limiter:
    """Redis when a URL is given, else in-process."""
    return RedisLimiter(redis_url, prefix) if redis_url else MemoryLimiter()
