"""``bastion data audit``, ``bastion data manifest create|verify`` and ``bastion poison
scan``: the command line of :mod:`bastion.poison` and :mod:`bastion.data.manifest`."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.console import Console

from bastion.errors import BastionError, ConfigError
from bastion.inputs import DeviceOpt

data_app = typer.Typer(help="Data sets: curation audits and provenance manifests.",
                       no_args_is_help=True)
manifest_app = typer.Typer(help="Per-sample provenance manifests (SHA-256, label, source, "
                                "time, who).", no_args_is_help=True)
poison_app = typer.Typer(help="Backdoor scans of a trained model.", no_args_is_help=True)
data_app.add_typer(manifest_app, name="manifest")
err = Console(stderr=True)
out = Console()


def _fail(exc: BastionError) -> typer.Exit:
    err.print(f"[red]error:[/] {exc}")
    return typer.Exit(2)


def load_images(data: str, split: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(x, y, base)``: a ``.npz``/``.pt`` file, or splits of a data set or image folder
    joined (``train,val``)."""
    from bastion import data as registry
    from bastion.data.files import is_bastion_file, is_file, load_npz

    if is_file(data) and is_bastion_file(data):
        return load_npz(data)
    if data.endswith((".npz", ".pt")):  # the user's own file is one set, whatever --split
        own = registry.load(data)
        return own.x, own.y, data
    parts = [registry.load(data, s.strip()) for s in split.split(",") if s.strip()]
    if not parts:
        raise ConfigError("name at least one split, e.g. --split train")
    return torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]), data


def load_model(model: str, checkpoint: Path | None, arch: str | None,
               device: str = "cpu") -> torch.nn.Module:
    """A zoo name, ``FILE.py[:factory]`` with --checkpoint, or --arch with --checkpoint, on
    ``device`` (what --device takes; the detectors move each batch to the model)."""
    from bastion.jobs import parse_device

    return _load(model, checkpoint, arch).to(parse_device(device))


def _load(model: str, checkpoint: Path | None, arch: str | None) -> torch.nn.Module:
    from bastion.zoo.registry import build
    from bastion.zoo.user import load_any

    if arch is None:
        return load_any(model, checkpoint)
    if checkpoint is None:
        raise ConfigError("--arch needs --checkpoint (a state_dict, e.g. a run's best.pt)")
    # a training run writes the architecture's arguments beside its weights
    info = checkpoint.with_name("best.json")
    kwargs = json.loads(info.read_text()).get("arch_kwargs", {}) if info.exists() else {}
    net = build(arch, **kwargs)
    net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return net.eval()


def _plain(result: dict[str, Any]) -> dict[str, Any]:
    return {**result, "detectors": {k: {f: v for f, v in d.items() if f != "scores"}
                                    for k, d in result["detectors"].items()}}


