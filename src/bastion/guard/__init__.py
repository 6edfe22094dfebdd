"""The LLM guard: layered, offline scanners for prompts and answers."""

from __future__ import annotations

from bastion.guard.base import SEVERITY, Finding, ScanContext, Scanner, ScanResult, Span
from bastion.guard.guard import Guard
from bastion.guard.pipeline import Layer, Pipeline, PipelineResult
from bastion.guard.policy import Policy, load_policy

__all__ = ["SEVERITY", "Finding", "Guard", "Layer", "Pipeline", "PipelineResult", "Policy",
           "ScanContext", "ScanResult", "Scanner", "Span", "load_policy"]
