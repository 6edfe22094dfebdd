"""``bastion certify``: certified accuracy of one model, cross-checked by PGD.

    bastion certify --model mnist-certified --data mnist --n 100 --method crown --eps 0.1
    bastion certify --model FILE.py:make_model --method smoothing --sigma 0.25 --eps 0.5
    bastion certify --model mnist-certified-0.3 --n 1000 --method crown-ibp --eps 0.3 \
        --sweep 0.1,0.2,0.4 --out runs/cert      # card: certified beside PGD, per radius

:func:`register` adds the command to the main typer app (``bastion.cli``).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bastion.certify.card import write_certify_card
from bastion.certify.job import CertifySpec, run_certify, sweep_values
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

#: exit status when a certified sample is broken by the attack (the verifier is unsound).
UNSOUND_EXIT = 3


def certify_command(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    data: Annotated[str, typer.Option(help=DATA_HELP)] = "mnist",
    split: Annotated[str, typer.Option()] = "test",
    resize: ResizeOpt = None,
    classes: ClassesOpt = None,
    data_root: DataRootOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    n: Annotated[int, typer.Option(help="first N samples")] = 100,
    method: Annotated[str, typer.Option(
        help="ibp, crown, crown-ibp, alpha-crown or smoothing")] = "crown",
    norm: Annotated[str | None, typer.Option(
        help="Linf or L2 (default: L2 for smoothing, else Linf)")] = None,
    eps: Annotated[float, typer.Option(help="radius to certify (input units)")] = 0.1,
    sweep: Annotated[str | None, typer.Option(help="more radii for a curve: 0.01,0.05")] = None,
    attack: Annotated[str, typer.Option(help="pgd or none: empirical cross-check")] = "pgd",
    steps: Annotated[int, typer.Option(help="PGD steps")] = 40,
    sigma: Annotated[float, typer.Option(help="smoothing noise level")] = 0.25,
    n0: Annotated[int, typer.Option(help="smoothing: samples to pick the class")] = 100,
    samples: Annotated[int, typer.Option(help="smoothing: samples to bound p_A")] = 10_000,
    alpha: Annotated[float, typer.Option(help="smoothing: failure probability")] = 0.001,
    batch_size: Annotated[int | None, typer.Option(
        help="samples per batch (default 64), or noisy copies for smoothing (1000)")] = None,
    max_memory_mb: Annotated[float, typer.Option(
        help="crown, alpha-crown: MB for one chunk of backward specifications (same "
             "bounds at any budget; lower it if the machine runs out of memory)")] = 256.0,
    seed: Annotated[int, typer.Option()] = 0,
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = "cpu",
    json_path: Annotated[Path | None, typer.Option("--json", help="write results as JSON")] = None,
    out: Annotated[Path | None, typer.Option(
        help="write card.json and card.html: certified beside empirical accuracy")] = None,
) -> None:
    """Certified accuracy (IBP, CROWN, CROWN-IBP or randomized smoothing) of one model."""
    err = Console(stderr=True)
    if out is not None and attack == "none":
        err.print("[red]error:[/] --out writes a card that puts certificates beside an attack "
                  "on the same samples; drop --attack none (or drop --out)")
        raise typer.Exit(2)
    try:
        spec = CertifySpec(model=model, data=data, split=split, n=n, method=method, norm=norm,
                           eps=eps, sweep=tuple(sweep_values(sweep)),
                           attack=None if attack == "none" else attack, steps=steps,
                           sigma=sigma, n0=n0, samples=samples, alpha=alpha,
                           batch_size=batch_size, max_memory_mb=max_memory_mb,
                           seed=seed, checkpoint=checkpoint,
                           device=device,
                           inputs=UserInputs.parse(resize=resize, classes=classes,
                                                   data_root=data_root, mean=mean, std=std))
        result = run_certify(spec)
    except BastionError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    if out is not None:
        command = "bastion " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        _, html = write_certify_card(out, result, seed=seed, command=command)
        err.print(f"card: {html}")
    line = (f"{result['model']['name']}: {method} {result['threat']['norm']} eps={eps:g} "
            f"n={result['n']} clean {result['clean_accuracy']:.1%} certified "
            f"{result['certified_accuracy']:.1%}")
    if "empirical_robust_accuracy" in result:
        line += (f" {result['attack']} robust {result['empirical_robust_accuracy']:.1%} "
                 f"(gap {100 * result['gap']:+.1f} pts)")
    typer.echo(f"{line} ({result['seconds']:.1f} s)")
    # Any radius of the curve counts, not only --eps.
    broken = sum(point.get("certified_but_broken", 0) for point in result["sweep"])
    if broken > 0 and method == "smoothing":
        err.print(f"[bold yellow]warning: {broken} smoothing "
                  "certificate(s) overturned: the smoothed prediction at the attacked point "
                  f"was another class. Each certificate holds with probability 1 - alpha "
                  f"({1 - alpha:g}) and PREDICT errs with probability alpha, so a rare one is "
                  "possible; many mean a bug. Rerun with another --seed to tell.[/]")
    elif broken > 0:
        err.print(f"[bold red]UNSOUND: {broken} certified sample(s) were "
                  "broken by the attack. The verifier's bounds are wrong for this model: do "
                  "not trust these certificates, and report this with the model and command.[/]")
        raise typer.Exit(UNSOUND_EXIT)


def register(app: typer.Typer) -> None:
    """Add the ``certify`` command to ``app``."""
    app.command(name="certify")(certify_command)
