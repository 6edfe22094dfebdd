"""The scanner contract every guard layer follows.

A :class:`Scanner` looks at one text and returns a :class:`ScanResult`: a risk ``score``
in [0, 1], the ``verdict`` that score earns under the scanner's ``threshold`` and
``action``, the text after the scanner (``sanitized``: changed only by sanitizers and
redactors), the character ``spans`` that drove the score, a human ``reason`` and the
time it took. Subclasses implement :meth:`Scanner._scan` only; :meth:`Scanner.scan`
adds timing, the verdict and the instance name.

Scanners are configured entirely by keyword-only constructor arguments stored under
the same names (scikit-learn's rule), so a policy file can rebuild them.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from bastion.errors import ConfigError

Verdict = Literal["allow", "flag", "redact", "review", "block"]
#: verdicts from mildest to most severe; a pipeline's verdict is the most severe of its layers.
SEVERITY: dict[str, int] = {"allow": 0, "flag": 1, "redact": 2, "review": 3, "block": 4}
ACTIONS: tuple[str, ...] = ("flag", "redact", "review", "block")


@dataclass(frozen=True)
class Span:
    """Characters ``text[start:end]`` that matter, with a short ``label`` (e.g. ``"email"``)."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class ScanContext:
    """What a scanner may know besides the text.

    Attributes:
        direction: ``"input"`` (a prompt going to the model) or ``"output"`` (an answer).
        prompt: for output scans, the prompt that produced the answer.
        documents: trusted context the answer should be grounded in.
        canary: a secret token planted in the system prompt; seeing it in an output is a leak.
        metadata: free-form (user id, session id, ...), never logged by bastion.
    """

    direction: Literal["input", "output"] = "input"
    prompt: str | None = None
    documents: tuple[str, ...] = ()
    canary: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    """What :meth:`Scanner._scan` returns: the raw observation, before any verdict."""

    score: float
    reason: str = ""
    sanitized: str | None = None
    spans: tuple[Span, ...] = ()


@dataclass(frozen=True)
class ScanResult:
    """One scanner's judgement of one text.

    Attributes:
        scanner: the scanner *instance* name (two rule sets in one pipeline differ).
        verdict: ``allow`` when ``score < threshold``, else the scanner's action.
        score: risk in [0, 1].
        sanitized: the text after this scanner (equal to the input unless it changed it).
        spans: character spans in the scanned text that drove the score.
        reason: one line a person can read.
        latency_ms: wall time of the scan, in milliseconds.
    """

    scanner: str
    verdict: Verdict
    score: float
    sanitized: str
    spans: tuple[Span, ...]
    reason: str
    latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.scanner, "verdict": self.verdict, "score": self.score,
                "latency_ms": self.latency_ms, "reason": self.reason,
                "spans": [[s.start, s.end, s.label] for s in self.spans]}


class Scanner:
    """Base class. Subclasses set ``kind`` and implement :meth:`_scan`.

    Every scanner accepts, keyword-only: ``name`` (instance name, default the registry
    kind), ``threshold`` (score at or above which the action applies) and ``action``.
    """

    #: registry key, e.g. ``"sanitizer"``; also the default instance name.
    kind: ClassVar[str] = "scanner"
    #: which direction the scanner is meant for: "input", "output" or "both".
    direction: ClassVar[str] = "both"

    name: str
    threshold: float
    action: str

    def _init_common(self, name: str | None, threshold: float, action: str) -> None:
        """Store the three common settings (called by every subclass constructor)."""
        self.name = name or self.kind
        self.threshold = threshold
        self.action = action

    def validate(self) -> None:
        """Raise ConfigError for settings that cannot work."""
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int | float):
            raise ConfigError(f"{self.name}: threshold must be a number in [0, 1], got "
                              f"{type(self.threshold).__name__} {self.threshold!r}")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ConfigError(f"{self.name}: threshold must be in [0, 1], got {self.threshold!r}")
        if self.action not in ACTIONS:
            raise ConfigError(f"{self.name}: action must be one of {ACTIONS}, got "
                              f"{self.action!r}")

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, by name: enough to rebuild this scanner."""
        sig = inspect.signature(type(self).__init__)
        return {p.name: getattr(self, p.name) for p in sig.parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}

    def scan(self, text: str, context: ScanContext | None = None) -> ScanResult:
        """Judge ``text``; see :class:`ScanResult`."""
        if not isinstance(text, str):
            raise ConfigError(f"{self.name}: text must be str, got {type(text).__name__}")
        context = context or ScanContext()
        began = time.perf_counter()
        found = self._scan(text, context)
        latency = (time.perf_counter() - began) * 1000.0
        if not math.isfinite(found.score):
            # A NaN would clamp to 0 and silently allow; raising lets the pipeline's
            # fail mode decide, visibly.
            raise ValueError(f"{self.name}: scanner produced a non-finite score {found.score!r}")
        score = min(1.0, max(0.0, float(found.score)))
        verdict: Verdict = "allow"
        if score >= self.threshold and score > 0.0:
            verdict = self.action  # type: ignore[assignment]
        sanitized = text if found.sanitized is None else found.sanitized
        return ScanResult(scanner=self.name, verdict=verdict, score=score, sanitized=sanitized,
                          spans=found.spans, reason=found.reason, latency_ms=latency)

    def _scan(self, text: str, context: ScanContext) -> Finding:
        raise NotImplementedError  # pragma: no cover - every subclass implements it
