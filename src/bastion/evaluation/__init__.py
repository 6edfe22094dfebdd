"""Evaluation: the resumable runner and the checks it runs first."""

from __future__ import annotations

from bastion.evaluation.checks import check_inputs, check_model
from bastion.evaluation.runner import Evaluation, evaluate

__all__ = ["Evaluation", "check_inputs", "check_model", "evaluate"]
