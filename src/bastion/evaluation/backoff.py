"""Batch-size back-off: when a batch does not fit in the device's memory, halve it.

An evaluation's numbers depend on its batch size, because each batch's attacks draw
their random numbers from a generator seeded by the batch's position
(:mod:`bastion.evaluation.runner`). So a back-off cannot simply split the failing batch
and carry on: the batches already done would follow one layout and the rest another.
:func:`with_backoff` therefore reruns the whole job at the halved size, and the result
is exactly that of a run started with ``--batch-size`` at the size it settled on (work
done before the out-of-memory error is thrown away; pass that size next time to skip
it). Halving stops at 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

import torch

from bastion.errors import BastionWarning, ModelError

T = TypeVar("T")

#: how out-of-memory errors read when they are plain RuntimeErrors (older torch, MPS).
OOM_TEXT = "out of memory"


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


def with_backoff(run: Callable[[int], T], batch_size: int, *, allowed: bool = True,
                 why_not: str = "") -> tuple[T, int]:
    """``run(batch_size)``, rerun at half the size after each out-of-memory error.

    Args:
        run: the whole job at a given batch size; it must not depend on a previous
            attempt (each call starts over).
        batch_size: the size to try first (>= 1).
        allowed: False to raise at the first out-of-memory error instead (e.g. when
            several processes share the work and must agree on the layout); ``why_not``
            says why, in the error.

    Returns:
        (what ``run`` returned, the batch size that worked).

    Raises:
        ModelError: out of memory at batch size 1, or when not ``allowed``.
    """
    size = batch_size
    while True:
        try:
            return run(size), size
        except Exception as exc:  # only out-of-memory errors are handled; others re-raised
            if not is_out_of_memory(exc):
                raise
            if not allowed:
                raise ModelError(f"out of device memory at batch size {size} ({_line(exc)}); "
                                 f"{why_not}: rerun with --batch-size {max(1, size // 2)}"
                                 ) from exc
            if size == 1:
                raise ModelError(f"out of device memory even at batch size 1 ({_line(exc)}); "
                                 "the model does not fit this device: free the GPU, use "
                                 "another one, or run with --device cpu") from exc
        free_cached_memory()
        smaller = size // 2
        warnings.warn(f"out of device memory at batch size {size}; starting over at batch "
                      f"size {smaller}. The numbers will equal a run with --batch-size "
                      f"{smaller}; pass it next time to skip the wasted work",
                      BastionWarning, stacklevel=2)
        size = smaller


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
