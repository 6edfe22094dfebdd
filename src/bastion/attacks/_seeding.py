"""Where an attack's random numbers come from: per-sample streams (:mod:`bastion.common.draws`).

Every attack draws through a :class:`~bastion.common.draws.SampleRandom`, so a sample's
random starts, restarts and proposals depend on (seed, the sample's position in the data
set) and not on the batch it shares: an evaluation gives the same numbers at any batch
size, in any number of shards, and after an out-of-memory back-off.
"""

from __future__ import annotations

import torch

from bastion.common.draws import SampleRandom, Source


def per_sample(generator: Source | None, n: int, device: torch.device) -> SampleRandom:
    """The streams for ``n`` samples on ``device``.

    A :class:`SampleRandom` passes through (it must hold ``n`` keys); a
    ``torch.Generator`` seeds streams for samples 0..n-1 with one draw; None means seed 0.
    """
    if isinstance(generator, SampleRandom):
        if len(generator) != n:
            raise ValueError(f"the random streams cover {len(generator)} samples, the "
                             f"inputs {n}")
        if generator.device != device:
            return SampleRandom(generator.keys.to(device), generator.count)
        return generator
    if generator is None:
        generator = torch.Generator(device=device).manual_seed(0)
    return SampleRandom.from_generator(generator, n, device)


def seed_for_rows(seed: int, index: torch.Tensor, device: torch.device) -> SampleRandom:
    """Streams for the samples at global positions ``index`` (N,) of a data set."""
    return SampleRandom.for_samples(seed, index.to(device))
