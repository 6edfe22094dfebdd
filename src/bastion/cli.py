"""The ``bastion`` command: one sub-command per job.

    bastion evaluate --model NAME_OR_FILE --data mnist --n 1000 --eps 0.3 --attack pgd
    bastion demo                       # the README's main job
    bastion zoo list | bastion zoo train NAME
    bastion guard scan TEXT [--output] [--json]
    bastion guard eval --corpus NAME|FILE.jsonl [--json FILE]
    bastion train --method pgd|trades|mart|fgsm|standard --model smallcnn --eps 0.3 --out DIR
    bastion certify --model NAME --method ibp|crown|crown-ibp|smoothing --eps E [--json FILE]
    bastion diagnose --model NAME --data mnist --n N --norm Linf --eps E [--json FILE]
    bastion ood --model NAME --id mnist --ood fashion-mnist,uniform [--eps 0.1,0.3] [--out DIR]
    bastion data audit --model NAME [--poison SPEC] [--remove FILE.npz]
    bastion data manifest create|verify ...
    bastion poison scan --model NAME --out DIR [--trigger SPEC]
    bastion privacy extract|membership ... [--json FILE]
    bastion serve [--host H] [--port P] [--config FILE]   # the guard service
    bastion keys create --name N [--role client|reviewer|admin] | keys list | keys revoke ID
    bastion review export --out FILE.jsonl
"""

from __future__ import annotations

import importlib
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bastion import inputs as own
from bastion.errors import BastionError, MissingDependencyError
from bastion.extras import extra_for

if TYPE_CHECKING:
    from bastion import jobs

app = typer.Typer(help="Measure and raise the adversarial robustness of ML models.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
zoo_app = typer.Typer(help="List and rebuild the model zoo.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")
console = Console()
err = Console(stderr=True)


def _missing_extra(extra: str, module: str | None) -> typer.Exit:
    """Say which extra to install (exit 2, no traceback)."""
    why = (f"this command needs {module or 'a package'!r}, which is not installed: "
           f"pip install 'bastion[{extra}]'")
    err.print(f"[red]error:[/] {escape(why)}", soft_wrap=True)
    return typer.Exit(2)


def _placeholder(name: str, extra: str, module: str | None) -> Callable[..., None]:
    """A command standing in for one whose extra is not installed: it says which."""
    def command(ctx: typer.Context) -> None:
        raise _missing_extra(extra, module)

    command.__doc__ = escape(f"(needs: pip install 'bastion[{extra}]')")  # help is markup
    command.__name__ = name.replace("-", "_")
    return command


def _register(module: str, extra: str, names: tuple[str, ...],
              attach: Callable[[ModuleType], None]) -> None:
    """Import a part's command module and attach its commands; when its extra is not
    installed, attach placeholders under the same ``names`` that say which to install."""
    try:
        attach(importlib.import_module(module))
    except ModuleNotFoundError as exc:
        if (exc.name or "bastion").split(".")[0] == "bastion":
            raise  # a bug in bastion, not a missing extra
        loose = {"allow_extra_args": True, "ignore_unknown_options": True}
        for name in names:
            app.command(name=name, context_settings=loose, add_help_option=False)(
                _placeholder(name, extra_for(exc.name, extra), exc.name))


_register("bastion.guard.cli", "guard", ("guard",),
          lambda m: app.add_typer(m.guard_app, name="guard"))
_register("bastion.train.cli", "classic", ("train",), lambda m: m.register(app))
_register("bastion.certify.cli", "classic", ("certify",), lambda m: m.register(app))
_register("bastion.diagnostics.cli", "classic", ("diagnose",), lambda m: m.register(app))
_register("bastion.ood.cli", "classic", ("ood",), lambda m: m.register(app))
_register("bastion.poison.cli", "classic", ("poison", "data"), lambda m: m.register(app))
_register("bastion.privacy.cli", "classic", ("privacy",), lambda m: m.register(app))
_register("bastion.redteam.text_cli", "guard-models", ("text-attack",),
          lambda m: m.register(app))
_register("bastion.service.cli", "service", ("serve", "serve-model", "keys", "review"),
          lambda m: m.register(app))
_register("bastion.redteam.cli", "guard-models", ("redteam",), lambda m: m.register(app))


def _jobs() -> ModuleType:
    """:mod:`bastion.jobs` (the classic half, torch), imported when a command needs it."""
    try:
        return importlib.import_module("bastion.jobs")
    except ModuleNotFoundError as exc:
        raise _missing_extra(extra_for(exc.name, "classic"), exc.name) from None


def main(argv: list[str] | None = None) -> Any:
    """The ``bastion`` command: the typer app, with a missing extra found while a command
    runs reported as which one to install (exit 2) instead of a traceback."""
    try:
        return app(args=argv, prog_name="bastion")
    except MissingDependencyError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise SystemExit(2) from None
    except ModuleNotFoundError as exc:
        _missing_extra(extra_for(exc.name), exc.name)
        raise SystemExit(2) from None


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
         state: Path | None, progress: bool, card_extra: dict[str, Any] | None = None
         ) -> None:
    try:
        results = _jobs().run_job(specs, out=out, json_path=json_path, state=state,
                               progress=progress, command=_command(), log=err.print,
                               card_extra=card_extra)
    except KeyboardInterrupt:
        where = state or (out / "state" if out else None)
        hint = (f"rerun the same command to resume from {where}" if where else
                "pass --state FILE or --out DIR to make the run resumable")
        err.print(f"[yellow]interrupted[/]; finished batches are saved: {hint}")
        raise typer.Exit(130) from None
    except BastionError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    _summary(results)


