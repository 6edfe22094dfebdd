"""Randomized smoothing's noise does not depend on the batch, so an out-of-memory error
halves the noise batch and the certificate stays what an undisturbed run gives."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
from tests.conftest import Halfspace
from torch import nn

from bastion.certify import SmoothingConfig, certify
from bastion.certify.smoothing import CHUNK, noise_rows, predict
from bastion.certify.smoothing import certify as smooth_certify
from bastion.errors import BastionWarning, ModelError
from bastion.threat import ThreatModel

OOM_ERRORS = [torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
              RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)")]


class RunsOutOfMemory(nn.Module):
    """``model``, but after ``fits`` forward passes any batch above ``limit`` raises
    ``error``; records every batch size it is given."""

    def __init__(self, model: nn.Module, error: Exception, fits: int, limit: int) -> None:
        super().__init__()
        self.model, self.error, self.fits, self.limit = model, error, fits, limit
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        if len(self.sizes) > self.fits and x.shape[0] > self.limit:
            raise self.error
        return self.model(x)


def _setup() -> tuple[nn.Module, torch.Tensor]:
    gen = torch.Generator().manual_seed(4)
    w = torch.randn(16, generator=gen)
    x = torch.rand(6, 1, 4, 4, generator=gen)
    # b puts the points near the boundary, so counts (and radii) differ between inputs
    return Halfspace(w, -float((x.flatten(1) @ w).median())), x


def _run(model: nn.Module, x: torch.Tensor, batch: int) -> tuple[torch.Tensor, ...]:
    res = smooth_certify(model, x, 0.5, 20, 300, 0.01, batch,
                         generator=torch.Generator().manual_seed(7))
    return res.label, res.radius, res.p_lower


def test_noise_rows_do_not_depend_on_the_rows_asked_with_them() -> None:
    shape = torch.Size((1, 3, 3))
    whole = noise_rows(11, 0, 5 * CHUNK, shape, device=torch.device("cpu"), dtype=torch.float32)
    cuts = [0, 1, 7, CHUNK + 3, 3 * CHUNK, 5 * CHUNK]
    parts = [noise_rows(11, a, b, shape, device=torch.device("cpu"), dtype=torch.float32)
             for a, b in pairwise(cuts)]
    assert whole.shape == (5 * CHUNK, *shape)
    assert torch.equal(torch.cat(parts), whole)
    other = noise_rows(12, 0, 5 * CHUNK, shape, device=torch.device("cpu"), dtype=torch.float32)
    assert not torch.equal(other, whole)
    # blocks of one stream differ (no block is a copy of its neighbour)
    assert not torch.equal(whole[:CHUNK], whole[CHUNK:2 * CHUNK])


def test_certificate_is_the_same_at_any_batch_size_and_however_inputs_are_split() -> None:
    model, x = _setup()
    want = _run(model, x, 1000)
    assert len(set(want[2].tolist())) > 2  # the estimates differ: a real comparison
    for batch in (1, 7, 64):
        for got, ref in zip(_run(model, x, batch), want, strict=True):
            assert torch.equal(got, ref)
    gen = torch.Generator().manual_seed(7)
    halves = [smooth_certify(model, part, 0.5, 20, 300, 0.01, 50, generator=gen)
              for part in (x[:2], x[2:])]
    assert torch.equal(torch.cat([h.p_lower for h in halves]), want[2])


@pytest.mark.parametrize("error", OOM_ERRORS, ids=["cuda", "runtime"])
def test_certify_halves_the_noise_batch_and_keeps_every_radius(error: Exception) -> None:
    model, x = _setup()
    want = _run(model, x, 128)
    flaky = RunsOutOfMemory(model, error, fits=5, limit=40)
    with pytest.warns(BastionWarning) as caught:
        got = _run(flaky, x, 128)
    assert [str(w.message).split(";")[1].strip()[:25] for w in caught] == [
        "going on at batch size 64", "going on at batch size 32"]
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)
    failed = flaky.sizes.index(128, 5)  # the first pass past `fits` at the full size
    assert flaky.sizes[failed + 1:failed + 3] == [64, 32]  # halved twice, then it fits
    assert max(flaky.sizes[failed + 1:]) <= 64 and 128 not in flaky.sizes[failed + 1:]


@pytest.mark.parametrize("error", OOM_ERRORS, ids=["cuda", "runtime"])
def test_predict_and_the_certify_api_back_off_too(error: Exception) -> None:
    model, x = _setup()
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    want = predict(model, x, 0.5, 200, 0.05, 100, generator=gen()).label
    with pytest.warns(BastionWarning):
        got = predict(RunsOutOfMemory(model, error, 2, 30), x, 0.5, 200, 0.05, 100,
                      generator=gen()).label
    assert torch.equal(got, want)
    y = model(x).argmax(1)
    cfg = SmoothingConfig(sigma=0.5, n0=20, n=300, alpha=0.01, batch=100)
    threat = ThreatModel("L2", 0.05)
    ref = certify(model, x, y, threat, method="smoothing", smoothing=cfg, generator=gen())
    with pytest.warns(BastionWarning):
        out = certify(RunsOutOfMemory(model, error, 3, 10), x, y, threat, method="smoothing",
                      smoothing=cfg, generator=gen())
    assert out.radius is not None and ref.radius is not None
    assert torch.equal(out.radius, ref.radius) and torch.equal(out.certified, ref.certified)


def test_out_of_memory_at_one_noisy_copy_says_what_to_do() -> None:
    model, x = _setup()
    with pytest.raises(ModelError, match="even at batch size 1"), \
            pytest.warns(BastionWarning):
        _run(RunsOutOfMemory(model, OOM_ERRORS[0], 0, 0), x, 4)
