"""``bastion diagnose``: gradient masking and weak attacks, checked on one model.

    bastion diagnose --model mnist-lenet5-pgd --data mnist --n 200 --norm Linf --eps 0.3
    bastion diagnose --model my_model.py:make_model --eps 0.3 --json diag.json --out card/

Exit status: 0 when no check failed (warnings allowed), 3 when masking is suspected
(some check failed), 2 for bad options or input, 130 when interrupted.
:func:`register` adds the command to the main typer app (``bastion.cli``).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bastion.diagnostics.api import CHECKS
from bastion.diagnostics.job import DiagnoseSpec, run_diagnose, write_diagnosis_card, write_json
from bastion.diagnostics.result import masking_suspected
from bastion.errors import BastionError
from bastion.inputs import (
    DATA_HELP,
    MODEL_HELP,
    CheckpointOpt,
    ClassesOpt,
    DataRootOpt,
    DeviceOpt,
    MeanOpt,
    ResizeOpt,
    StdOpt,
    UserInputs,
)

#: exit status when some check failed: the robust accuracy is not to be trusted.
MASKING_EXIT = 3
#: exit status for bad options, input or models.
ERROR_EXIT = 2
INTERRUPTED_EXIT = 130

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def diagnose_command(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    data: Annotated[str, typer.Option(help=DATA_HELP)] = "mnist",
    split: Annotated[str, typer.Option()] = "test",
    resize: ResizeOpt = None,
    classes: ClassesOpt = None,
    data_root: DataRootOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    n: Annotated[int, typer.Option("--n", "--samples", help="first N samples")] = 200,
    norm: Annotated[str, typer.Option(help="Linf or L2")] = "Linf",
    eps: Annotated[float, typer.Option(help="radius of the threat model")] = 0.3,
    steps: Annotated[int, typer.Option(help="steps of the base PGD attack")] = 40,
    restarts: Annotated[int, typer.Option(help="restarts of the base PGD attack")] = 1,
    square_queries: Annotated[int, typer.Option(help="Square's queries per sample")] = 1000,
    black_box_points: Annotated[int, typer.Option(
        help="at most this many white-box-robust samples for Square")] = 100,
    surrogate: Annotated[str | None, typer.Option(
        help="model for the transfer check (default: the data set's, e.g. "
             "mnist-smallcnn-std; 'none' skips it)")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = "cpu",
    json_path: Annotated[Path | None, typer.Option("--json", help="write the report as JSON")]
        = None,
    out: Annotated[Path | None, typer.Option(help="write card.json and card.html here")] = None,
    progress: Annotated[bool, typer.Option(help="progress lines on stderr")] = True,
) -> None:
    """Check whether robust accuracy is real or an artefact of masked gradients and weak
    attacks. Exit status 3 when masking is suspected (a check failed)."""
    err = Console(stderr=True)
    try:
        inputs = UserInputs.parse(resize=resize, classes=classes, data_root=data_root,
                                  mean=mean, std=std)
    except BastionError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(ERROR_EXIT) from None
    spec = DiagnoseSpec(model=model, data=data, split=split, n=n, norm=norm, eps=eps,
                        steps=steps, restarts=restarts, square_queries=square_queries,
                        black_box_points=black_box_points, surrogate=surrogate, seed=seed,
                        checkpoint=checkpoint, device=device, inputs=inputs)
    finished: list[dict[str, Any]] = []

    def log(line: str) -> None:
        if progress:
            err.print(line, markup=False, highlight=False)

    try:
        result, payload = run_diagnose(spec, log=log, on_check=finished.append)
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted[/] after {len(finished)} of {len(CHECKS)} checks")
        if json_path is not None:
            write_json(json_path, {"checks": finished, "complete": False,
                                   "masking_suspected": masking_suspected(finished)})
            err.print(f"the finished checks are in {json_path} (complete: false)")
        raise typer.Exit(INTERRUPTED_EXIT) from None
    except BastionError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(ERROR_EXIT) from None
    command = "bastion " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    payload["command"] = command
    if json_path is not None:
        write_json(json_path, payload)
    if out is not None:
        _, html = write_diagnosis_card(out, result, payload, seed=seed, command=command)
        log(f"card written: {html.resolve()}")
    _summary(payload)
    if result.masking_suspected:
        err.print("[bold red]masking suspected:[/] at least one check failed; the robust "
                  "accuracy of these attacks is not to be trusted (see the advice above)")
        raise typer.Exit(MASKING_EXIT)


def _summary(payload: dict[str, Any]) -> None:
    table = Table(title=f"diagnosis of {payload['model']['name']} "
                        f"({payload['threat']['norm']} eps={payload['threat']['eps']:g}, "
                        f"n={payload['n']})")
    for col in ("check", "verdict", "advice"):
        table.add_column(col)
    for c in payload["checks"]:
        verdict = "skipped" if c.get("skipped") else c["verdict"]
        # Text, not markup: advice and names are shown as written.
        table.add_row(c["name"], Text(verdict, style=_STYLE[c["verdict"]]),
                      Text(c["advice"] if c["verdict"] != "pass" else ""))
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the ``diagnose`` command to ``app``."""
    app.command(name="diagnose")(diagnose_command)
