"""Registered poisoning attacks, and attacks from text (``badnets:rate=0.1,target=0``).

The keys a spec accepts are the attack's dataclass fields, so a newly registered attack
is configurable from the command line without changes here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bastion.errors import ConfigError
from bastion.evaluation.attack_spec import parse_attack
from bastion.poison.badnets import BadNets
from bastion.poison.base import PoisonAttack
from bastion.poison.blended import Blended
from bastion.poison.clean_label import CleanLabel
from bastion.poison.label_flip import LabelFlip

ATTACKS: dict[str, type[Any]] = {cls.name: cls for cls in (BadNets, Blended, CleanLabel,
                                                           LabelFlip)}


def fields_of(cls: type[Any]) -> dict[str, Any]:
    """Configurable fields of attack class ``cls`` and their defaults."""
    return {f.name: f.default for f in dataclasses.fields(cls)}


def parse_poison(text: str) -> PoisonAttack:
    """The attack described by ``NAME[:key=value,...]``, e.g. ``badnets:rate=0.1,target=0``.

    Raises:
        ConfigError: an unknown attack or key (listing the valid ones) or a value of the
            wrong type.
    """
    name, params = parse_attack(text)
    if name not in ATTACKS:
        raise ConfigError(f"unknown poisoning attack {name!r}; choose one of "
                          f"{', '.join(ATTACKS)}")
    cls = ATTACKS[name]
    allowed = fields_of(cls)
    for key, value in params.items():
        if key not in allowed:
            raise ConfigError(f"{name} takes no option {key!r}; its options: "
                              f"{', '.join(allowed)}")
        default = allowed[key]
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            params[key] = float(value)
        elif type(params[key]) is not type(default):
            raise ConfigError(f"{name} option {key}={value!r} should be of type "
                              f"{type(default).__name__}")
    attack: PoisonAttack = cls(**params)
    return attack
