"""``bastion privacy``: model extraction and membership inference, JSON out.

    bastion privacy extract --model mnist-smallcnn-std --pool mnist:val \
        --budgets 500,2000,5000 --defense label-only --json extract.json
    bastion privacy extract --attack jacobian --seed-size 150 --budgets 1000,5000
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
from bastion.inputs import DeviceOpt

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


def _images(spec: str, n: int) -> Any:
    """(n, C, H, W) images from ``DATASET[:SPLIT]`` specs joined by ``+``, in that order
    (a mixed pool: ``mnist:val+fashion-mnist:train``)."""
    import torch

    from bastion import data

    parts, left = [], n
    for one in spec.split("+"):
        if left <= 0:
            break
        got = data.load(*_split(one.strip())).x[:left]
        parts.append(got)
        left -= len(got)
    return torch.cat(parts)


def _oracle(model: str, checkpoint: Path | None, defense: str, url: str | None,
            api_key: str | None, device: Any) -> Any:
    """The victim: ``model`` on ``device`` behind ``defense``, or the server at ``url``."""
    from bastion.privacy.defenses import build_defense
    from bastion.zoo.user import load_any

    if url is None:
        return build_defense(defense, load_any(model, checkpoint).to(device))
    if not api_key:
        raise ConfigError("--url needs --api-key (a key of the server: bastion keys create)")
    from bastion.privacy.remote import RemoteClassifier

    return RemoteClassifier(url, api_key)


@privacy_app.command("extract")
def extract_command(
    model: Annotated[str, typer.Option(help="victim: zoo name, or FILE.py[:factory]")]
        = "mnist-smallcnn-std",
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", "--weights", help="state_dict file loaded into a FILE.py or "
                                          "package.module:callable victim")] = None,
    attack: Annotated[str, typer.Option(help="knockoff or jacobian")] = "knockoff",
    strategy: Annotated[str, typer.Option(help="knockoff: random or adaptive")] = "random",
    seed_size: Annotated[int, typer.Option(help="jacobian: seed images")] = 150,
    pool: Annotated[str, typer.Option(
        help="attacker's images (knockoff pool, jacobian seeds), DATASET[:SPLIT][+...]")]
        = "mnist:val",
    test: Annotated[str, typer.Option(help="held-out images, DATASET[:SPLIT]")] = "mnist:test",
    n_test: Annotated[int, typer.Option(help="test images")] = 2000,
    budgets: Annotated[str, typer.Option(help="comma-separated query budgets")]
        = "500,2000,5000",
    defense: Annotated[str, typer.Option(help="output defence on the victim")] = "none",
    label_only: Annotated[bool, typer.Option(
        help="train on the arg-max only (implied by --defense label-only)")] = False,
    url: Annotated[str | None, typer.Option(help="attack bastion serve-model at this URL "
                                                 "instead of a local --model")] = None,
    api_key: Annotated[str | None, typer.Option(help="client key for --url")] = None,
    arch: Annotated[str, typer.Option(help="the copy's zoo architecture")] = "wong-small",
    steps: Annotated[int, typer.Option(help="training steps per copy (batch 64)")] = 600,
    augment: Annotated[float, typer.Option(help="copy training jitter, pixels (0: off)")]
        = 0.0,
    transfer: Annotated[int, typer.Option(help="test images for the transfer of PGD "
                                               "examples made on the copy (0: skip)")] = 500,
    seed: Annotated[int, typer.Option()] = 0,
    state: Annotated[Path | None, typer.Option(help="resume file")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write JSON here")] = None,
    progress: Annotated[bool, typer.Option(help="progress lines on stderr")] = True,
    device: DeviceOpt = "cpu",
) -> None:
    """Copy a victim from its answers to an attacker's queries; fidelity, accuracy and
    transfer of adversarial examples per query budget."""
    def job(log: Callable[[str], None]) -> dict[str, Any]:
        from bastion import data
        from bastion.jobs import parse_device
        from bastion.privacy.defenses import is_label_only
        from bastion.privacy.extraction import steal
        from bastion.privacy.stealing import make_extraction

        where = parse_device(device)  # the victim (unless remote) and the copies
        sizes = _budgets(budgets)
        params: dict[str, Any] = ({"seed_size": seed_size} if attack == "jacobian"
                                  else {"strategy": strategy})
        thief = make_extraction(attack, **params)
        oracle = _oracle(model, checkpoint, defense, url, api_key, where)
        n_images = seed_size if attack == "jacobian" else max(sizes)
        images = _images(pool, n_images)
        held = data.load(*_split(test), n_test)
        only = label_only or is_label_only(defense)
        res = steal(thief, oracle, images, held.x, held.y, budgets=sizes, label_only=only,
                    arch=arch, steps=steps, augment=augment, transfer=transfer, seed=seed,
                    state=state, device=where, log=log)
        return {"model": url or model, "defense": defense, "pool": pool, "arch": arch,
                "attack": attack, "attack_params": thief.get_params(), "label_only": only,
                "defended_accuracy": res.victim_accuracy, "defended_ece": res.victim_ece,
                **res.to_dict()}

    _guarded(job, json_path, state, progress)


def register(app: typer.Typer) -> None:
    """Add the ``privacy`` command group to ``app``."""
    import bastion.privacy.mi_cli  # noqa: F401  (adds audit, dp-audit, invert, card)

    app.add_typer(privacy_app, name="privacy")
