"""Red-team an LLM application: probes, converters, targets, judges and the runner.

Importing this package registers every built-in probe, converter and judge in
:data:`bastion.redteam.base.PROBES`, ``CONVERTERS`` and ``JUDGES``.
"""

from bastion.redteam import converters, judges, probes  # noqa: F401  (registers)
from bastion.redteam.app import load_app
from bastion.redteam.base import (
                                  CONVERTERS,
                                  JUDGES,
                                  PROBES,
                                  AppConfig,
                                  Attempt,
                                  Converter,
                                  Judge,
                                  Judgement,
                                  Probe,
                                  Reply,
                                  Target,
                                  register,
)

__all__ = ["CONVERTERS", "JUDGES", "PROBES", "AppConfig", "Attempt", "Converter", "Judge",
           "Judgement", "Probe", "Reply", "Target", "load_app", "register"]
