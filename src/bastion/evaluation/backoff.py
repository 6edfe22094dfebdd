"""Batch-size back-off: when a batch does not fit in the device's memory, halve it and go on.

Every attack draws its random numbers per sample (:mod:`bastion.common.draws`), keyed by
the sample's position in the data set, so a sample's result does not depend on the batch
it shares. The back-off therefore keeps the work already done: the batch that ran out of
memory is retried at half the size, the rest of the job continues at that size, and the
numbers are those of an undisturbed run at the size first asked for. Halving stops at 1.
(A model with its own randomness draws from torch's global state per batch: its numbers
follow the batch layout, as any such model's do.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

import torch

from bastion.errors import BastionWarning, ModelError

#: how out-of-memory errors read when they are plain RuntimeErrors (older torch, MPS).
OOM_TEXT = "out of memory"

T = TypeVar("T")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a device out-of-memory error (CUDA, MPS or the CPU allocator)."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and OOM_TEXT in str(exc).lower()


def free_cached_memory() -> None:
    """Return the CUDA caching allocator's unused blocks, so the retry starts clean."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def halve(size: int, exc: BaseException, *, allowed: bool = True, why_not: str = "") -> int:
    """The batch size to retry with after out-of-memory error ``exc`` at ``size``.

    Raises:
        ModelError: at batch size 1, or when not ``allowed`` (``why_not`` says why).
    """
    if not allowed:
        raise ModelError(f"out of device memory at batch size {size} ({_line(exc)}); "
                         f"{why_not}: rerun with --batch-size {max(1, size // 2)}") from exc
    if size <= 1:
        raise ModelError(f"out of device memory even at batch size 1 ({_line(exc)}); "
                         "the model does not fit this device: free the GPU, use another "
                         "one, or run with --device cpu") from exc
    free_cached_memory()
    smaller = size // 2
    warnings.warn(f"out of device memory at batch size {size}; going on at batch size "
                  f"{smaller} (the numbers do not change; pass --batch-size {smaller} "
                  "next time to skip the failed try)", BastionWarning, stacklevel=3)
    return smaller


def run_in_batches(step: Callable[[int, int], None], n: int, batch_size: int, *,
                   known_stop: Callable[[int], int | None] | None = None,
                   allowed: bool = True, why_not: str = "") -> int:
    """Call ``step(start, stop)`` over samples [0, n) in order, in batches of ``batch_size``.

    A batch that runs out of device memory is retried at half the size, and the batches
    after it keep the smaller size; batches already done stay done. ``step`` must give
    each sample the same result whatever batch holds it.

    Args:
        known_stop: for a start position, the end of a batch already finished there (a
            resumed run reuses it whatever its size), or None.
        allowed, why_not: as for :func:`halve`.

    Returns:
        The batch size in use at the end (pass it on to the next pass over the data).
    """
    size, start = batch_size, 0
    while start < n:
        stop = known_stop(start) if known_stop is not None else None
        stop = stop if stop is not None else min(n, start + size)
        try:
            step(start, stop)
        except Exception as exc:  # only out-of-memory errors are handled; others re-raised
            if not is_out_of_memory(exc):
                raise
            size = halve(min(size, stop - start), exc, allowed=allowed, why_not=why_not)
            continue
        start = stop
    return size


def with_backoff(run: Callable[[int], T], batch_size: int, *, allowed: bool = True,
                 why_not: str = "") -> tuple[T, int]:
    """``run(batch_size)``, called again at half the size after each out-of-memory error.

    For a step that cannot be split (a probe of the model before the batches): ``run``
    starts over each time. Returns (what ``run`` returned, the size that worked).
    """
    size = batch_size
    while True:
        try:
            return run(size), size
        except Exception as exc:  # only out-of-memory errors are handled; others re-raised
            if not is_out_of_memory(exc):
                raise
            size = halve(size, exc, allowed=allowed, why_not=why_not)


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
