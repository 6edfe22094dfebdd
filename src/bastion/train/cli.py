"""``bastion train``: the command line of :func:`bastion.train.train` and the beta sweep.

The lead wires it into the main app with ``register(app)``; ``python -m bastion.train``
runs it on its own (which is what ``torchrun -m bastion.train`` needs).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bastion.errors import BastionError
from bastion.inputs import DeviceOpt
from bastion.train.config import TrainConfig
from bastion.train.multi import parse_also

err = Console(stderr=True)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}") from None


def train_command(
    out: Annotated[Path, typer.Option(help="folder for checkpoints, log and card; rerun "
                                           "the same command to resume")],
    method: Annotated[str, typer.Option(help="standard, pgd, trades, mart, fgsm or "
                                             "gaussian")] = "pgd",
    model: Annotated[str, typer.Option(help="architecture: mlp, smallcnn, lenet5, "
                                            "wong-small (28x28), cifar-small (3x32x32)")]
        = "smallcnn",
    data: Annotated[str, typer.Option(
        help="data set (bastion.data), or an image FOLDER with train/ (val/, test/) class "
             "sub-folders (docs/data.md)")] = "mnist",
    norm: Annotated[str, typer.Option(help="Linf, L2 or L1")] = "Linf",
    eps: Annotated[float, typer.Option(help="training and validation radius")] = 0.3,
    epochs: Annotated[int, typer.Option()] = 10,
    batch_size: Annotated[int, typer.Option(help="global batch size")] = 128,
    optimizer: Annotated[str, typer.Option(help="adam or sgd")] = "adam",
    lr: Annotated[float, typer.Option(help="base learning rate")] = 1e-3,
    momentum: Annotated[float, typer.Option(help="SGD momentum")] = 0.9,
    weight_decay: Annotated[float, typer.Option()] = 0.0,
    lr_schedule: Annotated[str, typer.Option(help="constant, piecewise or onecycle")] =
        "piecewise",
    lr_milestones: Annotated[str, typer.Option(help="piecewise: fractions of training "
                                                    "where lr /= 10")] = "0.5,0.75",
    eps_ramp: Annotated[float, typer.Option(help="epochs of linear eps warm-up")] = 0.0,
    steps: Annotated[int, typer.Option(help="inner PGD/TRADES steps")] = 10,
    step_size: Annotated[float | None, typer.Option(help="inner step (default "
                                                         "2.5*eps/steps)")] = None,
    beta: Annotated[float, typer.Option(help="TRADES beta / MART lambda")] = 6.0,
    fgsm_alpha: Annotated[float, typer.Option(help="FGSM-RS step / eps")] = 1.25,
    noise_sigma: Annotated[float, typer.Option(help="gaussian: noise std (smoothing's "
                                                    "sigma)")] = 0.25,
    train_n: Annotated[int | None, typer.Option(help="first N training images")] = None,
    val_n: Annotated[int, typer.Option(help="validation images per epoch")] = 1000,
    val_holdout: Annotated[int, typer.Option(help="train images held out when the data "
                                                  "set has no val split")] = 5000,
    val_steps: Annotated[int, typer.Option(help="PGD steps of validation")] = 20,
    eval_n: Annotated[int, typer.Option(help="test images of the final card")] = 1000,
    eval_steps: Annotated[int, typer.Option(help="PGD steps of the final card")] = 40,
    co_drop: Annotated[float, typer.Option(help="catastrophic-overfitting drop (0: off)")] =
        0.2,
    seed: Annotated[int, typer.Option()] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="batches between checkpoints")] = 100,
    device: DeviceOpt = "cpu",
    dp: Annotated[bool, typer.Option("--dp", help="DP-SGD through Opacus")] = False,
    dp_noise_multiplier: Annotated[float, typer.Option()] = 1.0,
    dp_max_grad_norm: Annotated[float, typer.Option()] = 1.0,
    dp_delta: Annotated[float, typer.Option()] = 1e-5,
    sweep_beta: Annotated[str | None, typer.Option(
        help="train one model per beta, e.g. 0.5,1,3,6; writes sweep.json, sweep.png and "
             "a card with the trade-off")]
        = None,
    compare: Annotated[str | None, typer.Option(
        help="also train these methods with the same settings, e.g. standard,pgd,mart,fgsm, "
             "as points of the same trade-off")] = None,
    poison: Annotated[str | None, typer.Option(
        help="plant a poisoning attack to measure a backdoor, e.g. badnets:rate=0.1,target=0 "
             "(docs/poison.md)")] = None,
    manifest: Annotated[str | None, typer.Option(
        help="provenance manifest the training data must verify against")] = None,
    allow_unverified: Annotated[bool, typer.Option(
        "--allow-unverified", help="train even if the manifest does not verify (recorded in "
                                   "the record and the card)")] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    also: Annotated[str | None, typer.Option(
        help="also train against these threat models, e.g. l1:10 or l2:2,l1:10 "
             "(docs/threats.md)")] = None,
    combine: Annotated[str, typer.Option(help="with --also: max (worst example per sample) "
                                              "or avg (mean loss)")] = "max",
) -> None:
    """Adversarial training (PGD-AT, TRADES, MART, FGSM-RS) with validation, resume,
    torchrun, DP-SGD and a robustness card. See docs/training.md."""
    from bastion.train.sweep import run_sweep
    from bastion.train.trainer import train

    # `bastion train ...` has "train" in argv; `python -m bastion.train ...` does not
    args = sys.argv[1:]
    args = args[1:] if args[:1] == ["train"] else args
    command = "bastion train " + " ".join(shlex.quote(a) for a in args)
    try:
        cfg = TrainConfig(
            method=method, model=model, data=data, norm=norm, eps=eps, epochs=epochs,
            batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum,
            weight_decay=weight_decay, lr_schedule=lr_schedule,
            lr_milestones=_floats(lr_milestones), eps_ramp_epochs=eps_ramp, steps=steps,
            step_size=step_size, beta=beta, fgsm_alpha=fgsm_alpha, noise_sigma=noise_sigma,
            train_n=train_n,
            val_n=val_n, val_holdout=val_holdout, val_steps=val_steps, eval_n=eval_n,
            eval_steps=eval_steps, co_drop=co_drop or None, seed=seed,
            checkpoint_every=checkpoint_every, device=device, dp=dp,
            dp_noise_multiplier=dp_noise_multiplier, dp_max_grad_norm=dp_max_grad_norm,
            dp_delta=dp_delta, progress=progress, also=parse_also(also or ""),
            combine=combine, poison=poison, manifest=manifest,
            allow_unverified=allow_unverified)
        if sweep_beta is not None or compare is not None:
            methods = [m.strip() for m in (compare or "").split(",") if m.strip()]
            run_sweep(cfg, _floats(sweep_beta) if sweep_beta else (), out, command=command,
                      log=err.print, compare=methods)
        else:
            train(cfg, out, command=command, log=err.print)
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted[/]; rerun the same command to resume from {out}")
        raise typer.Exit(130) from None
    except BastionError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""
    app.command("train")(train_command)
