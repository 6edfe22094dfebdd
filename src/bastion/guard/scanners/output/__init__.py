"""Output scanners (answers on their way to the user), registered by kind."""

from __future__ import annotations

from bastion.guard.base import Scanner
from bastion.guard.scanners.output.grounding import Grounding
from bastion.guard.scanners.output.leak import Leak
from bastion.guard.scanners.output.pii import PII
from bastion.guard.scanners.output.refusal import Refusal
from bastion.guard.scanners.output.toxicity import Toxicity

REGISTRY: dict[str, type[Scanner]] = {cls.kind: cls for cls in (PII, Toxicity, Leak, Refusal,
                                                          Grounding)}

__all__ = ["PII", "REGISTRY", "Grounding", "Leak", "Refusal", "Toxicity"]
