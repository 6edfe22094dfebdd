"""Converters: rewrite an attempt's user turns; every module here registers its own."""

from bastion.redteam.converters import (  # noqa: F401  (registers)
    obfuscation,
    perturbations,
    split_turns,
)
