"""Converters: rewrite an attempt's user turns; every module here registers its own."""

from bastion.redteam.converters import perturbations  # noqa: F401  (registers)
