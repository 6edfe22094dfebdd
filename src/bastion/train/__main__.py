"""``python -m bastion.train [OPTIONS]``: the ``bastion train`` command on its own, so
``torchrun --nproc_per_node N -m bastion.train ...`` works without the main CLI."""

from __future__ import annotations

import typer

from bastion.train.cli import register

app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
register(app)

if __name__ == "__main__":
    app()
