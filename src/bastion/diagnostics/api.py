"""``bastion.diagnose``: is a robust accuracy real, or are the gradients masked?

Runs the checks of :mod:`bastion.diagnostics` on one model, data set and threat model and
returns a :class:`Diagnosis`. Checks run cheapest first; each gets its own generator
seeded from ``(seed, check number)`` and the global random state is forked and seeded,
so a seed gives the same numbers (a randomised model included) and the caller's random
state is left alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bastion.attacks.base import model_device
from bastion.attacks.square import Square
from bastion.data.base import Dataset
from bastion.diagnostics.curves import unbounded_eps
from bastion.diagnostics.result import masking_suspected
from bastion.diagnostics.run import DiagnosisRun
from bastion.errors import CapabilityError, ConfigError, ModelError
from bastion.evaluation.backoff import is_out_of_memory
from bastion.evaluation.checks import check_inputs, check_model, warn_if_training
from bastion.evaluation.runner import unit_seed
from bastion.threat import ThreatModel

#: the checks, in the order they run (cheapest first).
CHECKS = ("randomness", "gradient-health", "finite-differences", "security-curve",
          "iterative-vs-single-step", "convergence", "black-box", "transfer",
          "binarization-test")


@dataclass
class Diagnosis:
    """Result of :func:`diagnose`. Accuracies are fractions of all ``n`` samples.

    Attributes:
        checks: one dict per check, in run order: ``{"name", "verdict", "evidence",
            "advice", "seconds"}`` (:mod:`bastion.diagnostics.result`).
        curves: ``{"security": [{"eps", "robust_accuracy"}, ...], "loss": {"attack",
            "mean_best_loss": [...], "robust": [...]}}``, one loss value per step.
        passes: attack label -> ``{"forward", "backward"}`` per-sample passes.
        seconds: wall-clock time of the whole diagnosis.
    """

    n: int
    clean_accuracy: float
    threat: ThreatModel
    checks: list[dict[str, Any]]
    curves: dict[str, Any]
    params: dict[str, Any]
    passes: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def masking_suspected(self) -> bool:
        """True when any check failed."""
        return masking_suspected(self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"checks": self.checks, "masking_suspected": self.masking_suspected,
                "n": self.n, "clean_accuracy": self.clean_accuracy,
                "threat": self.threat.to_dict(), "curves": self.curves,
                "passes": self.passes, "params": self.params, "seconds": round(self.seconds, 3)}


def diagnose(model: nn.Module, data: Dataset | tuple[torch.Tensor, torch.Tensor],
             threat: ThreatModel, *, steps: int = 40, restarts: int = 1,
             square_queries: int = 1000, black_box_points: int = 100,
             surrogate: nn.Module | None = None, surrogate_name: str = "surrogate",
             seed: int = 0, log: Callable[[str], None] | None = None,
             on_check: Callable[[dict[str, Any]], None] | None = None) -> Diagnosis:
    """Diagnose gradient masking and weak attacks on ``model`` inside ``threat``.

    Args:
        model: returns logits (N, C) for inputs (N, ...) in ``threat.bounds``.
        data: a :class:`~bastion.data.Dataset` or ``(x, y)``; x (N, ...), y (N,).
        steps, restarts: the base PGD attack; convergence compares it with
            ``2 * steps`` steps and ``restarts + 1`` restarts.
        square_queries: Square's query budget per sample (black-box check).
        black_box_points: at most this many white-box-robust samples (a seeded pick)
            are attacked by Square, the slowest check.
        surrogate: a model on ``model``'s device for the transfer check (None: skipped).
        log: receives progress lines; ``on_check`` each check as it finishes.
    """
    x, y = (data.x, data.y) if isinstance(data, Dataset) else data
    _validate(threat, x, steps, restarts, square_queries, black_box_points)
    check_inputs(x, y, threat)
    was_training = warn_if_training(model)
    model.eval()
    device = model_device(model)
    if surrogate is not None and model_device(surrogate) != device:
        raise ConfigError(f"the surrogate is on {model_device(surrogate)} but the model on "
                          f"{device}; move it with surrogate.to(...)")
    params = {"steps": steps, "restarts": restarts, "strong_steps": 2 * steps,
              "strong_restarts": restarts + 1, "square_queries": square_queries,
              "black_box_points": black_box_points, "surrogate": surrogate_name
              if surrogate is not None else None, "seed": seed, "n": int(x.shape[0])}
    cuda = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(unit_seed(seed, -1))
            check_model(model, x, y)  # a randomised model draws from the forked state too
            run = DiagnosisRun(model, x.to(device), y.to(device=device, dtype=torch.long),
                               threat, params, seed, log or (lambda _line: None), on_check)
            run.all(surrogate, surrogate_name)
    except Exception as exc:  # only out-of-memory errors are reworded; others re-raised
        if not is_out_of_memory(exc):
            raise
        raise _out_of_memory(exc, int(x.shape[0])) from exc
    finally:
        if was_training:
            model.train()
    return Diagnosis(n=run.n, clean_accuracy=run.clean, threat=threat, checks=run.checks,
                     curves=run.curves, params=params, passes=run.passes,
                     seconds=time.perf_counter() - run.began)


def _out_of_memory(exc: BaseException, n: int) -> ModelError:
    # No batch back-off here: each check draws its random points and directions for all
    # its samples at once, so splitting them would change the numbers; a smaller n does.
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return ModelError(f"out of device memory while diagnosing {n} samples ({first}); "
                      "diagnose runs each check on all its samples in one batch: rerun "
                      f"with fewer samples (--n {max(1, n // 2)}) or on a device with "
                      "more memory (--device cpu)")


def _validate(threat: ThreatModel, x: torch.Tensor, steps: int, restarts: int,
              queries: int, points: int) -> None:
    for name, value in (("steps", steps), ("restarts", restarts),
                        ("square_queries", queries), ("black_box_points", points)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    if threat.norm not in Square.norms:
        raise CapabilityError(
            f"diagnose runs Square for its black-box check, and Square supports "
            f"{Square.norms}, not {threat.norm}; diagnose the model under Linf or L2, and "
            "evaluate L1 robustness with apgd:eps_schedule=true or autoattack")
    if threat.eps <= 0:
        raise ConfigError("eps must be > 0 to diagnose an attack; pass the radius you "
                          "evaluate at, e.g. eps=0.3 for MNIST under Linf")
    if isinstance(x, torch.Tensor) and x.dim() >= 2:
        top = unbounded_eps(threat, x[0].numel())
        if threat.eps > top:
            raise ConfigError(f"eps={threat.eps} is beyond {top:g}, where the ball already "
                              "covers the whole input box; pick a smaller eps")
