"""Shared fixtures: tiny deterministic models and small batches, fast enough for every test.

Models here take (N, 1, 8, 8) inputs in [0, 1] (the size of scikit-learn's digits) and
return 10 logits. Each is built under a forked, seeded random state, so fixtures give the
same weights in every run without disturbing the random state of the tests that use them.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
from hypothesis import settings
from torch import nn

# Tests use tiny tensors, where intra-op threads only add overhead; on a shared CPU they
# also spin against other jobs (measured: 35x slower attack tests with 2 threads than 1).
torch.set_num_threads(int(os.environ.get("BASTION_TEST_THREADS", "1")))

# No deadline: timings on a shared CI machine vary too much to mean anything.
settings.register_profile("ci", deadline=None, max_examples=25)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

NUM_CLASSES = 10
SHAPE = (1, 8, 8)


class Halfspace(nn.Module):
    """Class 1 where w·x + b > 0, else class 0: near the boundary the votes split."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.flatten(1) @ self.w + self.b
        return torch.stack([-score, score], 1)


def tiny_cnn(seed: int = 0) -> nn.Module:
    """An untrained conv net (N, 1, 8, 8) -> (N, 10), in eval mode, same weights per seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * 4 * 4, 16), nn.ReLU(),
            nn.Linear(16, NUM_CLASSES),
        )
    return model.eval()


def tiny_mlp(seed: int = 0, hidden: int = 32) -> nn.Module:
    """An untrained MLP (N, 1, 8, 8) -> (N, 10), in eval mode, same weights per seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, NUM_CLASSES),
        )
    return model.eval()


def random_batch(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (n, 1, 8, 8) uniform in [0, 1] and labels (n,) int64 in [0, 10)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *SHAPE), generator=gen)
    y = torch.randint(0, NUM_CLASSES, (n,), generator=gen)
    return x, y


@pytest.fixture
def cnn() -> nn.Module:
    return tiny_cnn()


@pytest.fixture
def mlp() -> nn.Module:
    return tiny_mlp()


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return random_batch()


@pytest.fixture(scope="session")
def digits_train() -> tuple[torch.Tensor, torch.Tensor]:
    from bastion.data import load

    data = load("digits", "train")
    return data.x, data.y


@pytest.fixture(scope="session")
def digits_test() -> tuple[torch.Tensor, torch.Tensor]:
    from bastion.data import load

    data = load("digits", "test")
    return data.x, data.y


@pytest.fixture(scope="session")
def trained_mlp(digits_train: tuple[torch.Tensor, torch.Tensor]) -> nn.Module:
    """An MLP trained on the digits train split (about 91% test accuracy), in eval mode.

    Shared by the whole session: tests must not train it or change its mode.
    """
    x, y = digits_train
    model = tiny_mlp(seed=1, hidden=64)
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        opt = torch.optim.Adam(model.parameters(), lr=3e-2)
        for _ in range(60):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


MnistRight = tuple[nn.Module, torch.Tensor, torch.Tensor]


@pytest.fixture(scope="session")
def mnist_right() -> Callable[[str, int], MnistRight]:
    """``mnist_right(name, n)``: a zoo model in eval mode and those of the first ``n``
    MNIST test images it classifies correctly (cached per (name, n))."""
    cache: dict[tuple[str, int], MnistRight] = {}

    def get(name: str, n: int) -> MnistRight:
        if (name, n) not in cache:
            from bastion import data, zoo

            model = zoo.load(name).eval()
            ds = data.load("mnist", "test", n)
            with torch.no_grad():
                right = model(ds.x).argmax(1) == ds.y
            cache[name, n] = (model, ds.x[right], ds.y[right])
        return cache[name, n]

    return get


BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


def load_bench(file: str, module_name: str) -> ModuleType:
    """Import ``bench/FILE`` as ``module_name``; bench/ is on sys.path while it loads, as
    some benchmarks import a sibling."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        spec = importlib.util.spec_from_file_location(module_name, BENCH_DIR / file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH_DIR))
    return module
