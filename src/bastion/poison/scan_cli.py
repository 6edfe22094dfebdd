"""``bastion poison scan``: Neural Cleanse, STRIP and known-trigger attack success over
one model, written to ``OUT/scan.json`` and a card with a ``training_integrity``
section. Neural Cleanse saves each finished class to ``OUT/cleanse_state.json``, so an
interrupted scan resumes where it stopped."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.console import Console

from bastion.errors import BastionError
from bastion.inputs import DeviceOpt

err = Console(stderr=True)


def scan(net: torch.nn.Module, *, data: str, n: int, trigger: str | None, out: Path,
         strip_only: bool = False, progress: bool = True,
         reference: torch.nn.Module | None = None) -> dict[str, Any]:
    """Scan ``net`` with Neural Cleanse (on ``n`` val images; with ``reference``, its
    reversed triggers also stamped on the next ``n`` and fed to that clean model) and STRIP
    (fitted on the last ``max(2n, 5000)`` val images, measured on ``n`` test images, clean
    and with ``trigger``)."""
    from bastion import data as registry
    from bastion.poison.cleanse import NeuralCleanse
    from bastion.poison.metrics import rate
    from bastion.poison.registry import parse_poison
    from bastion.poison.strip import Strip
    from bastion.train.integrity import attack_success

    val, test = registry.load(data, "val"), registry.load(data, "test", n)
    result: dict[str, Any] = {"n": n}
    if not strip_only:
        nc = NeuralCleanse().scan(net, val.x[:n], num_classes=len(val.classes),
                                  state=out / "cleanse_state.json", progress=progress)
        result["neural_cleanse"] = {k: v for k, v in nc.items() if k != "triggers"}
        if reference is not None:
            result["neural_cleanse"].update(against_reference(nc, reference, val.x, n))
    # at least 2,500 held-out entropies: the threshold keeps its FPR bound with margin
    strip = Strip().fit(net, val.x[-max(2 * n, 5000):])
    clean = strip.flag(net, test.x)
    result["strip"] = {"threshold": strip.threshold, "fpr": rate(int(clean.sum()), len(clean))}
    if trigger:
        attack = parse_poison(trigger)
        keep = test.y != attack.target
        hit = strip.flag(net, attack.apply_trigger(test.x[keep]))
        result["strip"]["tpr"] = rate(int(hit.sum()), len(hit))
        result["attack_success"] = attack_success(net, trigger, test.x, test.y)
    return result


def against_reference(nc: dict[str, Any], reference: torch.nn.Module, val: torch.Tensor,
                      n: int) -> dict[str, Any]:
    """The reference check of a Neural Cleanse result ``nc`` on val images ``val`` (N, C,
    H, W): a class is flagged when the index rule or the reference rule flags it."""
    from bastion.poison.reference import ReferenceCheck

    # images the triggers were not reversed on, where the split has them
    held = val[n:2 * n] if len(val) >= 2 * n else val[:n]
    found = ReferenceCheck().check(nc, reference, held)
    flagged = sorted(set(nc["flagged"]) | set(found["flagged"]))
    return {"reference": found, "index_flagged": nc["flagged"], "flagged": flagged,
            "backdoored": bool(flagged)}


def scan_command(
    out: Annotated[Path, typer.Option(help="folder for scan.json, the card and the resume "
                                           "state")],
    model: Annotated[str, typer.Option(help="zoo name or FILE.py")] = "mnist-badnets",
    checkpoint: Annotated[Path | None, typer.Option(help="state_dict for FILE.py or --arch")]
        = None,
    arch: Annotated[str | None, typer.Option(help="zoo architecture of --checkpoint")] = None,
    device: DeviceOpt = "cpu",
    data: Annotated[str, typer.Option(help="data set with val and test splits")] = "mnist",
    n: Annotated[int, typer.Option(help="images for each step")] = 1000,
    trigger: Annotated[str | None, typer.Option(
        help="a known trigger to test, e.g. badnets:target=0")] = None,
    strip_only: Annotated[bool, typer.Option("--strip-only", help="skip Neural Cleanse")] =
        False,
    reference: Annotated[str | None, typer.Option(
        help="a clean, standard-trained model of the same architecture (zoo name or FILE.py):"
             " Neural Cleanse also flags a small-mask class whose trigger does not carry "
             "over to it")] = None,
    reference_checkpoint: Annotated[Path | None, typer.Option(
        help="state_dict for --reference FILE.py or --reference-arch")] = None,
    reference_arch: Annotated[str | None, typer.Option(
        help="zoo architecture of --reference-checkpoint")] = None,
    progress: Annotated[bool, typer.Option()] = True,
) -> None:
    """Is this model backdoored? Neural Cleanse, STRIP and known-trigger attack success."""
    from bastion.attacks.fgsm import FGSM
    from bastion.common.records import new_run_id, versions
    from bastion.common.state import model_digest
    from bastion.data import load
    from bastion.evaluation.runner import evaluate
    from bastion.poison.cli import load_model
    from bastion.report import CardEntry, write_card
    from bastion.report.integrity import training_integrity
    from bastion.threat import ThreatModel

    command = "bastion " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        net = load_model(model, checkpoint, arch, device)
        ref = None if reference is None and reference_arch is None else load_model(
            reference or "", reference_checkpoint, reference_arch, device)
        result = scan(net, data=data, n=n, trigger=trigger, out=out, strip_only=strip_only,
                      progress=progress, reference=ref)
        test = load(data, "test", n)
        evaluation = evaluate(net, test, ThreatModel("Linf", 0.1), {"fgsm": FGSM()})
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted[/]; rerun the same command to resume from {out}")
        raise typer.Exit(130) from None
    except BastionError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    result["command"] = command
    out.mkdir(parents=True, exist_ok=True)
    (out / "scan.json").write_text(json.dumps(result, indent=1) + "\n")
    section = training_integrity(neural_cleanse=result.get("neural_cleanse"),
                                 strip=result["strip"],
                                 attack_success=result.get("attack_success"))
    entry = CardEntry(model={"name": model, "kind": "file" if checkpoint else "bundled",
                             "description": "scanned for backdoors by bastion poison scan",
                             "digest": model_digest(net)},
                      data={"name": data, "split": "test", "n": n, "source": test.source},
                      evaluation=evaluation.to_dict(),
                      sections={"training_integrity": section})
    write_card(out, [entry], run={"run_id": new_run_id(), "seed": 0, "versions": versions(),
                                  "command": command})
    nc = result.get("neural_cleanse")
    if nc is not None:
        verdict = f"BACKDOORED class {nc['flagged']}" if nc["backdoored"] else "no backdoor"
        err.print(f"Neural Cleanse: {verdict} (max anomaly index "
                  f"{max(nc['anomaly_index']):.2f}, threshold {nc['threshold']})")
        if "reference" in nc:
            low = min(range(len(nc["l1"])), key=nc["l1"].__getitem__)
            err.print(f"  against {reference or reference_arch}: smallest mask class {low} "
                      f"moves {nc['reference']['transfer'][low]:.0%} of its images")
    s = result["strip"]
    err.print(f"STRIP: clean flagged {s['fpr']['rate']:.1%}" + (
        f", triggered flagged {s['tpr']['rate']:.1%}" if "tpr" in s else ""))
