"""The ``bastion`` command: one sub-command per job.

    bastion evaluate --model NAME_OR_FILE --data mnist --n 1000 --eps 0.3 --attack pgd
    bastion demo                       # the README's main job
    bastion zoo list | bastion zoo train NAME
    bastion guard scan TEXT [--output] [--json]
    bastion guard eval --corpus NAME|FILE.jsonl [--json FILE]
    bastion train --method pgd|trades|mart|fgsm|standard --model smallcnn --eps 0.3 --out DIR
    bastion certify --model NAME --method ibp|crown|crown-ibp|smoothing --eps E [--json FILE]
    bastion diagnose --model NAME --data mnist --n N --norm Linf --eps E [--json FILE]
    bastion serve [--host H] [--port P] [--config FILE]   # the guard service
    bastion keys create --name N [--role client|reviewer|admin] | keys list | keys revoke ID
    bastion review export --out FILE.jsonl
    bastion data audit --model NAME [--poison SPEC] [--remove FILE.npz]
    bastion data manifest create|verify ...
    bastion poison scan --model NAME --out DIR [--trigger SPEC]
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bastion import jobs
from bastion.certify.cli import register as register_certify
from bastion.diagnostics.cli import register as register_diagnose
from bastion.errors import BastionError
from bastion.guard.cli import guard_app
from bastion.poison.cli import register as register_poison
from bastion.service.cli import register as register_service
from bastion.train.cli import register as register_train

app = typer.Typer(help="Measure and raise the adversarial robustness of ML models.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
zoo_app = typer.Typer(help="List and rebuild the model zoo.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")
app.add_typer(guard_app, name="guard")
register_train(app)
register_certify(app)
register_diagnose(app)
register_service(app)
register_poison(app)
console = Console()
err = Console(stderr=True)


def _floats(text: str | None) -> tuple[float, ...]:
    if not text:
        return ()
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {text!r}") from None


def _command() -> str:
    return "bastion " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _summary(results: list[dict]) -> None:
    table = Table(title="robust accuracy (worst case over attacks)")
    table.add_column("model", no_wrap=True)
    for col in ("n", "threat", "clean", "robust", "per attack", "seconds"):
        table.add_column(col)
    for r in results:
        per = ", ".join(f"{k} {v:.1%}" for k, v in r["per_attack"].items())
        t = r["threat"]
        table.add_row(r["model"]["name"], str(r["n"]), f"{t['norm']} {t['eps']:g}",
                      f"{r['clean_accuracy']:.1%}", f"{r['robust_accuracy']:.1%}", per,
                      f"{r['seconds']:.1f}")
    console.print(table)


def _run(specs: list[jobs.EvalSpec], out: Path | None, json_path: Path | None,
         state: Path | None, progress: bool) -> None:
    try:
        results = jobs.run_job(specs, out=out, json_path=json_path, state=state,
                               progress=progress, command=_command(), log=err.print)
    except KeyboardInterrupt:
        where = state or (out / "state" if out else None)
        hint = (f"rerun the same command to resume from {where}" if where else
                "pass --state FILE or --out DIR to make the run resumable")
        err.print(f"[yellow]interrupted[/]; finished batches are saved: {hint}")
        raise typer.Exit(130) from None
    except BastionError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    _summary(results)


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="zoo name, or FILE.py[:factory] (docs/models.md)")],
    data: Annotated[str, typer.Option(help="data set name (bastion.data)")] = "mnist",
    split: Annotated[str, typer.Option()] = "test",
    # --samples: torchrun's own parser (Python 3.11) rejects "--n" as an ambiguous prefix.
    n: Annotated[int | None, typer.Option("--n", "--samples",
                                          help="first N samples (default: all)")] = None,
    norm: Annotated[str, typer.Option(help="Linf or L2")] = "Linf",
    eps: Annotated[float, typer.Option(help="radius of the threat model")] = 0.3,
    attack: Annotated[list[str] | None, typer.Option(
        help="repeatable: NAME[:key=value,...], e.g. pgd, square:n_queries=1000, "
             "autoattack:version=plus (keys: the attack's constructor arguments)")] = None,
    steps: Annotated[int | None, typer.Option(help="steps, for attacks that take it")] = None,
    restarts: Annotated[int | None, typer.Option(help="restarts, where taken")] = None,
    step_size: Annotated[float | None, typer.Option(help="step size, where taken")] = None,
    sweep: Annotated[str | None, typer.Option(help="extra eps values, e.g. 0.1,0.2")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    batch_size: Annotated[int, typer.Option()] = 250,
    checkpoint: Annotated[Path | None, typer.Option(help="state_dict for a FILE.py model")] = None,
    state: Annotated[Path | None, typer.Option(help="resume file (default: OUT/state/)")] = None,
    out: Annotated[Path | None, typer.Option(help="write card.json, card.html, record")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write results as JSON")] = None,
    device: Annotated[str, typer.Option(
        help="torch device: cpu, cuda, cuda:1; under torchrun cuda = cuda:LOCAL_RANK")] = "cpu",
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Clean and robust accuracy of one model under one or more attacks.

    Shard it across processes or machines by launching it with torchrun
    (docs/evaluation.md); rank 0 writes the results.
    """
    spec = jobs.EvalSpec(model=model, data=data, split=split, n=n, norm=norm, eps=eps,
                         attacks=tuple(attack or ["pgd"]), steps=steps, restarts=restarts,
                         step_size=step_size, sweep=_floats(sweep), seed=seed,
                         batch_size=batch_size, checkpoint=checkpoint, device=device)
    _run([spec], out, json_path, state, progress)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where the card goes")] = Path("out/demo"),
    n: Annotated[int, typer.Option(help="MNIST test images")] = 1000,
    steps: Annotated[int, typer.Option(help="PGD steps")] = 40,
    progress: Annotated[bool, typer.Option()] = True,
) -> None:
    """The main job: bundled and advertorch MNIST models, FGSM and PGD, Linf eps sweep."""
    specs = [jobs.EvalSpec(model=m, n=n, eps=0.3, attacks=("fgsm", "pgd"), steps=steps,
                           sweep=jobs.DEMO_SWEEP) for m in jobs.DEMO_MODELS]
    _run(specs, out, out / "results.json", None, progress)


