"""What a finished run leaves in its folder: weights, their metadata, and the card.

- ``best.pt``: ``state_dict`` of the best validation epoch, in the format the zoo loads
  (``zoo.build(arch, **arch_kwargs).load_state_dict(torch.load(..., weights_only=True))``,
  or ``bastion evaluate --model FILE.py --checkpoint best.pt``).
- ``last.pt``: the final weights.
- ``best.json``: how they were made (config, command, epochs, scores, versions).
- ``card.json`` / ``card.html``: the final evaluation of ``best.pt`` on the test split.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bastion import data as data_registry
from bastion.attacks.pgd import PGD
from bastion.common.records import RecordWriter, versions
from bastion.common.state import model_digest
from bastion.evaluation.runner import evaluate
from bastion.threat import ThreatModel
from bastion.train.config import TrainConfig
from bastion.train.data import eval_data
from bastion.train.integrity import measure
from bastion.train.monitor import Monitor
from bastion.zoo.registry import build


def save_weights(model: nn.Module, path: Path) -> None:
    """Save ``model.state_dict()`` atomically (aside, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, path)


def finish(cfg: TrainConfig, out: Path, model: nn.Module, monitor: Monitor,
           record: RecordWriter, *, run_id: str, command: str, arch_kwargs: dict[str, Any],
           dp_epsilon: float | None, seconds: float, log: Callable[[str], None],
           integrity: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate ``best.pt`` on the test split, write best.json, the card and a final
    record line; return the summary written to best.json."""
    from bastion.report import CardEntry, write_card

    save_weights(model, out / "last.pt")
    if not (out / "best.pt").exists():  # no validation ran (cannot happen with epochs >= 1)
        save_weights(model, out / "best.pt")
    best = build(cfg.model, **arch_kwargs)
    best.load_state_dict(torch.load(out / "best.pt", map_location="cpu", weights_only=True))
    best.eval()
    full_test = data_registry.load(eval_data(cfg.data), "test")
    test = full_test.head(min(cfg.eval_n, len(full_test)))
    threat = ThreatModel(cfg.norm, cfg.eps)
    result = evaluate(best, test, threat, {f"pgd-{cfg.eval_steps}": PGD(steps=cfg.eval_steps)},
                      seed=cfg.seed)
    name = cfg.out_name or f"{cfg.data}-{cfg.model}-{cfg.method}"
    training = {
        "method": cfg.method, "config": cfg.to_dict(), "best_epoch": monitor.best_epoch,
        "selected_by": f"validation {monitor.by}", "history": monitor.history,
        "stopped_early": any(h["catastrophic_overfitting"] for h in monitor.history),
        "dp": ({"epsilon": dp_epsilon, "delta": cfg.dp_delta,
                "noise_multiplier": cfg.dp_noise_multiplier,
                "max_grad_norm": cfg.dp_max_grad_norm} if cfg.dp else None),
    }
    summary: dict[str, Any] = {
        "name": name, "arch": cfg.model, "arch_kwargs": arch_kwargs, "command": command,
        "train_seconds": round(seconds, 1), "clean_test_accuracy": result.clean_accuracy,
        "robust_test_accuracy": result.robust_accuracy, "test_n": result.n,
        "test_attack": f"pgd-{cfg.eval_steps}", "training": training,
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads",
        "versions": versions(), "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    sections: dict[str, Any] = {"training": training}
    if integrity is not None and (integrity["poison"] or integrity["manifest"]):
        summary["training_integrity"] = sections["training_integrity"] = measure(
            cfg, best, integrity, full_test.x, full_test.y)
    (out / "best.json").write_text(json.dumps(summary, indent=2) + "\n")
    entry = CardEntry(
        model={"name": name, "kind": "file", "digest": model_digest(best),
               "description": f"{cfg.model} trained by 'bastion train --method {cfg.method}' "
                              f"(best validation epoch {monitor.best_epoch + 1})"},
        data={"name": test.name, "split": test.split, "n": len(test), "source": test.source},
        evaluation=result.to_dict(), sections=sections)
    run = {"run_id": run_id, "seed": cfg.seed, "versions": versions(), "command": command}
    _, html = write_card(out, [entry], run=run)
    record.write("final", clean_test_accuracy=result.clean_accuracy,
                 robust_test_accuracy=result.robust_accuracy, best_epoch=monitor.best_epoch,
                 dp_epsilon=dp_epsilon, dp_delta=cfg.dp_delta if cfg.dp else None)
    log(f"best epoch {monitor.best_epoch + 1}: test clean {result.clean_accuracy:.1%}, "
        f"robust {result.robust_accuracy:.1%} (pgd-{cfg.eval_steps}, n={result.n}); card: "
        f"{html}")
    hit = sections.get("training_integrity", {}).get("attack_success")
    if hit:
        log(f"attack success of {hit['trigger']}: {hit['rate']:.2%} ({hit['success']}/"
            f"{hit['n']} triggered test images sent to the target)")
    return summary
