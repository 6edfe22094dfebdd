"""``python -m bastion``: the same command line as ``bastion`` (torchrun needs a module)."""

from bastion.cli import main

main()
