"""The guard service's configuration: one YAML file, a few environment overrides.

Every key is optional; the defaults start a service on loopback with a SQLite file, an
in-process rate limiter and the embedded SmolLM2 upstream::

    host: 127.0.0.1
    port: 8000
    database_url: sqlite:///bastion-service.db   # env BASTION_DATABASE_URL wins
    redis_url: null                               # env BASTION_REDIS_URL wins
    redis_prefix: "bastion:"                      # namespace of every Redis key
    policy: null                                  # guard policy file; null = bundled
    session_secret: null                          # signs review cookies; null = kept in the DB
    on_input_review: allow                        # allow | block: a prompt marked `review`
    block_response: refusal                       # refusal (200, content_filter) | error (400)
    role_scan: {system: rules, developer: rules, assistant: rules, "*": full}
                    # how the proxy scans each role's messages (case-insensitive):
                    # full (every input layer) | rules (the rule layers: sanitizer,
                    # decoder, rules) | skip; "*" is every other role
    upstream:
      url: null            # OpenAI-compatible base URL (…/v1); null = embedded SmolLM2
      api_key: null        # sent upstream as Bearer; env BASTION_UPSTREAM_API_KEY wins
      model: null          # replaces the request's model name when set
      timeout_s: 30        # connect / read / whole-answer deadline, seconds
      max_tokens: 48       # embedded model only: new tokens per answer (CPU cost)
    limits:
      max_body_bytes: 1048576
      max_header_bytes: 16384
      max_json_depth: 32
      request_timeout_s: 60
      stream_window_chars: 160   # a stream is released after each sentence or this many chars
      max_scan_chars: 200000     # characters in one scan (a prompt, an answer)
      max_pending_chars_per_key: 400000   # characters being scanned for one key at once
      max_pending_chars: 2000000          # ... for all keys (bounds the CPU queued)
      header_timeout_s: 10       # `bastion serve`: a request head must arrive within this
      max_connections: 1000      # `bastion serve`: per worker; more are answered 503
    rate_limit: {rate_per_s: 10, burst: 30}
    anomaly: {...}   # see bastion.service.anomaly.AnomalyConfig
    predict:         # `bastion serve-model` only
      max_batch: 64            # inputs in one POST /v1/predict
      prada: true              # the PRADA extraction monitor, per API key
      prada_delta: 0.93        # Shapiro-Wilk W below this flags a key
      prada_window: 500        # distances the test reads (the latest)
      prada_min_distances: 100 # distances before the first test
      prada_max_per_class: 1000   # queries kept per key and class (memory bound)
      prada_max_clients: 1000     # keys remembered (least recently seen forgotten)
      prada_throttle: true     # a flagged key is throttled (anomaly.throttle_rate_per_s
                               # for anomaly.throttle_s), besides its review item
      share_reference: null    # DATASET[:SPLIT] of the training images: adds the
                               # query-distribution test (bastion.privacy.query_monitor)
      share_reference_n: 50000 # reference images read

Why environment overrides for the two URLs only: they carry credentials and differ per
deployment (one image, many replicas), while the rest is policy kept in version control.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from bastion.errors import ConfigError
from bastion.service.anomaly import AnomalyConfig

DEFAULT_DATABASE_URL = "sqlite:///bastion-service.db"
ROLE_SCANS = ("full", "rules", "skip")
#: Instructions the app itself wrote (system, developer) and the model's earlier turns
#: get the rule layers: the trained classifiers read instructions as injections ("be
#: brief" alone scores 0.78 with the bundled ensemble). The client sends them all, so
#: none is skipped. Any other role, known or not, gets every input layer.
DEFAULT_ROLE_SCAN = {"system": "rules", "developer": "rules", "assistant": "rules",
                     "*": "full"}


@dataclass(frozen=True)
class UpstreamConfig:
    """Where answers come from: an OpenAI-compatible URL, or the embedded model (``url=None``)."""

    url: str | None = None
    api_key: str | None = None
    model: str | None = None
    timeout_s: float = 30.0
    max_tokens: int = 48


@dataclass(frozen=True)
class LimitsConfig:
    """Bounds on one request: body and header bytes, JSON nesting depth, seconds, stream
    window (characters); and on the scanning work in flight, in characters
    (:mod:`bastion.service.workload`)."""

    max_body_bytes: int = 1 << 20
    max_header_bytes: int = 16 * 1024
    max_json_depth: int = 32
    request_timeout_s: float = 60.0
    stream_window_chars: int = 160
    max_scan_chars: int = 200_000
    max_pending_chars_per_key: int = 400_000
    max_pending_chars: int = 2_000_000
    header_timeout_s: float = 10.0
    max_connections: int = 1000


@dataclass(frozen=True)
class RateLimitConfig:
    """A token bucket per API key: ``burst`` requests at once, refilled at ``rate_per_s``."""

    rate_per_s: float = 10.0
    burst: int = 30


@dataclass(frozen=True)
class PredictConfig:
    """``bastion serve-model``: the batch cap and the PRADA monitor
    (:class:`bastion.privacy.prada.PradaMonitor`) per API key."""

    max_batch: int = 64
    prada: bool = True
    prada_delta: float = 0.93
    prada_window: int = 500
    prada_min_distances: int = 100
    prada_max_per_class: int = 1000
    prada_max_clients: int = 1000
    prada_throttle: bool = True
    share_reference: str | None = None
    share_reference_n: int = 50000

    def __post_init__(self) -> None:
        for name in ("max_batch", "prada_window", "prada_min_distances",
                     "prada_max_per_class", "prada_max_clients", "share_reference_n"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"predict.{name} must be a positive integer, got {value!r}")
        delta = self.prada_delta
        if isinstance(delta, bool) or not isinstance(delta, int | float) or not 0 < delta < 1:
            raise ConfigError(f"predict.prada_delta is a Shapiro-Wilk threshold in (0, 1), "
                              f"got {delta!r}")


@dataclass(frozen=True)
class ServiceConfig:
    """Everything ``bastion serve`` needs; see the module docstring for the file form."""

    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    redis_prefix: str = "bastion:"
    policy: str | None = None
    session_secret: str | None = None
    on_input_review: str = "allow"
    block_response: str = "refusal"
    role_scan: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ROLE_SCAN))
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    anomaly: AnomalyConfig = field(default_factory=AnomalyConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)

    def __post_init__(self) -> None:
        if self.on_input_review not in ("allow", "block"):
            raise ConfigError(f"on_input_review must be allow or block, got "
                              f"{self.on_input_review!r}")
        if self.block_response not in ("refusal", "error"):
            raise ConfigError(f"block_response must be refusal or error, got "
                              f"{self.block_response!r}")
        if not isinstance(self.role_scan, dict) or not all(
                isinstance(k, str) and v in ROLE_SCANS for k, v in self.role_scan.items()):
            raise ConfigError(f"role_scan maps role names to one of {', '.join(ROLE_SCANS)}, "
                              f"got {self.role_scan!r}")
        # the file's entries over the defaults, roles case-folded (frozen: set directly)
        object.__setattr__(self, "role_scan", {**DEFAULT_ROLE_SCAN, **{
            k.casefold(): v for k, v in self.role_scan.items()}})
        positive = {"limits.max_body_bytes": self.limits.max_body_bytes,
                    "limits.max_header_bytes": self.limits.max_header_bytes,
                    "limits.max_json_depth": self.limits.max_json_depth,
                    "limits.request_timeout_s": self.limits.request_timeout_s,
                    "limits.stream_window_chars": self.limits.stream_window_chars,
                    "limits.max_scan_chars": self.limits.max_scan_chars,
                    "limits.max_pending_chars_per_key": self.limits.max_pending_chars_per_key,
                    "limits.max_pending_chars": self.limits.max_pending_chars,
                    "limits.header_timeout_s": self.limits.header_timeout_s,
                    "limits.max_connections": self.limits.max_connections,
                    "rate_limit.rate_per_s": self.rate_limit.rate_per_s,
                    "rate_limit.burst": self.rate_limit.burst,
                    "upstream.timeout_s": self.upstream.timeout_s,
                    "upstream.max_tokens": self.upstream.max_tokens}
        for key, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"{key} must be a positive number, got {value!r}")


_SECTIONS: dict[str, type] = {"upstream": UpstreamConfig, "limits": LimitsConfig,
                              "rate_limit": RateLimitConfig, "anomaly": AnomalyConfig,
                              "predict": PredictConfig}


def _section(cls: type, data: Any, where: str) -> Any:
    """Build one nested section, refusing keys it does not have (typos fail loudly)."""
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; accepted: "
                          f"{', '.join(sorted(names))}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def config_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> ServiceConfig:
    """A :class:`ServiceConfig` from parsed YAML; env overrides are *not* applied here."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the service config is a mapping, got "
                          f"{type(data).__name__}")
    names = {f.name for f in fields(ServiceConfig)}
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; accepted: "
                          f"{', '.join(sorted(names))}")
    kwargs = {k: v for k, v in data.items() if k not in _SECTIONS}
    for key, cls in _SECTIONS.items():
        kwargs[key] = _section(cls, data.get(key), f"{source}: {key}")
    try:
        return ServiceConfig(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def with_env(config: ServiceConfig, env: dict[str, str] | None = None) -> ServiceConfig:
    """``config`` with ``BASTION_DATABASE_URL``, ``BASTION_REDIS_URL`` and
    ``BASTION_UPSTREAM_API_KEY`` applied where set and non-empty."""
    env = dict(os.environ) if env is None else env
    out = config
    if env.get("BASTION_DATABASE_URL"):
        out = replace(out, database_url=env["BASTION_DATABASE_URL"])
    if env.get("BASTION_REDIS_URL"):
        out = replace(out, redis_url=env["BASTION_REDIS_URL"])
    if env.get("BASTION_UPSTREAM_API_KEY"):
        out = replace(out, upstream=replace(out.upstream,
                                            api_key=env["BASTION_UPSTREAM_API_KEY"]))
    return out


def load_config(path: str | Path | None = None,
                env: dict[str, str] | None = None) -> ServiceConfig:
    """Read a YAML config file (``None``: all defaults), then apply the env overrides."""
    data: Any = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read the config file ({exc})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    return with_env(config_from_dict(data, source=source), env)
