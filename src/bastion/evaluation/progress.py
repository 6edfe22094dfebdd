"""A progress bar that is a no-op when disabled (tests, pipes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def progress_bar(enabled: bool, *, total: int, label: str) -> Iterator[Callable[[str], None]]:
    """Yield ``advance(description)``; draws a bar on stderr when enabled."""
    if not enabled:
        yield lambda _desc: None
        return
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=Console(stderr=True))
    with bar:
        task = bar.add_task(label, total=total)

        def advance(desc: str) -> None:
            bar.update(task, advance=1, description=f"{label} {desc}")

        yield advance
