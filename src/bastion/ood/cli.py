"""``bastion ood``: out-of-distribution detectors on one model, clean and attacked.

    bastion ood --model mnist-smallcnn-std --id mnist --ood fashion-mnist,digits,uniform
    bastion ood --model mnist-lenet5-pgd --eps 0.1,0.3 --json ood.json --plot ood.png \
        --out card/ --state ood.state.json

Exit status: 0 on success, 2 for bad options or input, 130 when interrupted (rerun the
same command with the same ``--state`` to continue).
:func:`register` adds the command to the main typer app (``bastion.cli``).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bastion.errors import BastionError, ConfigError
from bastion.inputs import DeviceOpt

ERROR_EXIT = 2
INTERRUPTED_EXIT = 130


def _names(text: str, known: list[str], what: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["all"]:
        return known
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(f"unknown {what} {unknown or text!r}; available: {', '.join(known)}")
    return names


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--eps takes comma-separated numbers, got {text!r}") from None


def _run(model_name: str, id_name: str, ood: str, detectors: str, n: int, fit: int,
         eps: str, n_adv: int, steps: int, seed: int, state: Path | None,
         log: Any, checkpoint: Path | None = None, device: str = "cpu"
         ) -> tuple[Any, dict[str, Any]]:
    from bastion import data
    from bastion.jobs import parse_device
    from bastion.ood.evaluate import evaluate_ood
    from bastion.ood.registry import DETECTORS
    from bastion.ood.sets import SETS, load_set
    from bastion.zoo.user import load_any

    if id_name.endswith((".npz", ".pt")):
        raise ConfigError(f"{id_name} is one set, but bastion ood fits on a train split and "
                          "tests on a test split; give a folder with train/ and test/ class "
                          "sub-folders")
    names = _names(detectors, list(DETECTORS), "detector")
    set_names = _names(ood, list(SETS), "OOD set")
    radii = _floats(eps)
    # The detectors move each batch to the model's device (bastion.ood.base).
    model = load_any(model_name, checkpoint).to(parse_device(device))
    train = data.load(id_name, "train", fit)
    test = data.load(id_name, "test", n)
    shape = tuple(int(d) for d in test.x.shape[1:])
    if len(shape) != 3:
        raise ConfigError(f"{id_name} images have shape {shape}; bastion ood needs (C, H, W)")
    sets = {s: load_set(s, n, seed=seed, shape=(shape[0], shape[1], shape[2]), id_name=id_name)
            for s in set_names}
    log(f"{model_name}: {len(names)} detectors fitted on {len(train)} {id_name}/train images, "
        f"{len(test)} ID test images, OOD sets {', '.join(set_names)}")
    result = evaluate_ood(model, train, test.x, sets, detectors=names, eps=radii,
                          n_adv=n_adv, steps=steps, seed=seed, state=state, log=log)
    return model, {**result, "model": model_name, "id": id_name, "test": test}


def _summary(result: dict[str, Any]) -> None:
    table = Table(title=f"OOD detection on {result['model']} (ID: {result['id']}); "
                        "AUROC % / FPR@95 %")
    table.add_column("detector")
    sets = result["settings"]["sets"]
    for s in sets:
        table.add_column(s)
    eps = result["settings"]["eps"]
    for e in eps:
        table.add_column(f"attacked {e:g}")
    for name, det in result["detectors"].items():
        cells = [f"{100 * det['sets'][s]['auroc']:.1f} / {100 * det['sets'][s]['fpr95']:.1f}"
                 for s in sets]
        for rows in det["adaptive"].values():
            cells += [f"{100 * r['auroc']:.1f} / {100 * r['fpr95']:.1f}"
                      + (" masking?" if r["masking_suspected"] else "") for r in rows]
        table.add_row(name, *cells)
    Console().print(table)


def _card(out: Path, model: Any, result: dict[str, Any], seed: int, command: str) -> Path:
    from bastion.attacks import PGD
    from bastion.common.records import versions
    from bastion.common.state import model_digest
    from bastion.evaluation import evaluate
    from bastion.jobs import EvalSpec, model_info
    from bastion.ood.card import ood_section
    from bastion.report import CardEntry, write_entry_card
    from bastion.threat import ThreatModel

    settings, test = result["settings"], result["test"]
    radii = sorted(settings["eps"]) or [0.3]
    x, y = test.x[:settings["n_adv"]], test.y[:settings["n_adv"]]
    evaluation = evaluate(model, (x, y), ThreatModel("Linf", radii[-1]),
                          {"pgd": PGD(steps=settings["steps"])}, eps_sweep=radii[:-1],
                          seed=seed).to_dict()
    entry = CardEntry(model=model_info(EvalSpec(model=result["model"]), model_digest(model)),
                      data={"name": test.name, "split": test.split, "n": len(x),
                            "source": test.source},
                      evaluation=evaluation,
                      sections={"out_of_distribution": ood_section(result, id_name=test.name)})
    _, html = write_entry_card(out, entry, seed=seed, versions=versions(), command=command)
    return html


def ood_command(
    model: Annotated[str, typer.Option(help="zoo name, or FILE.py[:factory] (docs/models.md)")],
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", "--weights", help="state_dict file loaded into a FILE.py or "
                                          "package.module:callable model")] = None,
    id_name: Annotated[str, typer.Option("--id", help="in-distribution data set")] = "mnist",
    ood: Annotated[str, typer.Option(help="comma-separated OOD sets, or 'all'")]
        = "fashion-mnist,digits,natural,uniform,gaussian,mnist-rot90,mnist-invert,mnist-blur",
    detectors: Annotated[str, typer.Option(help="comma-separated detectors, or 'all'")] = "all",
    n: Annotated[int, typer.Option("--n", help="ID test images and images per OOD set")] = 1000,
    fit: Annotated[int, typer.Option(help="training images the detectors are fitted on")]
        = 10000,
    eps: Annotated[str, typer.Option(help="Linf radii of the adaptive attack ('' = none)")]
        = "0.1,0.3",
    n_adv: Annotated[int, typer.Option(help="ID and OOD images attacked")] = 200,
    steps: Annotated[int, typer.Option(help="PGD steps of the adaptive attack")] = 20,
    seed: Annotated[int, typer.Option()] = 0,
    state: Annotated[Path | None, typer.Option(help="resume file")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write results as JSON")]
        = None,
    plot: Annotated[Path | None, typer.Option(help="write AUROC vs eps as PNG")] = None,
    out: Annotated[Path | None, typer.Option(help="write card.json and card.html here")] = None,
    progress: Annotated[bool, typer.Option(help="progress lines on stderr")] = True,
    device: DeviceOpt = "cpu",
) -> None:
    """Detect out-of-distribution inputs with every detector, clean and under an adaptive
    attack on the detector's own score."""
    err = Console(stderr=True)

    def log(line: str) -> None:
        if progress:
            err.print(line, markup=False, highlight=False)

    command = "bastion " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        net, result = _run(model, id_name, ood, detectors, n, fit, eps, n_adv, steps, seed,
                           state, log, checkpoint, device)
        payload = {k: v for k, v in result.items() if k != "test"} | {"command": command}
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(payload, indent=1) + "\n")
        if plot is not None:
            from bastion.ood.plots import auroc_vs_eps

            first = result["settings"]["sets"][0]
            plot.write_bytes(auroc_vs_eps(
                result, title=f"{model}: {id_name} vs {first} (the attacked OOD set)"))
        if out is not None:
            log(f"card written: {_card(out, net, result, seed, command).resolve()}")
    except KeyboardInterrupt:
        hint = " rerun with the same --state to continue" if state else ""
        err.print(f"[yellow]interrupted[/];{hint}")
        raise typer.Exit(INTERRUPTED_EXIT) from None
    except BastionError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(ERROR_EXIT) from None
    _summary(result)


def register(app: typer.Typer) -> None:
    """Add the ``ood`` command to ``app``."""
    app.command(name="ood")(ood_command)
