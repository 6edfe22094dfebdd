"""bastion: measure and raise the adversarial robustness of machine-learning systems.

>>> import bastion
>>> model = bastion.zoo.load("advertorch-lenet5-adv")
>>> test = bastion.data.load("mnist", "test", n=1000)
>>> result = bastion.evaluate(model, test, bastion.ThreatModel("Linf", 0.3),
...                           [bastion.PGD(steps=40)])
>>> result.clean_accuracy, result.robust_accuracy
"""

from __future__ import annotations

from bastion import attacks, data, zoo
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

__version__ = "0.1.0"

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
    "zoo",
]
