"""Attacks: each searches a :class:`~bastion.threat.ThreatModel` for inputs the model gets wrong.

The registry maps command-line names to attack classes; contract tests run over all of it.
"""

from __future__ import annotations

from typing import Any

from bastion.attacks.adaptive import BPDA, EOT
from bastion.attacks.apgd import APGD, APGDT
from bastion.attacks.base import Attack, AttackResult, Passes
from bastion.attacks.ensemble import AutoAttack, Cascade
from bastion.attacks.fab import FAB
from bastion.attacks.fgsm import FGSM
from bastion.attacks.pgd import PGD
from bastion.attacks.square import Square
from bastion.errors import ConfigError

REGISTRY: dict[str, type[Attack]] = {
    APGD.name: APGD,
    APGDT.name: APGDT,
    AutoAttack.name: AutoAttack,
    BPDA.name: BPDA,
    EOT.name: EOT,
    FAB.name: FAB,
    FGSM.name: FGSM,
    PGD.name: PGD,
    Square.name: Square,
}


def make(name: str, **params: Any) -> Attack:
    """Build a registered attack by name, e.g. ``make("pgd", steps=40)``."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown attack {name!r}; registered attacks: {', '.join(sorted(REGISTRY))}"
        ) from None
    return cls(**params)


__all__ = [
    "APGD",
    "APGDT",
    "BPDA",
    "EOT",
    "FAB",
    "FGSM",
    "PGD",
    "REGISTRY",
    "Attack",
    "AttackResult",
    "AutoAttack",
    "Cascade",
    "Passes",
    "Square",
    "make",
]
