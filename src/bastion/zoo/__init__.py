"""Model zoo: definitions (:mod:`bastion.zoo.models`) and named checkpoints.

>>> from bastion import zoo
>>> zoo.names()            # what can be loaded
>>> model = zoo.load("advertorch-lenet5-adv")
"""

from __future__ import annotations

from bastion.zoo.models import ARCHITECTURES, MLP, LeNet5, SmallCNN, WongSmall
from bastion.zoo.registry import ALIASES, ENTRIES, Entry, build, load, names, resolve

__all__ = [
    "ALIASES", "ARCHITECTURES", "ENTRIES", "MLP", "Entry", "LeNet5", "SmallCNN", "WongSmall",
    "build", "load", "names", "resolve",
]
