"""The LLM guard: layered, offline scanners for prompts and answers."""

from __future__ import annotations

from bastion.guard.base import SEVERITY, Finding, ScanContext, Scanner, ScanResult, Span

__all__ = ["SEVERITY", "Finding", "ScanContext", "ScanResult", "Scanner", "Span"]
