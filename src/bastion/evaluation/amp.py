"""Mixed precision for attacks, trusted only after a check that it does not weaken them.

With ``amp=True`` the attacks see the model under ``torch.autocast`` (bfloat16 on the CPU,
float16 on a GPU): faster on GPUs with tensor cores, but lower precision can blunt the
gradients an attack follows. Before any attack runs, :func:`check_amp` compares, on a
probe set of the first ``PROBE`` samples:

- the logits in float32 and under autocast (largest absolute difference, and how often
  the predicted class agrees);
- the robust accuracy under a short PGD run against each (successes verified on the
  float32 model in both cases).

Mixed precision is used only if the predictions agree on at least ``MIN_AGREEMENT`` of
the probe and the autocast PGD leaves at most ``TOLERANCE`` (or one sample, if more) more
of the probe robust than the float32 PGD; otherwise the evaluation falls back to float32
and says so in its ``params.amp`` and a flag on the card. Clean accuracy and every
success check always use the float32 model, so mixed precision can only make attacks
weaker, never invent breaks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bastion.attacks.base import is_success, model_device
from bastion.attacks.pgd import PGD
from bastion.threat import ThreatModel

#: probe samples the check uses.
PROBE = 64
#: the autocast PGD may leave at most this fraction of the probe more robust than fp32 PGD
#: (1 of 64 samples). A 64-sample probe cannot see a weakening of a few points: it
#: catches gross failures, and docs/devices.md says what a full run measured.
TOLERANCE = 0.02
#: the predicted class must agree on at least this fraction of the probe.
MIN_AGREEMENT = 0.99
#: the short attack of the check.
CHECK_STEPS = 10


def amp_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on the CPU (what its autocast supports), float16 on CUDA and MPS."""
    return torch.bfloat16 if device.type == "cpu" else torch.float16


class Autocast(nn.Module):
    """``model`` run under ``torch.autocast``; logits come back in float32 (N, C)."""

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model, self.dtype = model, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, dtype=self.dtype):
            out = self.model(x)
        return out.float()


def _robust(model: nn.Module, judge: nn.Module, x: torch.Tensor, y: torch.Tensor,
            threat: ThreatModel, seed: int) -> float:
    """Fraction of (x, y) the float32 ``judge`` still gets right after PGD on ``model``."""
    gen = torch.Generator(device=x.device).manual_seed(seed)
    res = PGD(steps=CHECK_STEPS).run(model, x, y, threat, generator=gen)
    with torch.inference_mode():
        broken = is_success(judge(res.x_adv), y, None)
    return float((~broken).float().mean())


def check_amp(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
              seed: int) -> dict[str, Any]:
    """Compare float32 and autocast on the first :data:`PROBE` correctly classified samples.

    Returns the record for ``params.amp``: ``used`` (bool), ``dtype``, ``probe`` (samples),
    ``max_abs_logit_diff``, ``argmax_agreement``, ``robust_fp32``, ``robust_amp``
    (fractions of the probe), ``tolerance`` and a ``note`` saying what was decided.
    """
    device = model_device(model)
    dtype = amp_dtype(device)
    fast = Autocast(model, dtype)
    xs, ys = x[:PROBE].to(device), y[:PROBE].to(device)
    with torch.inference_mode():
        full, half = model(xs).float(), fast(xs)
    diff = float((full - half).abs().max()) if xs.shape[0] else 0.0
    agree = float((full.argmax(1) == half.argmax(1)).float().mean()) if xs.shape[0] else 1.0
    right = full.argmax(1) == ys
    xs, ys = xs[right], ys[right]
    if xs.shape[0] == 0:
        robust32 = robust16 = 0.0
    else:
        robust32 = _robust(model, model, xs, ys, threat, seed)
        robust16 = _robust(fast, model, xs, ys, threat, seed)
    why = []
    if agree < MIN_AGREEMENT:
        why.append(f"the predictions agreed on {agree:.1%} of the probe (need "
                   f"{MIN_AGREEMENT:.0%})")
    # One sample of slack on a small probe: a single draw must not decide alone.
    allowed = max(TOLERANCE, 1 / max(1, int(xs.shape[0])))
    if robust16 > robust32 + allowed + 1e-9:
        why.append(f"PGD-{CHECK_STEPS} left {robust16:.1%} robust against {robust32:.1%} in "
                   f"float32 (allowed: {allowed:.1%} more)")
    ok = not why
    name = str(dtype).removeprefix("torch.")
    note = (f"mixed precision ({name}) passed its check" if ok else
            f"mixed precision ({name}) refused, attacks ran in float32: " + "; ".join(why))
    return {"used": ok, "dtype": name, "probe": int(xs.shape[0]),
            "max_abs_logit_diff": diff, "argmax_agreement": agree, "robust_fp32": robust32,
            "robust_amp": robust16, "tolerance": allowed, "note": note}


def amp_flag(record: dict[str, Any]) -> dict[str, Any] | None:
    """A card flag when mixed precision was asked for but refused; None when it was used."""
    if record.get("used", True):
        return None
    return {"id": "amp-refused", "severity": "info",
            "title": "mixed precision was refused; the attacks ran in float32",
            "evidence": record["note"],
            "advice": "nothing to do: the numbers are float32's. Drop --amp for this "
                      "model, or make its logits stable in half precision"}