@data_app.command("audit")
def audit_command(
    model: Annotated[str, typer.Option(help="model trained on the data: zoo name or FILE.py")]
        = "mnist-badnets",
    checkpoint: Annotated[Path | None, typer.Option(help="state_dict for FILE.py or --arch")]
        = None,
    arch: Annotated[str | None, typer.Option(help="zoo architecture of --checkpoint")] = None,
    device: DeviceOpt = "cpu",
    data: Annotated[str, typer.Option(help="data set, FILE.npz|.pt or FOLDER")] = "mnist",
    split: Annotated[str, typer.Option()] = "train",
    poison: Annotated[str | None, typer.Option(
        help="plant this poison first (as 'bastion train --poison' did, same --seed) to "
             "score the detectors against known poisons")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    reference: Annotated[int, typer.Option(
        help="trusted clean images from the end of the base set's val split (0: none)")] = 5000,
    detector: Annotated[list[str] | None, typer.Option(help="repeatable (default: all)")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the report")] = None,
    remove: Annotated[Path | None, typer.Option(help="write the cleaned set (.npz)")] = None,
    remove_by: Annotated[str, typer.Option(help="detector whose flags --remove drops")] =
        "spectral",
) -> None:
    """Score every training sample for poisoning; flag, report and optionally remove."""
    from bastion import data as registry
    from bastion.data.files import save_npz
    from bastion.poison.audit import audit, cleaned
    from bastion.poison.registry import parse_poison

    try:
        x, y, base = load_images(data, split)
        truth = None
        if poison:
            planted = parse_poison(poison).poison(x, y, seed=seed)
            x, y, truth = planted.x, planted.y, planted.mask
        ref = None
        if reference > 0:
            if registry.is_user_data(base) and not Path(base).is_dir():
                raise ConfigError(f"{base} is one set, with no trusted reference split; "
                                  "pass --reference 0, or give a folder with a val/ "
                                  "sub-folder")
            try:
                val = registry.load(base, "val")
            except ConfigError as exc:
                raise ConfigError(f"no trusted reference: {exc}; pass --reference 0 to "
                                  "audit without one") from None
            if reference > len(val):
                raise ConfigError(f"--reference {reference} but {base}/val has {len(val)}")
            ref = (val.x[-reference:], val.y[-reference:])
        net = load_model(model, checkpoint, arch, device)
        result = audit(net, x, y, detectors=detector, reference=ref, poisoned=truth)
        result["command"] = "bastion " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        if remove is not None:
            if remove_by not in result["detectors"]:
                raise ConfigError(f"--remove-by {remove_by} did not run; run it or pick one "
                                  f"of {', '.join(result['detectors'])}")
            cx, cy, kept = cleaned(x, y, result["detectors"][remove_by]["flagged"])
            save_npz(remove, cx, cy, base=base, kept=kept)
            result["removed"] = {"by": remove_by, "path": str(remove), "kept": len(kept)}
    except BastionError as exc:
        raise _fail(exc) from None
    plain = _plain(result)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(plain, indent=1) + "\n")
    for name, d in plain["detectors"].items():
        line = f"{name}: {d['n_flagged']} of {plain['n']} flagged"
        if "rates" in d:
            tpr, fpr = d["rates"]["tpr"], d["rates"]["fpr"]
            line += (f"; poisons caught {tpr['rate']:.1%} ({tpr['k']}/{tpr['n']}), clean "
                     f"flagged {fpr['rate']:.2%} ({fpr['k']}/{fpr['n']})")
        out.print(line)
    if remove is not None:
        out.print(f"cleaned set: {result['removed']['kept']} samples -> {remove}")


@manifest_app.command("create")
def manifest_create(
    manifest: Annotated[Path, typer.Option("--out", help="manifest file to write (.json)")],
    by: Annotated[str, typer.Option(help="who adds the samples (name or key id)")],
    data: Annotated[str, typer.Option(help="data set, FILE.npz|.pt or FOLDER")] = "mnist",
    split: Annotated[str, typer.Option(help="one or more splits, e.g. train,val,test")] =
        "train",
    source: Annotated[str | None, typer.Option(help="where the samples came from")] = None,
) -> None:
    """Write a manifest: per-sample SHA-256, label, source, time added, who added it."""
    from bastion.data import manifest as manifests

    try:
        x, y, _ = load_images(data, split)
        made = manifests.create(x, y, name=f"{data}/{split}", source=source or data,
                                added_by=by)
        made.save(manifest)
    except BastionError as exc:
        raise _fail(exc) from None
    out.print(f"{len(made)} samples -> {manifest} (digest {made.digest()})")


@manifest_app.command("verify")
def manifest_verify(
    manifest: Annotated[Path, typer.Option(help="manifest file")],
    data: Annotated[str, typer.Option(help="data set, FILE.npz|.pt or FOLDER")] = "mnist",
    split: Annotated[str, typer.Option()] = "train",
) -> None:
    """Check a data set against its manifest; exit 1 naming every changed sample."""
    from bastion.data import manifest as manifests

    try:
        found = manifests.verify(manifests.load(manifest), *load_images(data, split)[:2])
    except BastionError as exc:
        raise _fail(exc) from None
    (out if found.ok else err).print(("verified: " if found.ok else "MISMATCH: ") +
                                     found.summary(limit=50))
    if not found.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``data`` and ``poison`` command groups to ``app``."""
    from bastion.poison.scan_cli import scan_command

    poison_app.command("scan")(scan_command)
    app.add_typer(data_app, name="data")
    app.add_typer(poison_app, name="poison")
