"""``python -m bastion``: the same command line as ``bastion`` (torchrun needs a module)."""

from bastion.cli import app

app(prog_name="bastion")
