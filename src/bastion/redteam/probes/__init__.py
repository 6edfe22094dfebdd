"""Probes: every module here registers its own (see docs/redteam/probes.md)."""

from bastion.redteam.probes import (  # noqa: F401  (registers)
    exfiltration,
    extraction,
    harmful,
    indirect,
    multiturn,
    roleplay,
    smuggling,
    toxic,
)
