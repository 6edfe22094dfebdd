"""The robustness-accuracy trade-off: one model per TRADES/MART beta, then a table and a plot.

Each setting trains in its own subfolder (``DIR/beta-6``), so an interrupted sweep
resumes where it stopped: finished settings only re-run their final evaluation.
Writes ``DIR/sweep.json`` (shape below) and ``DIR/sweep.png`` (test clean accuracy
against PGD robust accuracy, one labelled point per beta)::

    {"kind": "bastion.train_sweep", "schema_version": 1, "method": "trades",
     "parameter": "beta", "threat": {"norm": "Linf", "eps": 0.3, "bounds": [0, 1]},
     "test_attack": "pgd-40", "test_n": 1000, "command": "...",
     "points": [{"beta": 0.5, "dir": "beta-0.5", "clean_accuracy": 0.99,
                 "robust_accuracy": 0.90, "val_clean_accuracy": 0.99,
                 "val_robust_accuracy": 0.91, "best_epoch": 9}, ...]}

Accuracies are fractions of the first ``test_n`` test images.
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
from bastion.train.trainer import train


def run_sweep(cfg: TrainConfig, betas: Sequence[float], out: Path, *, command: str = "",
              log: Callable[[str], None] = print) -> dict[str, Any] | None:
    """Train ``cfg`` once per beta into ``out/beta-B``; write sweep.json and sweep.png.

    Returns the table on rank 0, None on other torchrun ranks.
    """
    if cfg.method not in ("trades", "mart"):
        raise ConfigError(f"a beta sweep needs --method trades or mart, not {cfg.method!r}")
    if not betas or any(b < 0 for b in betas) or len(set(betas)) != len(betas):
        raise ConfigError(f"give distinct betas >= 0, got {list(betas)}")
    world = join(cfg.device)
    try:
        points: list[dict[str, Any]] = []
        test_n = 0
        for beta in betas:
            folder = f"beta-{beta:g}"
            log(f"sweep: {cfg.method} beta={beta:g} -> {out / folder}")
            summary = train(replace(cfg, beta=float(beta), out_name=f"{cfg.method}-{folder}"),
                            out / folder, command=command, log=log)
            if summary is None:
                continue
            test_n = int(summary["test_n"])
            history = summary["training"]["history"]
            best = history[summary["training"]["best_epoch"]]
            points.append({"beta": float(beta), "dir": folder,
                           "clean_accuracy": summary["clean_test_accuracy"],
                           "robust_accuracy": summary["robust_test_accuracy"],
                           "val_clean_accuracy": best["clean_accuracy"],
                           "val_robust_accuracy": best["robust_accuracy"],
                           "best_epoch": summary["training"]["best_epoch"]})
    finally:
        leave(world)
    if not world.main:
        return None
    table = {"kind": "bastion.train_sweep", "schema_version": 1, "method": cfg.method,
             "parameter": "beta", "threat": ThreatModel(cfg.norm, cfg.eps).to_dict(),
             "test_attack": f"pgd-{cfg.eval_steps}", "test_n": test_n,
             "command": command, "points": points}
    (out / "sweep.json").write_text(json.dumps(table, indent=2) + "\n")
    plot(table, out / "sweep.png")
    return table


def plot(table: dict[str, Any], path: Path) -> None:
    """Clean (x) against robust (y) test accuracy, one point per beta, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    pts = sorted(table["points"], key=lambda p: p["beta"])
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    xs = [100 * p["clean_accuracy"] for p in pts]
    ys = [100 * p["robust_accuracy"] for p in pts]
    ax.plot(xs, ys, "o-", color="tab:blue")
    for p, x, y in zip(pts, xs, ys, strict=True):
        ax.annotate(f"β={p['beta']:g}", (x, y), textcoords="offset points", xytext=(5, 5))
    t = table["threat"]
    ax.set_xlabel(f"clean test accuracy (%), n={table['test_n']}")
    ax.set_ylabel(f"robust accuracy (%), {table['test_attack']} {t['norm']} eps={t['eps']:g}")
    ax.set_title(f"{table['method']}: robustness vs accuracy")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
