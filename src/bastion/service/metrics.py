"""Prometheus metrics of one service instance (``GET /metrics``).

Each app gets its own ``CollectorRegistry`` rather than the process-global one, so two
apps in one process (tests, or an embedding application) do not collide. With several
replicas, Prometheus scrapes each and sums; run one uvicorn worker per replica, since
prometheus_client's counters are per process.

Metrics (labels in brackets):

* ``bastion_verdicts_total`` [direction, verdict]: guard verdicts;
* ``bastion_layer_latency_seconds`` [direction, layer]: per-layer scan time, histogram;
* ``bastion_requests_total`` [endpoint, status]: answered requests;
* ``bastion_rate_limited_total``: 429 answers; ``bastion_escalations_total`` [signal].
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bastion.guard.pipeline import PipelineResult

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0)


class Metrics:
    """The counters and histograms above, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.verdicts = Counter("bastion_verdicts", "Guard verdicts.",
                                ["direction", "verdict"], registry=self.registry)
        self.layer_latency = Histogram("bastion_layer_latency_seconds",
                                       "Time each guard layer took, seconds.",
                                       ["direction", "layer"], buckets=_LATENCY_BUCKETS,
                                       registry=self.registry)
        self.requests = Counter("bastion_requests", "Answered requests.",
                                ["endpoint", "status"], registry=self.registry)
        self.rate_limited = Counter("bastion_rate_limited", "Requests refused with 429.",
                                    registry=self.registry)
        self.escalations = Counter("bastion_escalations", "Sessions escalated to review.",
                                   ["signal"], registry=self.registry)

    def record(self, direction: str, result: PipelineResult) -> None:
        """Count one pipeline result and its layers' latencies."""
        self.verdicts.labels(direction, result.verdict).inc()
        for layer in result.layers:
            self.layer_latency.labels(direction, layer.scanner).observe(layer.latency_ms / 1000)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
