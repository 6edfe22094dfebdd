"""The memory budget of the CROWN methods, and the chunks it allows.

Full CROWN and alpha-CROWN carry one backward specification (a *row*) per unstable
neuron per sample; held all at once they grow with the batch and the network (hundreds
of MB per sample for alpha-CROWN on a four-conv net, whose rows and their autograd
copies stay alive for the gradient). ``max_memory_mb`` bounds what one chunk holds:

- full CROWN's rows go through the layers in chunks of at most ``budget`` floats of
  working copies (:func:`bastion.certify.crown.layer_bounds`), and the margins' backward
  pass takes the samples in chunks the same way;
- alpha-CROWN optimises the samples in consecutive groups whose rows fit the budget
  (every slope belongs to one sample and Adam works elementwise, so the groups reach the
  bounds the whole batch would).

Chunking never changes a bound, only how much is held at once; a single row or sample
larger than the budget still runs, alone.
"""

from __future__ import annotations

import torch

from bastion.errors import ConfigError

Tensor = torch.Tensor

#: default budget of one chunk of specification rows, in MB.
DEFAULT_MAX_MEMORY_MB = 256.0


def budget_floats(max_memory_mb: float, dtype: torch.dtype = torch.float32) -> int:
    """How many numbers of ``dtype`` fit in ``max_memory_mb`` MB (2**20 bytes); >= 1."""
    if not max_memory_mb > 0:
        raise ConfigError(f"max_memory_mb must be > 0 (a memory budget in MB, e.g. 256), "
                          f"got {max_memory_mb}")
    size = torch.empty((), dtype=dtype).element_size()
    return max(1, int(max_memory_mb * 2**20) // size)


def sample_groups(cost: Tensor, budget: int) -> list[slice]:
    """Consecutive groups of samples whose summed ``cost`` (N,) (floats) stays within
    ``budget``; a sample costlier than the budget gets a group of its own."""
    groups: list[slice] = []
    start, held = 0, 0
    for i, c in enumerate(cost.tolist()):
        if i > start and held + c > budget:
            groups.append(slice(start, i))
            start, held = i, 0
        held += c
    if cost.numel() > start:
        groups.append(slice(start, cost.numel()))
    return groups
