"""Every registered guard scanner, by kind. Contract tests run over all of them."""

from __future__ import annotations

from bastion.guard.base import Scanner
from bastion.guard.scanners.input import REGISTRY as INPUT_REGISTRY
from bastion.guard.scanners.output import REGISTRY as OUTPUT_REGISTRY

REGISTRY: dict[str, type[Scanner]] = {**INPUT_REGISTRY, **OUTPUT_REGISTRY}

__all__ = ["REGISTRY"]
