"""``bastion privacy audit | dp-audit | invert | card``: membership inference, the DP
audit, model inversion and the card's theft and privacy section.

    bastion privacy audit --data fashion-mnist --pool 2500 --shadows 16 --state mi/ \
        --json mi.json --plot roc.png --card card/
    bastion privacy dp-audit --noise 0.8,2.0 --json dp.json
    bastion privacy invert --model mnist-smallcnn-std --model mnist-lenet5-pgd --json inv.json
    bastion privacy card --extraction extract.json --membership mi.json --out card/

Exit status as for ``bastion privacy extract`` (0, 2 bad input, 130 interrupted).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.errors import ConfigError, InputError
from bastion.inputs import DeviceOpt
from bastion.privacy.cli import _guarded, privacy_app

Log = Callable[[str], None]


def _floats(text: str, what: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"{what} takes comma-separated numbers, got {text!r}") from None
    if not values:
        raise ConfigError(f"{what} needs at least one number")
    return values


def _write_card(card: Path | None, **parts: list[dict[str, Any]]) -> None:
    if card is None:
        return
    from bastion.common.records import new_run_id, versions
    from bastion.report import write_privacy_card
    from bastion.report.privacy import theft_privacy

    write_privacy_card(card, theft_privacy(**parts), run={
        "run_id": new_run_id(), "seed": 0, "versions": versions(),
        "command": "bastion " + " ".join(sys.argv[1:])})


@privacy_app.command("audit")
def audit_command(
    data_name: Annotated[str, typer.Option("--data", help="data set of the pool")]
        = "fashion-mnist",
    pool: Annotated[int, typer.Option(help="pool size (each model trains on a half)")] = 2500,
    population: Annotated[int, typer.Option(help="test images no model sees (RMIA)")] = 1000,
    shadows: Annotated[int, typer.Option(help="shadow models (>= 2; 16+ for 0.1% FPR)")] = 16,
    targets: Annotated[int, typer.Option(help="models played as the target in turn")] = 1,
    recipe: Annotated[str, typer.Option(help="standard | pgd-at | dp")] = "standard",
    arch: Annotated[str, typer.Option(help="zoo architecture of every model")] = "mlp",
    epochs: Annotated[int, typer.Option()] = 60,
    noise: Annotated[float, typer.Option(help="DP noise multiplier")] = 1.0,
    eps: Annotated[float, typer.Option(help="PGD-AT L-inf radius")] = 0.1,
    workers: Annotated[int, typer.Option(help="training processes")] = 2,
    seed: Annotated[int, typer.Option()] = 0,
    state: Annotated[Path | None, typer.Option(help="resume folder (a file per model)")]
        = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write JSON here")] = None,
    plot: Annotated[Path | None, typer.Option(help="write the log-log ROC PNG here")] = None,
    save_target: Annotated[Path | None, typer.Option(
        help="save the target's state_dict here (for bastion privacy invert)")] = None,
    card: Annotated[Path | None, typer.Option(help="write a theft and privacy card here")]
        = None,
    progress: Annotated[bool, typer.Option(help="progress lines on stderr")] = True,
    device: DeviceOpt = "cpu",
) -> None:
    """Membership inference: every registered attack against a target trained like its
    shadows; AUROC and TPR at 0.1% and 1% FPR with 95% intervals."""
    def job(log: Log) -> dict[str, Any]:
        from bastion import data
        from bastion.jobs import parse_device
        from bastion.privacy._train import Recipe
        from bastion.privacy.membership import check_counts, membership_audit

        check_counts(shadows, targets)  # before minutes of data loading and training
        where = parse_device(device)
        how = Recipe(method=recipe, arch=arch, epochs=epochs, noise_multiplier=noise, eps=eps)
        train = data.load(data_name, "train", pool)
        pop = data.load(data_name, "test", population)
        res = membership_audit(train.x, train.y, shadows=shadows, recipe=how, seed=seed,
                               population=(pop.x, pop.y), targets=targets, workers=workers,
                               device=where, state=state, log=log,
                               keep_target=save_target is not None)
        out = {"data": data_name, **res.to_dict()}
        _print_summary(out)
        if save_target is not None and res.target_state is not None:
            import torch
            save_target.parent.mkdir(parents=True, exist_ok=True)
            torch.save(res.target_state, save_target)
        if plot is not None:
            from bastion.report.privacy import roc_plot
            plot.parent.mkdir(parents=True, exist_ok=True)
            plot.write_bytes(roc_plot([out]))
        _write_card(card, membership=[out])
        return out

    _guarded(job, json_path, state, progress)


def _print_summary(out: dict[str, Any]) -> None:
    err = sys.stderr
    for name, a in out["attacks"].items():
        low, one = a["tpr_at_fpr"]
        err.write(f"{name:21s} AUROC {a['auroc']:.3f} [{a['auroc_ci'][0]:.3f}, "
                  f"{a['auroc_ci'][1]:.3f}]  TPR@0.1%FPR {low['tpr']:.2%} {low['tpr_ci']}  "
                  f"TPR@1%FPR {one['tpr']:.2%} {one['tpr_ci']}\n")


@privacy_app.command("dp-audit")
def dp_audit_command(
    data_name: Annotated[str, typer.Option("--data")] = "fashion-mnist",
    n: Annotated[int, typer.Option(help="training images, canaries included")] = 2000,
    canaries: Annotated[int, typer.Option(help="canaries, each in with probability 1/2")]
        = 500,
    noise: Annotated[str, typer.Option(help="comma-separated noise multipliers")] = "0.8,2.0",
    epochs: Annotated[int, typer.Option()] = 10,
    delta: Annotated[float, typer.Option()] = 1e-5,
    seed: Annotated[int, typer.Option()] = 0,
    json_path: Annotated[Path | None, typer.Option("--json", help="write JSON here")] = None,
    card: Annotated[Path | None, typer.Option(help="write a theft and privacy card here")]
        = None,
    progress: Annotated[bool, typer.Option(help="progress lines on stderr")] = True,
    device: DeviceOpt = "cpu",
) -> None:
    """DP-SGD at each noise level, audited in one run with canaries: the audited epsilon
    lower bound printed beside the accounted epsilon."""
    def job(log: Log) -> dict[str, Any]:
        from bastion import data
        from bastion.jobs import parse_device
        from bastion.privacy._train import Recipe
        from bastion.privacy.dp_audit import one_run_audit

        levels = _floats(noise, "--noise")
        where = parse_device(device)
        train = data.load(data_name, "train", n)
        rows = []
        for sigma in levels:
            recipe = Recipe(method="dp", epochs=epochs, batch=128,
                            noise_multiplier=sigma, delta=delta)
            row = one_run_audit(train.x, train.y, canaries=canaries, recipe=recipe,
                                seed=seed, device=where, log=log)
            sys.stderr.write(f"noise {sigma}: accounted epsilon {row['accounted_epsilon']:.3f}"
                             f", audited lower bound {row['audited_epsilon']:.3f} (95%)\n")
            rows.append(row)
        out = {"data": data_name, "n": n, "epochs": epochs, "rows": rows}
        _write_card(card, dp_audit=[out])
        return out

    _guarded(job, json_path, None, progress)


def _load_model(spec: str) -> Any:
    """``SPEC`` or ``SPEC@WEIGHTS``: WEIGHTS is a state_dict file, or a model file of an
    audit's ``--state`` folder (``model-000.pt`` is the target)."""
    import torch

    from bastion.zoo.user import load_any

    if "@" not in spec:
        return load_any(spec)
    name, _, weights = spec.rpartition("@")
    model = load_any(name)
    try:
        saved = torch.load(weights, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise InputError(f"cannot read weights {weights}: {exc}") from None
    if isinstance(saved, dict) and "fingerprint" in saved and "state" in saved:
        saved = saved["state"]
    try:
        model.load_state_dict(saved)
    except RuntimeError as exc:
        raise InputError(f"{weights} does not fit {name}: {exc}") from None
    return model.eval()


@privacy_app.command("invert")
def invert_command(
    model: Annotated[list[str], typer.Option(
        help="zoo name, or package.module:callable@WEIGHTS (a state_dict or an audit's "
             "model-000.pt); repeat for several")],
    data_name: Annotated[str, typer.Option("--data", help="training data of the models")]
        = "mnist",
    n: Annotated[int, typer.Option(help="training images for the class means")] = 5000,
    steps: Annotated[int, typer.Option()] = 300,
    json_path: Annotated[Path | None, typer.Option("--json", help="write JSON here")] = None,
    images: Annotated[Path | None, typer.Option(help="write the reconstructions PNG here")]
        = None,
    card: Annotated[Path | None, typer.Option(help="write a theft and privacy card here")]
        = None,
    progress: Annotated[bool, typer.Option(help="progress lines on stderr")] = True,
    device: DeviceOpt = "cpu",
) -> None:
    """Reconstruct each class from the model alone; cosine similarity to the class's
    training mean."""
    def job(log: Log) -> dict[str, Any]:
        from bastion import data
        from bastion.jobs import parse_device
        from bastion.privacy.inversion import class_means, invert_classes

        where = parse_device(device)
        train = data.load(data_name, "train", n)
        means = class_means(train.x, train.y)
        results, grids = [], []
        for spec in model:
            res = invert_classes(_load_model(spec).to(where), means, steps=steps)
            grids.append(res.pop("images"))
            results.append({"model": spec, **res})
            log(f"{spec}: mean similarity {res['mean_similarity']:.3f}, nearest own mean "
                f"{res['nearest_mean']}/{len(means)}")
        if images is not None:
            _save_grid(images, [means, *grids], ["class means", *model])
        out = {"data": data_name, "n": n, "steps": steps, "models": results}
        _write_card(card, inversion=[out])
        return out

    _guarded(job, json_path, None, progress)


def _save_grid(path: Path, rows: list[Any], names: list[str]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 0.9 * len(rows)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), rows[0].shape[0], squeeze=False)
    for r, (imgs, name) in enumerate(zip(rows, names, strict=True)):
        for c in range(imgs.shape[0]):
            ax = axes[r][c]
            ax.imshow(imgs[c, 0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(_short(name), fontsize=6)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")


def _short(spec: str) -> str:
    """A row label: the zoo name, or the folder and file of ``SPEC@WEIGHTS``."""
    if "@" in spec:
        weights = Path(spec.rpartition("@")[2])
        return f"{weights.parent.name}/{weights.stem}"[:20]
    return spec.split(":")[-1][:20]


def _read_parts(files: list[Path] | None, key: str) -> list[dict[str, Any]] | None:
    if not files:
        return None
    items: list[dict[str, Any]] = []
    for f in files:
        try:
            payload = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read {key} JSON {f}: {exc}") from None
        if key == "extraction" and "rows" not in payload:
            # bench/privacy_extract.py writes one run per defence, keyed by its name
            items += [{"defense": d, **run} for d, run in payload.items()
                      if isinstance(run, dict) and "rows" in run]
        else:
            items.append(payload)
    return items


@privacy_app.command("card")
def card_command(
    out: Annotated[Path, typer.Option(help="folder for card.json and card.html")],
    extraction: Annotated[list[Path] | None, typer.Option(help="extract --json file")] = None,
    membership: Annotated[list[Path] | None, typer.Option(help="audit --json file")] = None,
    dp_audit: Annotated[list[Path] | None, typer.Option(help="dp-audit --json file")] = None,
    inversion: Annotated[list[Path] | None, typer.Option(help="invert --json file")] = None,
    plot: Annotated[Path | None, typer.Option(
        help="also write the membership ROC plot (one curve per --membership) here")] = None,
) -> None:
    """Assemble the theft and privacy card from the JSON of the privacy commands."""
    def job(log: Log) -> dict[str, Any]:
        runs = _read_parts(membership, "membership") or []
        _write_card(out, extraction=_read_parts(extraction, "extraction") or [],
                    membership=runs, dp_audit=_read_parts(dp_audit, "dp_audit") or [],
                    inversion=_read_parts(inversion, "inversion") or [])
        if plot is not None and runs:
            from bastion.report.privacy import roc_plot
            plot.parent.mkdir(parents=True, exist_ok=True)
            plot.write_bytes(roc_plot(runs))
        log(f"wrote {out / 'card.json'} and {out / 'card.html'}")
        return {"card": str(out / "card.json")}

    _guarded(job, None, None, True)
