"""Detectors by name: ``make("knn", k=20)``."""

from __future__ import annotations

from typing import Any

from bastion.errors import ConfigError
from bastion.ood.base import Detector
from bastion.ood.energy import Energy
from bastion.ood.knn import KNN
from bastion.ood.mahalanobis import Mahalanobis, RelativeMahalanobis
from bastion.ood.maxlogit import MaxLogit
from bastion.ood.msp import MSP
from bastion.ood.odin import ODIN
from bastion.ood.vim import ViM

DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (MSP, MaxLogit, Energy, ODIN, Mahalanobis, RelativeMahalanobis, KNN, ViM)
}


def make(name: str, **params: Any) -> Detector:
    """A new, unfitted detector ``name`` built with keyword ``params``."""
    try:
        cls = DETECTORS[name]
    except KeyError:
        raise ConfigError(f"unknown detector {name!r}; available: "
                          f"{', '.join(DETECTORS)}") from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for detector {name!r}: {exc}") from None
