"""A cheap look at the model before trusting attack numbers: two forwards, one backward.

On a seeded sample of at most :data:`PROBE_SIZE` inputs the probe runs the model twice
(once with gradients, once without) and back-propagates the cross-entropy once. From
those passes it measures what :mod:`bastion.evaluation.flags` judges: do the outputs
look like log-probabilities or saturated logits, do two identical forwards disagree
(a randomised model), and how many correctly classified points get an all-zero or
non-finite input gradient (gradient masking).
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bastion.attacks.base import model_device
from bastion.evaluation.backoff import is_out_of_memory

#: Inputs the probe looks at: enough for shares to mean something, cheap next to attacks.
PROBE_SIZE = 256
#: |logsumexp(row)| below this means the row is (numerically) log-probabilities.
LOGPROB_TOL = 1e-3


def probe_seed(seed: int) -> int:
    """The probe's own seed, apart from every unit's (whose seeds are int tuples)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:probe".encode()).digest()[:8], "big") >> 1


def probe_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, seed: int,
                size: int = PROBE_SIZE, batch_size: int | None = None) -> dict[str, Any]:
    """Measure the model on a seeded sample of ``x`` (N, ...) with labels ``y`` (N,),
    passing at most ``batch_size`` inputs at a time (None: all at once).

    The model should be in eval mode. The global random state is forked and seeded, so
    a randomised model gives the same probe for the same seed, and the caller's random
    state is left as it was.

    Returns:
        JSON-ready numbers: ``n`` (samples probed), ``correct`` (classified right),
        ``logprob_rows`` (rows with |logsumexp| < 1e-3 and no positive output),
        ``ce_zero`` (correct rows whose float cross-entropy is exactly 0),
        ``max_logit_diff`` / ``logit_scale`` (largest |difference| between the two
        forwards / largest |logit|), ``pred_flips`` (rows whose argmax differs),
        ``zero_grad`` / ``nonfinite_grad`` (correct rows with an all-zero / non-finite
        input gradient), ``grad_error`` (why no gradient could be taken, or ""),
        and ``passes`` ({"forward": 2n, "backward": n}). No timing: the probe takes
        a fraction of a second and the numbers must be reproducible to compare runs.
    """
    device = model_device(model)
    gen = torch.Generator().manual_seed(probe_seed(seed))
    pick = torch.randperm(x.shape[0], generator=gen)[:size].sort().values
    xs, ys = x[pick].to(device), y[pick].to(device=device, dtype=torch.long)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(probe_seed(seed))
        step = batch_size or max(1, xs.shape[0])
        parts = [_forward_backward(model, xs[i:i + step], ys[i:i + step])
                 for i in range(0, xs.shape[0], step)]
        first = torch.cat([p[0] for p in parts])
        grad = torch.cat([p[1] for p in parts])
        grad_error = next((p[2] for p in parts if p[2]), "")
        with torch.no_grad():
            second = torch.cat([model(xs[i:i + step]) for i in range(0, xs.shape[0], step)])
    n = int(xs.shape[0])
    correct = first.argmax(1) == ys
    ce = F.cross_entropy(first, ys, reduction="none")
    lse = first.logsumexp(1)
    logprob = (lse.abs() < LOGPROB_TOL) & (first <= LOGPROB_TOL).all(1)
    flat = grad.flatten(1)
    return {
        "n": n,
        "correct": int(correct.sum()),
        "logprob_rows": int(logprob.sum()),
        "ce_zero": int((correct & (ce == 0)).sum()),
        "max_logit_diff": float((first - second).abs().max()),
        "logit_scale": float(first.abs().max()),
        "pred_flips": int((first.argmax(1) != second.argmax(1)).sum()),
        "zero_grad": int((correct & (flat == 0).all(1)).sum()),
        "nonfinite_grad": int((correct & ~torch.isfinite(flat).all(1)).sum()),
        "grad_error": grad_error,
        "passes": {"forward": 2 * n, "backward": n},
    }


_DETACHED = ("the output does not depend on the input through autograd (detached or "
             "computed without gradients)")


def _forward_backward(model: nn.Module, x: torch.Tensor,
                      y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Logits (N, C), the input gradient of the summed cross-entropy (shaped like x) and
    why it is missing, if it is: a model that detaches or leaves autograd has none, and
    that is exactly what the probe looks for, so it counts as an all-zero gradient."""
    xg = x.clone().requires_grad_(True)
    with torch.enable_grad():
        logits = model(xg)
        if not logits.requires_grad:
            return logits.detach(), torch.zeros_like(x), _DETACHED
        loss = F.cross_entropy(logits, y, reduction="sum")
        try:
            (grad,) = torch.autograd.grad(loss, xg, allow_unused=True)
        except RuntimeError as exc:  # e.g. a non-differentiable op in the graph
            if is_out_of_memory(exc):
                raise  # not the model's doing: the batch-size back-off handles it
            return logits.detach(), torch.zeros_like(x), f"backward failed: {exc}"
    if grad is None:
        return logits.detach(), torch.zeros_like(x), "the loss does not depend on the input"
    return logits.detach(), grad.detach(), ""