@app.command()
def evaluate(
    model: Annotated[list[str], typer.Option(
        help="repeatable: " + own.MODEL_HELP)],
    data: Annotated[str, typer.Option(help=own.DATA_HELP)] = "mnist",
    split: Annotated[str, typer.Option()] = "test",
    resize: own.ResizeOpt = None,
    classes: own.ClassesOpt = None,
    data_root: own.DataRootOpt = None,
    mean: own.MeanOpt = None,
    std: own.StdOpt = None,
    # --samples: torchrun's own parser (Python 3.11) rejects "--n" as an ambiguous prefix.
    n: Annotated[int | None, typer.Option("--n", "--samples",
                                          help="first N samples (default: all)")] = None,
    norm: Annotated[str, typer.Option(help="Linf, L2 or L1")] = "Linf",
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
    checkpoint: own.CheckpointOpt = None,
    state: Annotated[Path | None, typer.Option(help="resume file (default: OUT/state/)")] = None,
    out: Annotated[Path | None, typer.Option(help="write card.json, card.html, record")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write results as JSON")] = None,
    device: own.DeviceOpt = "cpu",
    amp: Annotated[bool, typer.Option(
        "--amp", help="attacks in mixed precision (bf16 on CPU, fp16 on GPU) if a check on "
                      "a probe set finds it does not weaken them; else float32")] = False,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    threats: Annotated[str | None, typer.Option(
        help="threat matrix instead: e.g. linf:0.3,l2:2,l1:10,spatial:30deg-3px,corruptions "
             "(docs/threats.md)")] = None,
    targets: Annotated[int, typer.Option(help="APGD-T target classes (with --threats)")] = 9,
) -> None:
    """Clean and robust accuracy of one or more models under one or more attacks.

    Shard it across processes or machines by launching it with torchrun
    (docs/evaluation.md); rank 0 writes the results.
    """
    inputs = own.inputs_from_command_line(resize=resize, classes=classes, data_root=data_root,
                                          mean=mean, std=std)
    if threats is not None:
        own.no_user_inputs(inputs, "--threats")
        _matrix(model, threats, data=data, split=split, n=n, steps=steps or 100,
                targets=targets, seed=seed, batch_size=batch_size, out=out,
                json_path=json_path, checkpoint=checkpoint)
        return
    specs = [_jobs().EvalSpec(model=m, data=data, split=split, n=n, norm=norm, eps=eps,
                               attacks=tuple(attack or ["pgd"]), steps=steps, restarts=restarts,
                               step_size=step_size, sweep=_floats(sweep), seed=seed,
                               batch_size=batch_size, checkpoint=checkpoint, device=device,
                               amp=amp, inputs=inputs)
             for m in model]
    _run(specs, out, json_path, state, progress)


def _matrix(models: list[str], threats: str, **options: Any) -> None:
    from bastion.threats.job import run_matrix_job

    try:
        section = run_matrix_job(models, threats, command=_command(), log=err.print,
                                 **options)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]; finished cells are saved: rerun the same "
                  "command (with --out) to resume")
        raise typer.Exit(130) from None
    except BastionError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    table = Table(title=f"accuracy by threat ({section['data']['n']} images)")
    table.add_column("model", no_wrap=True)
    table.add_column("clean")
    for label in section["threats"]:
        table.add_column(label)
    for row in section["rows"]:
        table.add_row(row["model"], f"{row['clean_accuracy']:.1%}",
                      *(f"{c['accuracy']:.1%} [{c['interval'][0]:.1%}, {c['interval'][1]:.1%}]"
                        for c in row["cells"]))
    console.print(table)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="where the card goes")] = Path("out/demo"),
    # 500 images and PGD-20 (step 2.5 * eps / steps) keep the main job to a few minutes on
    # 2 cores; intervals stay near +-4 points. Full size: --n 1000 --steps 40.
    n: Annotated[int, typer.Option(help="MNIST test images")] = 500,
    steps: Annotated[int, typer.Option(help="PGD steps")] = 20,
    guard_limit: Annotated[int, typer.Option(
        min=0, help="S-Labs test prompts the guard is measured on (0: no guard section)")
    ] = 400,
    progress: Annotated[bool, typer.Option()] = True,
) -> None:
    """The main job: the default LLM guard on a few prompts and a slice of S-Labs test,
    then bundled and advertorch MNIST models under FGSM and PGD with an Linf eps sweep;
    one card holds both halves."""
    jobs = _jobs()
    card_extra = _guard_demo(guard_limit, progress) if guard_limit else None
    specs = [jobs.EvalSpec(model=m, n=n, eps=0.3, attacks=("fgsm", "pgd"), steps=steps,
                           sweep=jobs.DEMO_SWEEP) for m in jobs.DEMO_MODELS]
    _run(specs, out, out / "results.json", None, progress, card_extra=card_extra)


