"""Faster memory layout for convolutional models on the CPU, while an evaluation runs.

PyTorch's CPU kernels for Conv2d and max pooling are much faster on channels-last
tensors (NHWC in memory) than on the default NCHW: measured here on the LeNet-5 of
docs/benchmarks.md, one thread, a batch of 100 MNIST images, a forward pass took 12.8 ms
instead of 27.8 ms and a forward plus input-gradient pass 50 ms instead of 68 ms. An
attack is nothing but such passes, so :func:`channels_last` converts the model's
parameters for the duration of an evaluation (and of every :meth:`Attack.run
<bastion.attacks.base.Attack.run>` called outside one) and converts them back afterwards.

The layout changes where numbers sit in memory, not what they mean, but summation
order differs, so logits move by float rounding (about 1e-6). The conversion is only
kept when a probe batch gives the same logits (within 1e-4) and raises nothing: a
model whose ``forward`` uses ``.view`` on a convolution output fails on channels-last
tensors, and then the model is left as it was. Set ``BASTION_CHANNELS_LAST=0`` to
turn it off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import torch
from torch import nn

#: Logit tolerance of the probe: far above float rounding, far below a changed decision.
TOLERANCE = 1e-4


def wanted(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether to try: 4-D inputs, a CPU model in eval mode with a Conv2d, not turned off
    by env (a model in training mode would update batch-norm statistics on the probe)."""
    if os.environ.get("BASTION_CHANNELS_LAST", "1") == "0" or x.dim() != 4 or model.training:
        return False
    params = list(model.parameters())
    on_cpu = all(p.device.type == "cpu" for p in params) and x.device.type == "cpu"
    # A model the user already laid out otherwise is left alone (we would restore the
    # default layout on exit, not theirs).
    default = all(p.is_contiguous() for p in params if p.dim() == 4)
    return on_cpu and default and any(isinstance(m, nn.Conv2d) for m in model.modules())


@contextmanager
def channels_last(model: nn.Module, probe: torch.Tensor) -> Iterator[bool]:
    """Within the block, ``model`` runs channels-last if that is safe; yields whether.

    Args:
        model: converted in place and restored to the default layout on exit.
        probe: (B, C, H, W) inputs to compare the two layouts on (a few suffice).
    """
    if not wanted(model, probe):
        yield False
        return
    # The probe leaves the caller's global random state as it was (a model that draws
    # from it would otherwise see other numbers after the check than without it).
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        before = model(probe)
    _lay_out(model, torch.channels_last)
    try:
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            after = model(probe)
        same = after.shape == before.shape and torch.allclose(after, before, rtol=0,
                                                              atol=TOLERANCE)
    except RuntimeError:  # e.g. .view() on a channels-last activation
        same = False
    if not same:
        _lay_out(model, torch.contiguous_format)
        yield False
        return
    try:
        yield True
    finally:
        _lay_out(model, torch.contiguous_format)


def _lay_out(model: nn.Module, fmt: torch.memory_format) -> None:
    # Module.to accepts memory_format at run time; torch's type stubs do not say so.
    cast(Any, model).to(memory_format=fmt)
