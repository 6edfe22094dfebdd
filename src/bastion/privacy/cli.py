"""``bastion privacy``: model extraction and membership inference, JSON out.

    bastion privacy extract --model mnist-smallcnn-std --pool mnist:val \
        --budgets 500,2000,5000 --defense label-only --json extract.json
    bastion privacy audit --data fashion-mnist --pool 2500 --shadows 16 --json mi.json

Membership inference, the DP audit, inversion and the card live in
:mod:`bastion.privacy.mi_cli`, which adds its commands to the same group.

Exit status: 0 on success, 2 for bad options or input, 130 when interrupted (rerun the
same command with the same ``--state`` to continue).
:func:`register` adds the command group to the main typer app (``bastion.cli``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bastion.errors import BastionError, ConfigError

ERROR_EXIT = 2
INTERRUPTED_EXIT = 130
privacy_app = typer.Typer(
    help="Model theft and privacy: extraction, membership inference, DP audit, inversion.",
    no_args_is_help=True)


def _budgets(text: str) -> list[int]:
    try:
        sizes = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--budgets takes comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"--budgets needs query counts >= 1, got {text!r}")
    return sizes


def _split(spec: str) -> tuple[str, str]:
    name, _, split = spec.partition(":")
    return name, split or "train"


def _emit(payload: dict[str, Any], json_path: Path | None) -> None:
    text = json.dumps(payload, indent=1) + "\n"
    if json_path is None:
        sys.stdout.write(text)
        return
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(text)


def _guarded(job: Callable[[Callable[[str], None]], dict[str, Any]], json_path: Path | None,
             state: Path | None, progress: bool) -> None:
    """Run ``job(log)``, print or write its JSON, and map errors to exit codes."""
    err = Console(stderr=True)

    def log(line: str) -> None:
        if progress:
            err.print(line, markup=False, highlight=False)

    try:
        payload = job(log)
    except KeyboardInterrupt:
        hint = " rerun with the same --state to continue" if state else ""
        err.print(f"[yellow]interrupted[/];{hint}")
        raise typer.Exit(INTERRUPTED_EXIT) from None
    except BastionError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(ERROR_EXIT) from None
    _emit(payload | {"command": "bastion " + " ".join(sys.argv[1:])}, json_path)


@privacy_app.command("extract")
def extract_command(
    model: Annotated[str, typer.Option(help="victim: zoo name, or FILE.py[:factory]")]
        = "mnist-smallcnn-std",
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", "--weights", help="state_dict file loaded into a FILE.py or "
                                          "package.module:callable victim")] = None,
    pool: Annotated[str, typer.Option(help="attacker's images, DATASET[:SPLIT]")]
        = "mnist:val",
    test: Annotated[str, typer.Option(help="held-out images, DATASET[:SPLIT]")] = "mnist:test",
    n_test: Annotated[int, typer.Option(help="test images")] = 2000,
    budgets: Annotated[str, typer.Option(help="comma-separated query budgets")]
        = "500,2000,5000",
    defense: Annotated[str, typer.Option(help="output defence on the victim")] = "none",
    arch: Annotated[str, typer.Option(help="the copy's zoo architecture")] = "wong-small",
    steps: Annotated[int, typer.Option(help="training steps per copy (batch 64)")] = 600,
    seed: Annotated[int, typer.Option()] = 0,
    state: Annotated[Path | None, typer.Option(help="resume file")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write JSON here")] = None,
    progress: Annotated[bool, typer.Option(help="progress lines on stderr")] = True,
) -> None:
    """Copy a victim from its answers to an attacker's pool; fidelity and accuracy per
    query budget."""
    def job(log: Callable[[str], None]) -> dict[str, Any]:
        from bastion import data
        from bastion.privacy.defenses import build_defense, defended_accuracy, is_label_only
        from bastion.privacy.extraction import extract
        from bastion.zoo.user import load_any

        sizes = _budgets(budgets)
        victim = build_defense(defense, load_any(model, checkpoint))
        pool_x = data.load(*_split(pool), max(sizes)).x
        held = data.load(*_split(test), n_test)
        res = extract(victim, pool_x, held.x, held.y, budgets=sizes,
                      label_only=is_label_only(defense), arch=arch, steps=steps, seed=seed,
                      state=state, log=log)
        return {"model": model, "defense": defense, "pool": pool, "arch": arch,
                "defended_accuracy": defended_accuracy(victim, held.x, held.y),
                **res.to_dict()}

    _guarded(job, json_path, state, progress)


def register(app: typer.Typer) -> None:
    """Add the ``privacy`` command group to ``app``."""
    import bastion.privacy.mi_cli  # noqa: F401  (adds audit, dp-audit, invert, card)

    app.add_typer(privacy_app, name="privacy")
