"""Input scanners (prompts on their way to the model), registered by kind."""

from __future__ import annotations

from bastion.guard.base import Scanner

REGISTRY: dict[str, type[Scanner]] = {}