@zoo_app.command("list")
def zoo_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Registered models, where their weights come from, and how they were made."""
    from bastion.zoo.registry import ALIASES, ENTRIES

    rows = []
    for entry in ENTRIES.values():
        info = entry.info()
        rows.append({"name": entry.name, "arch": entry.arch, "kind": entry.kind,
                     "dataset": entry.dataset, "description": entry.description,
                     "clean_test_accuracy": info.get("clean_test_accuracy"),
                     "train_seconds": info.get("train_seconds"), "command": info.get("command")})
    if as_json:
        console.print_json(json.dumps({"models": rows, "aliases": ALIASES}))
        return
    table = Table(title="bastion zoo")
    for col in ("name", "arch", "kind", "description", "clean acc", "made by"):
        table.add_column(col)
    for r in rows:
        acc = r["clean_test_accuracy"]
        table.add_row(r["name"], r["arch"], r["kind"], r["description"],
                      f"{acc:.2%}" if acc is not None else "-", r["command"] or "-")
    for alias, target in ALIASES.items():
        table.add_row(alias, "", "alias", f"= {target}", "", "")
    console.print(table)


@zoo_app.command("train")
def zoo_train(
    name: Annotated[str, typer.Argument(help="bundled model to rebuild")],
    out: Annotated[Path | None, typer.Option(help="folder (default: the package's)")] = None,
) -> None:
    """Retrain a bundled checkpoint from scratch with its recorded recipe."""
    from bastion.zoo.recipes import train
    from bastion.zoo.registry import CHECKPOINTS

    try:
        train(name, out or CHECKPOINTS, log=err.print)
    except BastionError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


if __name__ == "__main__":  # pragma: no cover
    app()
