"""Training-time attacks, for evaluation, and the checks that catch them.

- attacks (one file each): :class:`BadNets` patch, :class:`Blended` pattern,
  :class:`CleanLabel` (labels untouched), :class:`LabelFlip`; from text with
  :func:`parse_poison` (``badnets:rate=0.1,target=0``).
"""

from __future__ import annotations

from bastion.poison.badnets import BadNets
from bastion.poison.base import PoisonAttack, Poisoned
from bastion.poison.blended import Blended
from bastion.poison.clean_label import CleanLabel
from bastion.poison.label_flip import LabelFlip
from bastion.poison.registry import ATTACKS, parse_poison

__all__ = ["ATTACKS", "BadNets", "Blended", "CleanLabel", "LabelFlip", "PoisonAttack",
           "Poisoned", "parse_poison"]
