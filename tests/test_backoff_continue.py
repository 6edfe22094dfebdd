"""Out-of-memory back-off in the middle of an evaluation: it halves the batch, keeps the
units already done, goes on, and the numbers equal an undisturbed run at the size asked."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from tests.conftest import tiny_cnn
from torch import nn

from bastion.attacks import APGDT, PGD, Square
from bastion.errors import BastionWarning
from bastion.evaluation.backoff import run_in_batches
from bastion.evaluation.runner import evaluate
from bastion.threat import ThreatModel

ERRORS = [torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
          RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)")]


class FailsLater(nn.Module):
    """``net``; after ``calls`` forwards, every forward of more than ``limit`` inputs
    raises ``error``: memory running out in the middle of a run."""

    def __init__(self, net: nn.Module, *, calls: int, limit: int, error: Exception) -> None:
        super().__init__()
        self.net, self.calls, self.limit, self.error = net, calls, limit, error
        self.seen = 0
        self.refused = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += 1
        if self.seen > self.calls and x.shape[0] > self.limit:
            self.refused += 1
            raise self.error
        return self.net(x)


def sharp_cnn() -> nn.Module:
    model = tiny_cnn()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(3)
    return model


def run(model: nn.Module, batch_size: int, state: Path | None = None) -> dict:
    x = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = sharp_cnn()(x).argmax(1)
    attacks = [PGD(steps=4), APGDT(steps=3, n_target_classes=2), Square(n_queries=30)]
    return evaluate(model, (x, y), ThreatModel("Linf", 0.06), attacks, eps_sweep=(0.03,),
                    batch_size=batch_size, seed=4, state=state).to_dict()


@pytest.mark.parametrize("error", ERRORS, ids=["cuda", "runtime"])
def test_out_of_memory_mid_run_goes_on_with_the_same_numbers(error: Exception,
                                                            tmp_path: Path) -> None:
    want = run(sharp_cnn(), 16)
    flaky = FailsLater(sharp_cnn(), calls=60, limit=5, error=error).eval()
    with pytest.warns(BastionWarning, match="going on at batch size") as caught:
        got = run(flaky, 16, tmp_path / "state.json")
    units = list(json.loads((tmp_path / "state.json").read_text())["units"])
    # The headline eps (index 1) did its first batch at 16 before memory ran out; the rest
    # went on at smaller sizes, and each eps's units tile the 30 samples exactly once.
    assert units[0] == "1/0:16"
    spans: dict[str, list[tuple[int, int]]] = {}
    for unit in units:
        eps, span = unit.split("/")
        start, stop = (int(v) for v in span.split(":"))
        spans.setdefault(eps, []).append((start, stop))
    for eps, pieces in spans.items():
        pieces.sort()
        assert pieces[0][0] == 0 and pieces[-1][1] == 30, eps
        assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces)), eps
    assert max(stop - start for start, stop in spans["0"]) <= 5  # the flaky model's limit
    assert flaky.refused >= 2  # ran out at least twice before a size that fits
    assert len([w for w in caught if "going on at batch size" in str(w.message)]) >= 2
    for key in ("n", "clean_accuracy", "robust_accuracy", "per_attack", "sweep", "passes"):
        assert got[key] == want[key], key
    assert got["params"]["batch_size"] <= 5 and got["params"]["batch_size_asked"] == 16
    assert 0 < got["robust_accuracy"] < got["clean_accuracy"]


def test_batch_size_does_not_change_an_evaluation() -> None:
    seven, fifty = run(sharp_cnn(), 7), run(sharp_cnn(), 50)
    for key in ("clean_accuracy", "robust_accuracy", "per_attack", "sweep", "passes"):
        assert seven[key] == fifty[key], key


def test_run_in_batches_retries_only_the_failing_batch() -> None:
    done: list[tuple[int, int]] = []
    failed: list[tuple[int, int]] = []

    def step(a: int, b: int) -> None:
        if b - a > 4 and a >= 8:
            failed.append((a, b))
            raise ERRORS[0]
        done.append((a, b))

    with pytest.warns(BastionWarning):
        size = run_in_batches(step, 20, 8)
    assert done == [(0, 8), (8, 12), (12, 16), (16, 20)]
    assert failed == [(8, 16)] and size == 4
