"""Training and validation data, and the order batches are drawn in.

The order of epoch ``e`` is a function of (seed, e) only: a ``DistributedSampler``
shuffles with a generator seeded by ``seed + e`` and deals every ``world``-th index to
each process. Resuming at batch ``b`` of epoch ``e`` therefore replays the very same
batches, and each torchrun process sees its own disjoint shard.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DistributedSampler

from bastion import data as data_registry
from bastion.data.files import is_bastion_file, is_file, load_npz
from bastion.errors import ConfigError


@dataclass(frozen=True)
class Splits:
    """Tensors for one run. ``x_*`` (N, C, H, W) float32 in [0, 1]; ``y_*`` (N,) int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    val_source: str  # "mnist/val" or "digits/train[-K:]"
    num_classes: int


def load_splits(name: str, *, train_n: int | None, val_n: int, val_holdout: int) -> Splits:
    """Train and validation tensors of data set ``name``.

    Uses the data set's own ``val`` split when it has one (MNIST), else holds out the
    last ``val_holdout`` train images, which training then never sees.
    """
    if name.endswith((".npz", ".pt")) and not (is_file(name) and is_bastion_file(name)):
        raise ConfigError(f"{name} is one set with no validation or test split to go with "
                          "it; train on a folder with train/ (and val/, test/) class "
                          "sub-folders, or on a file written by bastion data audit --remove")
    if is_file(name):  # a cleaned or curated set; validation comes from its base data set
        x, y, base = load_npz(name)
        train = data_registry.load(base, "test")
        name = base
    else:
        train = data_registry.load(name, "train")
        x, y = train.x, train.y
    try:
        val = data_registry.load(name, "val")
        x_val, y_val, source = val.x, val.y, f"{name}/val"
    except ConfigError:
        if train.split != "train":
            raise ConfigError(f"{name} has no val split to validate a data file's training "
                              "run; use a base data set with one (mnist)") from None
        if not 0 < val_holdout <= len(x) // 2:
            raise ConfigError(f"{name} has no val split, so the last --val-holdout train "
                              f"images validate; it must be in [1, {len(x) // 2}], got "
                              f"{val_holdout}") from None
        x, y, x_val, y_val = x[:-val_holdout], y[:-val_holdout], x[-val_holdout:], \
            y[-val_holdout:]
        source = f"{name}/train[-{val_holdout}:]"
    if train_n is not None:
        if train_n > len(x):
            raise ConfigError(f"train_n={train_n} but only {len(x)} training images remain")
        x, y = x[:train_n], y[:train_n]
    if val_n > len(x_val):
        raise ConfigError(f"val_n={val_n} but the validation set has {len(x_val)} images")
    return Splits(x, y, x_val[:val_n], y_val[:val_n], source, len(train.classes))


def eval_data(name: str) -> str:
    """The ``bastion.data`` name whose test split evaluates a run on data ``name``."""
    return load_npz(name)[2] if is_file(name) else name


def epoch_order(n: int, *, seed: int, epoch: int, rank: int, world: int) -> list[int]:
    """This process's sample indices for ``epoch``, in order (padded so every process
    gets the same count, as DistributedSampler does)."""
    sampler: DistributedSampler[int] = DistributedSampler(
        range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed)  # type: ignore[arg-type]
    sampler.set_epoch(epoch)
    return list(sampler)


def local_batch_size(batch_size: int, world: int) -> int:
    """Per-process batch size; the global ``batch_size`` must split evenly."""
    if batch_size % world:
        raise ConfigError(f"--batch-size {batch_size} must be divisible by the number of "
                          f"processes ({world})")
    return batch_size // world


def batches_per_epoch(n: int, batch_size: int, world: int) -> int:
    per_rank = -(-n // world)
    return -(-per_rank // local_batch_size(batch_size, world))


def poisson_batch(n: int, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Indices of a Poisson-sampled batch: each of ``n`` samples joins independently with
    probability ``rate`` (the sampling DP-SGD's privacy accounting assumes)."""
    return (torch.rand(n, generator=generator) < rate).nonzero().squeeze(1)
