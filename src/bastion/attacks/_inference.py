"""A frozen, inference-only copy of a CPU convolutional model, for the passes of an
attack that never need a gradient: Square's queries and FAB's check of each new iterate.

``torch.jit.optimize_for_inference`` folds the model into a TorchScript graph whose
convolutions run in oneDNN's blocked layout with fused activations. Measured here on the
LeNet-5 of docs/benchmarks.md, one thread, a batch of 175 MNIST images: a forward pass
took 25-29 ms instead of 32-60 ms channels-last and 72-120 ms in the default layout
(noisy, shared machine). Square spends 5,000 such passes per robust image.

Tracing records the operations one probe batch ran, so the copy is only used when it is
safe to believe it is the same function: a CPU model in eval mode with a Conv2d, whose
two forward passes on the probe agree (no randomness), that traces without error, and
whose frozen copy gives the same logits (within :data:`TOLERANCE`) on the probe and on
its first sample alone. Otherwise the model itself is returned. Set
``BASTION_FREEZE=0`` to turn it off.
"""

from __future__ import annotations

import os
import warnings
import weakref
from typing import Any

import torch
from torch import nn

#: Logit tolerance of the checks: far above float rounding, far below a changed decision.
TOLERANCE = 1e-4

_cache: weakref.WeakKeyDictionary[nn.Module, tuple[Any, nn.Module]] = (
    weakref.WeakKeyDictionary())


class _Frozen(nn.Module):
    """The frozen graph, counting the samples it was asked about (its passes never go
    through the model's own ``forward``, so a wrapper counting those would miss them)."""

    def __init__(self, graph: Any) -> None:
        super().__init__()
        self.graph = graph
        self.forward_passes = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_passes += int(x.shape[0])
        out: torch.Tensor = self.graph(x)
        return out


def _signature(model: nn.Module) -> tuple[Any, ...]:
    # Where each tensor lives and how often it was written in place: a new layout
    # (channels-last) or an optimizer step gives a new signature, so a stale copy is
    # never reused.
    return tuple((t.data_ptr(), t._version, t.stride())
                 for t in [*model.parameters(), *model.buffers()])


def _wanted(model: nn.Module, probe: torch.Tensor) -> bool:
    if os.environ.get("BASTION_FREEZE", "1") == "0" or probe.dim() != 4 or model.training:
        return False
    tensors = [*model.parameters(), *model.buffers()]
    on_cpu = all(t.device.type == "cpu" for t in tensors) and probe.device.type == "cpu"
    return on_cpu and any(isinstance(m, nn.Conv2d) for m in model.modules())


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=0, atol=TOLERANCE))


def inference_model(model: nn.Module, probe: torch.Tensor) -> nn.Module:
    """A frozen copy of ``model`` for no-grad forward passes, or ``model`` itself.

    Args:
        model: maps (N, C, H, W) inputs to logits; left untouched.
        probe: (B, C, H, W) inputs the checks run on (B >= 2; a few suffice).
    """
    if not _wanted(model, probe) or probe.shape[0] < 2:
        return model
    signature = _signature(model)
    cached = _cache.get(model)
    if cached is not None and cached[0] == signature:
        return cached[1]
    frozen = _freeze(model, probe)
    _cache[model] = (signature, frozen)
    return frozen


def uses_frozen_copy(model: nn.Module) -> bool:
    """Whether the last :func:`inference_model` call for ``model`` gave a frozen copy
    (whose passes never go through ``model.forward``)."""
    cached = _cache.get(model)
    return cached is not None and cached[1] is not model


def frozen_forward_passes(model: nn.Module) -> int:
    """Samples sent through the frozen copy of ``model`` since it was built (0 if none)."""
    cached = _cache.get(model)
    return cached[1].forward_passes if cached is not None and isinstance(
        cached[1], _Frozen) else 0


def _freeze(model: nn.Module, probe: torch.Tensor) -> nn.Module:
    with torch.no_grad():
        first, again = model(probe), model(probe)
        if not _same(first, again):
            return model  # randomized: a trace would freeze one draw's shapes at best
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(model, probe, check_trace=False)
                fast = torch.jit.optimize_for_inference(traced)
            one = probe[:1]  # another batch size: catches shapes baked into the trace
            ok = _same(fast(probe), first) and _same(fast(one), model(one))
        except Exception:  # anything tracing cannot handle: keep the model
            return model
    return _Frozen(fast) if ok else model