def _guard_demo(limit: int, progress: bool) -> dict[str, Any]:
    """The card's ``guard`` section (:func:`bastion.demo.guard_section`), with a line per
    prompt and one for the corpus on the terminal."""
    from bastion.demo import DEMO_CORPUS, guard_section
    from bastion.report.guard import guard_card_section

    err.print(f"guard: scanning the demo prompts and the first {limit} {DEMO_CORPUS} prompts "
              "with the default policy")
    try:
        section = guard_section(limit=limit, progress=progress)
    except BastionError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    for p in section["prompts"]:
        err.print(f"guard: {p['kind']:6} ({p['note']}) -> {p['verdict']}"
                  + (f" by {p['layer']}" if "layer" in p else ""))
    c = section["corpus"]
    err.print(f"guard: {c['name']} n={c['n']}: TPR {c['tpr']:.1%} "
              f"[{c['tpr_ci'][0]:.1%}, {c['tpr_ci'][1]:.1%}], FPR {c['fpr']:.1%} "
              f"[{c['fpr_ci'][0]:.1%}, {c['fpr_ci'][1]:.1%}] ({section['seconds']:.0f} s)"
              if c.get("tpr") is not None and c.get("fpr") is not None else
              f"guard: {c['name']} n={c['n']}: {c['notes']}")
    return {"guard": guard_card_section(section)}


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
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
