"""The robustness-accuracy trade-off: one model per TRADES/MART beta and per other
method, then a table, a plot and a card.

Each setting trains in its own subfolder (``DIR/beta-6`` for the beta sweep,
``DIR/method-pgd`` for a compared method), so an interrupted sweep resumes where it
stopped: finished settings only re-run their final evaluation. Writes
``DIR/sweep.json`` (shape below), ``DIR/sweep.png`` (test clean accuracy against PGD
robust accuracy, one labelled point per setting, one marker per method) and
``DIR/card.json`` + ``card.html``: one entry per model (its test evaluation) and the
table as the card's ``tradeoff`` section, drawn at the top of the page::

    {"kind": "bastion.train_sweep", "schema_version": 1, "method": "trades",
     "parameter": "beta", "threat": {"norm": "Linf", "eps": 0.3, "bounds": [0, 1]},
     "test_attack": "pgd-40", "test_n": 1000, "command": "...",
     "points": [{"method": "trades", "beta": 0.5, "label": "trades β=0.5",
                 "dir": "beta-0.5", "clean_accuracy": 0.99, "robust_accuracy": 0.90,
                 "val_clean_accuracy": 0.99, "val_robust_accuracy": 0.91,
                 "best_epoch": 9}, ...]}

``beta`` is null for methods without one. Accuracies are fractions of the first
``test_n`` test images.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bastion.errors import ConfigError
from bastion.threat import ThreatModel
from bastion.train.config import TrainConfig
from bastion.train.dist import join, leave
from bastion.train.losses import METHODS
from bastion.train.trainer import train

#: Methods whose loss has a beta.
BETA_METHODS = ("trades", "mart")


def settings(cfg: TrainConfig, betas: Sequence[float],
             compare: Sequence[str]) -> list[tuple[TrainConfig, str, str]]:
    """(config, folder, label) per model to train: ``cfg.method`` at each beta, then
    each method of ``compare`` with ``cfg``'s other settings (its own default beta)."""
    if betas and cfg.method not in BETA_METHODS:
        raise ConfigError(f"a beta sweep needs --method trades or mart, not {cfg.method!r}")
    if any(b < 0 for b in betas) or len(set(betas)) != len(betas):
        raise ConfigError(f"give distinct betas >= 0, got {list(betas)}")
    unknown = [m for m in compare if m not in METHODS]
    if unknown or len(set(compare)) != len(compare):
        raise ConfigError(f"--compare takes distinct methods from {', '.join(METHODS)}; got "
                          f"{list(compare)}")
    if not betas and not compare:
        raise ConfigError("a sweep needs --sweep-beta values, --compare methods, or both")
    out = [(replace(cfg, beta=float(b), out_name=f"{cfg.method}-beta-{b:g}"), f"beta-{b:g}",
            f"{cfg.method} β={b:g}") for b in betas]
    default_beta = TrainConfig().beta
    for method in compare:
        beta = cfg.beta if method == cfg.method else default_beta
        label = f"{method} β={beta:g}" if method in BETA_METHODS else method
        out.append((replace(cfg, method=method, beta=beta, out_name=f"{method}-compare"),
                    f"method-{method}", label))
    return out


def run_sweep(cfg: TrainConfig, betas: Sequence[float], out: Path, *, command: str = "",
              log: Callable[[str], None] = print,
              compare: Sequence[str] = ()) -> dict[str, Any] | None:
    """Train every setting of :func:`settings` into ``out``; write sweep.json, sweep.png
    and the card. Returns the table on rank 0, None on other torchrun ranks."""
    todo = settings(cfg, betas, compare)
    world = join(cfg.device)
    try:
        points: list[dict[str, Any]] = []
        test_n = 0
        for setting, folder, label in todo:
            log(f"sweep: {label} -> {out / folder}")
            summary = train(setting, out / folder, command=command, log=log)
            if summary is None:
                continue
            test_n = int(summary["test_n"])
            history = summary["training"]["history"]
            best = history[summary["training"]["best_epoch"]]
            points.append({"method": setting.method,
                           "beta": setting.beta if setting.method in BETA_METHODS else None,
                           "label": label, "dir": folder,
                           "clean_accuracy": summary["clean_test_accuracy"],
                           "robust_accuracy": summary["robust_test_accuracy"],
                           "val_clean_accuracy": best["clean_accuracy"],
                           "val_robust_accuracy": best["robust_accuracy"],
                           "best_epoch": summary["training"]["best_epoch"]})
    except BaseException:
        leave(world, wait=False)
        raise
    leave(world)
    if not world.main:
        return None
    table = {"kind": "bastion.train_sweep", "schema_version": 1, "method": cfg.method,
             "parameter": "beta", "threat": ThreatModel(cfg.norm, cfg.eps).to_dict(),
             "test_attack": f"pgd-{cfg.eval_steps}", "test_n": test_n,
             "command": command, "points": points}
    (out / "sweep.json").write_text(json.dumps(table, indent=2) + "\n")
    from bastion.report.plots import tradeoff_plot

    (out / "sweep.png").write_bytes(tradeoff_plot(table))
    _write_card(out, table, seed=cfg.seed, command=command)
    log(f"sweep: {len(points)} models; card: {out / 'card.html'}")
    return table


def _write_card(out: Path, table: dict[str, Any], *, seed: int, command: str) -> None:
    """One entry per model, taken from the card each run wrote; the table on top."""
    from bastion.common.records import new_run_id, versions
    from bastion.report import CardEntry, write_card

    entries = []
    for point in table["points"]:
        own = json.loads((out / point["dir"] / "card.json").read_text())["entries"][0]
        model = {**own["model"], "name": point["label"]}
        entries.append(CardEntry(model=model, data=own["data"], evaluation=own["evaluation"],
                                 sections={k: v for k, v in own.items()
                                           if k not in ("model", "data", "evaluation")}))
    run = {"run_id": new_run_id(), "seed": seed, "versions": versions(), "command": command}
    write_card(out, entries, run=run, extra={"tradeoff": table})


