"""``bastion evaluate --threats ...``: the threat matrix over several models, written as
JSON and as a card section.

Kept apart from the command line so it can be called (and tested) from Python.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bastion import data as data_registry
from bastion.common.records import new_run_id, versions
from bastion.common.state import model_digest
from bastion.jobs import EvalSpec, model_info
from bastion.threats.matrix import parse_threats, run_matrix
from bastion.zoo.user import load_any


def run_matrix_job(models: Sequence[str], threats: str, *, data: str = "mnist",
                   split: str = "test", n: int | None = 200, steps: int = 100,
                   targets: int = 9, angles: int = 13, seed: int = 0, batch_size: int = 250,
                   out: Path | None = None, json_path: Path | None = None,
                   command: str = "", log: Callable[[str], None] = print,
                   checkpoint: Path | None = None) -> dict[str, Any]:
    """Evaluate every model under every threat of ``threats`` (see
    :func:`bastion.threats.matrix.parse_threats`); returns the ``threat_matrix`` section.

    With ``out`` the card (``card.json``, ``card.html``) holds one entry per model (its
    evaluation under the first L-p threat) and the matrix; resume files go to
    ``out/state/``. ``checkpoint`` (a state_dict) is loaded into each FILE.py or
    package.module:callable model, as ``bastion evaluate --checkpoint`` does.
    """
    columns = parse_threats(threats)
    ds = data_registry.load(data, split, n)
    loaded = {name: load_any(name, checkpoint) for name in models}
    state_dir = out / "state" if out is not None else None
    section, evaluations = run_matrix(loaded, ds, columns, steps=steps, targets=targets,
                                      angles=angles, seed=seed, batch_size=batch_size,
                                      state_dir=state_dir, log=log)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(section, indent=2) + "\n")
    if out is not None and evaluations:
        from bastion.report import CardEntry, write_card

        entries = []
        for name, res in evaluations.items():
            info = model_info(EvalSpec(model=name), model_digest(loaded[name]))
            entries.append(CardEntry(model=info, evaluation=res.to_dict(), data={
                "name": ds.name, "split": ds.split, "n": len(ds), "source": ds.source}))
        run = {"run_id": new_run_id(), "seed": seed, "versions": versions(),
               "command": command}
        json_card, html_card = write_card(out, entries, run=run,
                                          extra={"threat_matrix": section})
        log(f"card written: {html_card.resolve()} (data: {json_card.resolve()})")
    elif out is not None:
        log("no L-p threat in --threats, so no card entries: the matrix is in --json only")
    return section
