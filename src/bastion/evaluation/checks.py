"""Checks run before any attack, so bad input fails loudly instead of giving a wrong number.

- inputs: floating point, no NaN/inf, inside the threat model's bounds, at least (N, d);
- labels: (N,) integer class indices matching the inputs;
- model: runs on the inputs, returns (N, C) logits with C >= 2 covering the labels,
  does not return probabilities, is not left in train mode.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from bastion.attacks.base import model_device
from bastion.errors import BastionWarning, InputError, ModelError
from bastion.evaluation.backoff import is_out_of_memory
from bastion.threat import ThreatModel


def check_inputs(x: torch.Tensor, y: torch.Tensor, threat: ThreatModel) -> None:
    """Raise :class:`InputError` if ``x`` (N, ...) or ``y`` (N,) cannot be evaluated."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise InputError(
            f"inputs and labels must be torch tensors, got {type(x).__name__} and "
            f"{type(y).__name__}; convert with torch.as_tensor(...)"
        )
    if x.dim() < 2:
        raise InputError(
            f"inputs must be batched, shape (N, ...) e.g. (N, 1, 28, 28) images; got shape "
            f"{tuple(x.shape)}. Add a batch dimension with x.unsqueeze(0)"
        )
    if not x.is_floating_point():
        raise InputError(
            f"inputs must be floating point in bounds {threat.bounds}, got dtype {x.dtype}; "
            "convert with x.float() / 255 if they are 8-bit pixels"
        )
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise InputError(
            f"labels must have shape (N,) = ({x.shape[0]},) to match inputs {tuple(x.shape)}; "
            f"got {tuple(y.shape)}. Pass class indices, not one-hot vectors"
        )
    if y.is_floating_point() or y.dtype == torch.bool:
        raise InputError(f"labels must be integer class indices, got dtype {y.dtype}; "
                         "use y.long()")
    if x.shape[0] == 0:
        raise InputError("no samples to evaluate (N = 0)")
    bad = ~torch.isfinite(x)
    if bad.any():
        rows = bad.flatten(1).any(1).nonzero().squeeze(1)
        raise InputError(
            f"inputs contain NaN or inf in {rows.numel()} sample(s) (first: index "
            f"{int(rows[0])}); clean or drop them before evaluating"
        )
    low, high = threat.bounds
    x_min, x_max = float(x.min()), float(x.max())
    if x_min < low - 1e-6 or x_max > high + 1e-6:
        hint = ""
        # Negative values first: mean/std-normalised images also go above 1.5 (MNIST's
        # reach 2.82), and they must not be told to divide by 255.
        if x_min < low:
            hint = (" They look normalised (mean/std): pass raw inputs and put the "
                    "normalisation inside the model, so eps is measured in input units.")
        elif x_max > 1.5 * high and high == 1.0:
            hint = " They look like 0-255 pixels: divide by 255."
        raise InputError(
            f"inputs must lie in bounds [{low}, {high}] of the threat model, but range over "
            f"[{x_min:.4g}, {x_max:.4g}].{hint} Or set ThreatModel(bounds=...) to their range"
        )
    if int(y.min()) < 0:
        raise InputError(f"labels must be >= 0, found {int(y.min())}")


def require_module(model: object) -> None:
    """Raise :class:`ModelError` unless ``model`` is a ``torch.nn.Module``."""
    if not isinstance(model, nn.Module):
        raise ModelError(f"model must be a torch.nn.Module, got {type(model).__name__}; "
                         "wrap a plain function in an nn.Module whose forward() calls it")


def check_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise :class:`ModelError` unless ``model`` maps a few of ``x`` to usable logits.

    Run after :func:`check_inputs`; ``x`` is a small batch of real inputs.
    """
    require_module(model)
    probe_x = x[:16].to(model_device(model))
    try:
        with torch.no_grad():
            out = model(probe_x)
    except Exception as exc:  # any failure here means a shape/dtype/device mismatch
        if is_out_of_memory(exc):
            raise ModelError(f"out of device memory on just {probe_x.shape[0]} inputs; the "
                             "model does not fit this device: free the GPU, use another "
                             "one, or run with --device cpu") from exc
        raise ModelError(
            f"the model failed on inputs of shape {tuple(probe_x.shape)} "
            f"({type(exc).__name__}: {exc}). Check the data set matches the model "
            "(e.g. MNIST is (N, 1, 28, 28); --resize H,W resizes your images) and that "
            "model and inputs share a device"
        ) from exc
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != probe_x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(
            f"the model must return logits of shape (N, num_classes) = ({probe_x.shape[0]}, C); "
            f"got {shape}. Wrap it so forward() returns one tensor of class scores"
        )
    classes = out.shape[1]
    if classes < 2:
        raise ModelError(f"the model returns {classes} score per sample; bastion needs one "
                         "logit per class (C >= 2). For a binary sigmoid model output "
                         "torch.cat([-z, z], 1)")
    if int(y.max()) >= classes:
        raise ModelError(f"labels go up to {int(y.max())} but the model has only {classes} "
                         "outputs; check the data set matches the model")
    if not torch.isfinite(out).all():
        raise ModelError("the model returns NaN or inf on clean inputs; fix the model first")
    sums = out.sum(dim=1)
    if bool((out >= 0).all() and (out <= 1).all() and torch.allclose(sums, torch.ones_like(sums),
                                                                      atol=1e-3)):
        raise ModelError(
            "the model returns probabilities (each row is in [0, 1] and sums to 1), not "
            "logits. Softmax saturates and hides gradients, so attacks would report false "
            "robustness: remove the final softmax, or wrap the model to return log(p)"
        )


def warn_if_training(model: nn.Module) -> bool:
    """Warn if ``model`` is in train mode; return whether it was (to restore it later).

    Raises :class:`ModelError` for a non-Module: this runs before :func:`check_model`.
    """
    require_module(model)
    if not model.training:
        return False
    warnings.warn(
        "the model is in train mode: dropout and batch-norm make its outputs random and "
        "the numbers unreliable. bastion evaluates it in eval mode and restores train mode "
        "afterwards; call model.eval() yourself to silence this",
        BastionWarning,
        stacklevel=3,
    )
    return True
