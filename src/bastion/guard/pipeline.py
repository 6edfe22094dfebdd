"""Ordered layers of scanners: the guard's defense in depth.

A :class:`Pipeline` runs its :class:`Layer` s in order. Each layer scans the text the
previous layer left (its ``sanitized`` output), so a sanitizer's normalised text is what
the rules see. The pipeline's verdict is the most severe layer verdict (see
:data:`bastion.guard.base.SEVERITY`), its score the highest layer score.

Failures are never silent. A layer that raises, or that returns after its ``budget_ms``,
is replaced in the result by an entry whose reason names the error or the overrun; under
``fail_mode="closed"`` (the default) that entry blocks, under ``"open"`` it allows. The
pipeline's own ``budget_ms`` works the same way for the layers it had no time left to run.

Budgets are checked *after* a layer returns, not enforced by interrupting it. Python
cannot stop a running thread, and scanners spend their time in C code (re2, torch) that
no signal reaches; a layer abandoned in a worker thread would keep burning one of few
cores for every later request, and a worker process costs more in pickling than the
cheap layers cost in all. Bounding the worst case is each scanner's job (linear-time
regexes, bounded windows); the budget makes a layer that is slow on some input visible,
and lets the fail mode decide what such input earns.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bastion.errors import ConfigError, InputError
from bastion.guard.base import SEVERITY, ScanContext, Scanner, ScanResult, Verdict

FailMode = Literal["closed", "open"]
FAIL_MODES: tuple[str, ...] = ("closed", "open")
#: instance name of the entry recording an exhausted pipeline budget; no layer may use it.
PIPELINE_ENTRY = "pipeline"


def _check_budget(budget_ms: float | None, what: str) -> None:
    if budget_ms is None:
        return
    if isinstance(budget_ms, bool) or not isinstance(budget_ms, int | float):
        raise ConfigError(f"{what}: budget_ms must be a number of milliseconds or None, got "
                          f"{budget_ms!r}")
    if not (math.isfinite(budget_ms) and budget_ms > 0):
        raise ConfigError(f"{what}: budget_ms must be a positive number of milliseconds, got "
                          f"{budget_ms!r}; leave it out for no budget")


@dataclass(frozen=True)
class Layer:
    """One scanner in a pipeline, with an optional time budget.

    Attributes:
        scanner: the scanner instance; its ``name`` names the layer.
        budget_ms: wall time in milliseconds the layer may take; ``None`` for no budget.
            Checked after the call (see the module docstring).
    """

    scanner: Scanner
    budget_ms: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.scanner, Scanner):
            raise ConfigError(f"a Layer needs a Scanner instance, got "
                              f"{type(self.scanner).__name__}")
        _check_budget(self.budget_ms, f"layer {self.scanner.name!r}")

    @property
    def name(self) -> str:
        """The scanner's instance name."""
        return self.scanner.name


