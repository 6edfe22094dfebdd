"""A toy problem where the right answers are known.

Inputs are 4 "pixels" (N, 1, 2, 2) in [0, 1]. Three classes are Gaussians with means
0.5 + 0.3 e_k (k = 0, 1, 2) and standard deviation 0.05 per pixel. The model is a
nearest-mean classifier written as two linear layers: an identity body (so the
penultimate features are the inputs themselves) and a head with logits
10 (x . mu_k - |mu_k|^2 / 2). The OOD set is centred at (0.5, 0.5, 0.5, 0.1): ten
standard deviations from every class mean, equally close to all three (the
softmax is flat there) and with logits lower by about 4, so every detector should
separate it.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

SIGMA = 0.05


def class_means() -> torch.Tensor:
    return 0.5 + 0.3 * torch.eye(4)[:3]


def toy_model() -> nn.Module:
    means = class_means()
    body = nn.Linear(4, 4)
    head = nn.Linear(4, 3)
    with torch.no_grad():
        body.weight.copy_(torch.eye(4))
        body.bias.zero_()
        head.weight.copy_(10 * means)
        head.bias.copy_(-5 * (means ** 2).sum(dim=1))
    return nn.Sequential(nn.Flatten(), body, head).eval()


def gaussians(n_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(3).repeat_interleave(n_per_class)
    x = class_means()[y] + SIGMA * torch.randn((len(y), 4), generator=gen)
    return x.clamp(0, 1).view(-1, 1, 2, 2), y


def far_ood(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    centre = torch.tensor([0.5, 0.5, 0.5, 0.1])
    return (centre + SIGMA * torch.randn((n, 4), generator=gen)).clamp(0, 1).view(-1, 1, 2, 2)


@pytest.fixture
def model() -> nn.Module:
    return toy_model()


@pytest.fixture
def fit_data() -> tuple[torch.Tensor, torch.Tensor]:
    return gaussians(200, seed=1)


@pytest.fixture
def id_test() -> torch.Tensor:
    return gaussians(100, seed=2)[0]


@pytest.fixture
def ood_test() -> torch.Tensor:
    return far_ood(300, seed=3)
