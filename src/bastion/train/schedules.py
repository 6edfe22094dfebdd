"""Schedules of the perturbation radius and the learning rate, as functions of the step.

Both are pure functions of (epoch, batch) or of the global optimiser step, so a run
resumed from a checkpoint continues on exactly the same curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

LR_SCHEDULES = ("constant", "piecewise", "onecycle")


def eps_at(eps: float, ramp_epochs: float, epoch: int, batch: int, batches: int) -> float:
    """Training radius at batch ``batch`` (0-based) of ``epoch``: linear from 0 to ``eps``
    over the first ``ramp_epochs`` epochs, then ``eps``. A warm-up keeps MNIST training at
    eps=0.3 from stalling at chance accuracy early (Madry et al. train at full eps from
    the start, at the cost of many more epochs)."""
    if ramp_epochs <= 0:
        return eps
    progress = (epoch + (batch + 1) / batches) / ramp_epochs
    return eps * min(1.0, progress)


def lr_factor(schedule: str, step: int, total: int, milestones: Sequence[float]) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` of ``total``.

    - ``constant``: 1.
    - ``piecewise``: divided by 10 at each milestone, a fraction of ``total`` (Madry et
      al.'s and Rice et al.'s step decay; ``0.5, 0.75`` is the usual choice).
    - ``onecycle``: linear warm-up from 0 to 1 over the first 40% of steps, then linear
      decay to 0 (the cyclic schedule Wong et al. use for FGSM-RS).
    """
    if schedule == "constant":
        return 1.0
    if schedule == "piecewise":
        passed = sum(1 for m in milestones if step >= math.floor(m * total + 1e-6))
        return float(0.1 ** passed)
    peak = 0.4 * total
    t = step + 1
    if t <= peak:
        return t / peak
    return max(0.0, (total - t) / (total - peak))