@dataclass(frozen=True)
class PipelineResult:
    """What a pipeline concluded about one text.

    Attributes:
        verdict: the most severe verdict among ``layers``.
        score: the highest layer score, in [0, 1] (0.0 when no layer ran).
        sanitized: the text after the last layer that ran.
        layers: one :class:`ScanResult` per layer that ran, in order, failures included;
            plus an entry named ``"pipeline"`` when the pipeline budget ran out.
        skipped: names of layers that did not run (early exit or pipeline budget).
        failed: names of layers that raised or overran their budget.
        latency_ms: wall time of the whole run, in milliseconds.
    """

    verdict: Verdict
    score: float
    sanitized: str
    layers: list[ScanResult]
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    latency_ms: float = 0.0

    @property
    def by_name(self) -> dict[str, ScanResult]:
        """Layer results keyed by scanner instance name."""
        return {r.scanner: r for r in self.layers}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: verdict, score, sanitized, layers (name, verdict, score, latency_ms,
        reason, spans), skipped, failed, latency_ms."""
        return {"verdict": self.verdict, "score": self.score, "sanitized": self.sanitized,
                "layers": [r.to_dict() for r in self.layers], "skipped": list(self.skipped),
                "failed": list(self.failed), "latency_ms": self.latency_ms}


class Pipeline:
    """Run scanners in order and combine their verdicts.

    Args:
        layers: :class:`Layer` s, or bare scanners (a layer without a budget). Instance
            names must be unique.
        fail_mode: ``"closed"`` (a failed or unrun layer blocks) or ``"open"`` (it allows);
            either way the failure is recorded in the result.
        early_exit: stop after the first ``block`` verdict; later layers are ``skipped``.
        budget_ms: wall time in milliseconds for the whole run; once spent, the remaining
            layers are skipped and ``fail_mode`` decides. ``None`` for no budget.
    """

    def __init__(self, layers: Sequence[Layer | Scanner], *, fail_mode: FailMode = "closed",
                 early_exit: bool = True, budget_ms: float | None = None) -> None:
        if fail_mode not in FAIL_MODES:
            raise ConfigError(f"fail_mode must be one of {FAIL_MODES}, got {fail_mode!r}")
        if not isinstance(early_exit, bool):
            raise ConfigError(f"early_exit must be true or false, got {early_exit!r}")
        _check_budget(budget_ms, "pipeline")
        if isinstance(layers, Layer | Scanner | str):
            raise ConfigError("layers must be a list of Layer or Scanner objects")
        self.layers: tuple[Layer, ...] = tuple(
            item if isinstance(item, Layer) else Layer(item) for item in layers)
        seen: dict[str, int] = {}
        for i, layer in enumerate(self.layers, 1):
            layer.scanner.validate()
            if layer.name == PIPELINE_ENTRY:
                raise ConfigError(f"layer {i}: the name {PIPELINE_ENTRY!r} is reserved for "
                                  "the pipeline's own budget entry; choose another name")
            if layer.name in seen:
                raise ConfigError(f"layers {seen[layer.name]} and {i} are both named "
                                  f"{layer.name!r}; instance names must be unique (give "
                                  "one of them another name)")
            seen[layer.name] = i
        self.fail_mode: FailMode = fail_mode
        self.early_exit = early_exit
        self.budget_ms = budget_ms

    @property
    def names(self) -> list[str]:
        """Layer instance names, in order."""
        return [layer.name for layer in self.layers]

    def __repr__(self) -> str:
        return (f"Pipeline({self.names}, fail_mode={self.fail_mode!r}, "
                f"early_exit={self.early_exit}, budget_ms={self.budget_ms})")

    def run(self, text: str, context: ScanContext | None = None) -> PipelineResult:
        """Scan ``text`` with every layer in order; see :class:`PipelineResult`."""
        if not isinstance(text, str):
            raise InputError(f"the guard scans str, got {type(text).__name__}; decode bytes "
                             "first")
        context = context or ScanContext()
        began = time.perf_counter()
        results: list[ScanResult] = []
        skipped: list[str] = []
        failed: list[str] = []
        current = text
        for i, layer in enumerate(self.layers):
            spent = (time.perf_counter() - began) * 1000.0
            if self.budget_ms is not None and spent >= self.budget_ms:
                skipped = [rest.name for rest in self.layers[i:]]
                results.append(self._budget_entry(current, spent, skipped))
                break
            result, ok = self._run_layer(layer, current, context)
            if not ok:
                failed.append(layer.name)
            results.append(result)
            current = result.sanitized
            if self.early_exit and result.verdict == "block":
                skipped = [rest.name for rest in self.layers[i + 1:]]
                break
        verdict: Verdict = max((r.verdict for r in results), key=SEVERITY.__getitem__,
                               default="allow")
        return PipelineResult(verdict=verdict, score=max((r.score for r in results), default=0.0),
                              sanitized=current, layers=results, skipped=skipped,
                              failed=failed,
                              latency_ms=(time.perf_counter() - began) * 1000.0)

    def _run_layer(self, layer: Layer, text: str,
                   context: ScanContext) -> tuple[ScanResult, bool]:
        """One layer's result and True, or the fail-mode entry that replaces it and False."""
        began = time.perf_counter()
        try:
            result = layer.scanner.scan(text, context)
        except Exception as exc:  # any scanner bug must fail visibly, not crash the app
            took = (time.perf_counter() - began) * 1000.0
            message = str(exc)  # may quote the input: keep reasons one short line
            if len(message) > 200:
                message = message[:200] + "..."
            return self._failure(layer.name, text, took,
                                 f"raised {type(exc).__name__}: {message}"), False
        took = (time.perf_counter() - began) * 1000.0
        if layer.budget_ms is not None and took > layer.budget_ms:
            late = f"its verdict {result.verdict} (score {result.score:.3g}) discarded"
            return self._failure(layer.name, text, took,
                                 f"took {took:.1f} ms, over its {layer.budget_ms:g} ms "
                                 f"budget; {late}"), False
        return result, True

    def _failure(self, name: str, text: str, took_ms: float, what: str) -> ScanResult:
        """The entry for a failed layer: blocks (closed) or allows (open), text unchanged."""
        closed = self.fail_mode == "closed"
        verdict: Verdict = "block" if closed else "allow"
        return ScanResult(scanner=name, verdict=verdict, score=1.0 if closed else 0.0,
                          sanitized=text, spans=(), latency_ms=took_ms,
                          reason=f"failed: {what} (fail-{self.fail_mode}: {verdict})")

    def _budget_entry(self, text: str, spent_ms: float, skipped: list[str]) -> ScanResult:
        """The entry recording that the pipeline budget ran out before ``skipped`` ran."""
        closed = self.fail_mode == "closed"
        verdict: Verdict = "block" if closed else "allow"
        return ScanResult(scanner=PIPELINE_ENTRY, verdict=verdict,
                          score=1.0 if closed else 0.0, sanitized=text, spans=(),
                          latency_ms=0.0,
                          reason=f"budget of {self.budget_ms:g} ms spent after {spent_ms:.1f} "
                                 f"ms; skipped {', '.join(skipped)} (fail-{self.fail_mode}: "
                                 f"{verdict})")
