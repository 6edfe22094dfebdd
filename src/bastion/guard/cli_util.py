"""Small helpers the ``bastion guard`` sub-commands share: consoles, the exit-2 error, and
table cells."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

out = Console()
err = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print an error to stderr and return the exit (code 2) to raise."""
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)  # greppable: no breaks
    return typer.Exit(2)


def num(value: object, digits: int = 3) -> str:
    """A metric for the summary table; ``-`` where the corpus leaves it undefined."""
    return "-" if value is None else f"{float(value):.{digits}f}"  # type: ignore[arg-type]


def interval(bounds: list[float] | None, digits: int = 1) -> str:
    """``low-high`` for an interval, ``-`` where undefined."""
    return "-" if bounds is None else f"{bounds[0]:.{digits}f}-{bounds[1]:.{digits}f}"


def csv_ints(value: str, option: str) -> tuple[int, ...]:
    """``"1,3,5"`` as integers; a bad item is an exit 2 that names the option."""
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise fail(f"{option} takes whole numbers separated by commas, got {value!r}") \
            from None
    if not out:
        raise fail(f"{option} needs at least one number")
    return out
