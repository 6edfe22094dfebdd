"""bastion: measure and raise the adversarial robustness of machine-learning systems.

>>> import bastion
>>> model = bastion.zoo.load("advertorch-lenet5-adv")
>>> test = bastion.data.load("mnist", "test", n=1000)
>>> result = bastion.evaluate(model, test, bastion.ThreatModel("Linf", 0.3),
...                           [bastion.PGD(steps=40)])
>>> result.clean_accuracy, result.robust_accuracy

Names are imported on first use (PEP 562), so ``import bastion.guard`` does not import
torch or the classic half, and a part whose extra is not installed fails only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module it lives in (submodules map to themselves).
_EXPORTS: dict[str, str] = {
    **{name: "bastion.attacks" for name in (
        "APGD", "APGDT", "BPDA", "EOT", "FAB", "FGSM", "PGD", "Attack", "AttackResult",
        "AutoAttack", "Square")},
    **{name: "bastion.errors" for name in (
        "BastionError", "BastionWarning", "CapabilityError", "ConfigError", "InputError",
        "MissingDependencyError", "ModelError", "StateError")},
    "Diagnosis": "bastion.diagnostics",
    "diagnose": "bastion.diagnostics",
    "Evaluation": "bastion.evaluation",
    "evaluate": "bastion.evaluation",
    "ThreatModel": "bastion.threat",
}
_SUBMODULES = ("attacks", "data", "ood", "poison", "privacy", "threats", "zoo")

if TYPE_CHECKING:
    from bastion import attacks, data, ood, poison, privacy, threats, zoo
    from bastion.attacks import (
        APGD,
        APGDT,
        BPDA,
        EOT,
        FAB,
        FGSM,
        PGD,
        Attack,
        AttackResult,
        AutoAttack,
        Square,
    )
    from bastion.diagnostics import Diagnosis, diagnose
    from bastion.errors import (
        BastionError,
        BastionWarning,
        CapabilityError,
        ConfigError,
        InputError,
        MissingDependencyError,
        ModelError,
        StateError,
    )
    from bastion.evaluation import Evaluation, evaluate
    from bastion.threat import ThreatModel


def __getattr__(name: str) -> Any:
    """Import a public name (or submodule) the first time it is read."""
    if name in _SUBMODULES:
        value: Any = importlib.import_module(f"bastion.{name}")
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'bastion' has no attribute {name!r}")
    globals()[name] = value  # later reads skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "APGD",
    "APGDT",
    "BPDA",
    "EOT",
    "FAB",
    "FGSM",
    "PGD",
    "Attack",
    "AttackResult",
    "AutoAttack",
    "BastionError",
    "BastionWarning",
    "CapabilityError",
    "ConfigError",
    "Diagnosis",
    "Evaluation",
    "InputError",
    "MissingDependencyError",
    "ModelError",
    "Square",
    "StateError",
    "ThreatModel",
    "__version__",
    "attacks",
    "data",
    "diagnose",
    "evaluate",
    "ood",
    "poison",
    "privacy",
    "threats",
    "zoo",
]
