"""The memory budget of CROWN and alpha-CROWN: it bounds the rows and samples held at once
and never changes a bound, whatever the budget and the batch size."""

from __future__ import annotations

import pytest
import torch
from tests.test_certify_crown import conv_net, inputs

from bastion.certify import alpha as alpha_mod
from bastion.certify import certify, compile_network
from bastion.certify import crown as crown_mod
from bastion.certify.budget import budget_floats, sample_groups
from bastion.errors import ConfigError
from bastion.threat import ThreatModel


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_crown_bounds_are_the_same_at_any_budget_and_batch_size(kind: int) -> None:
    model = conv_net(13, kind)
    x, y = inputs(13, 6)
    threat = ThreatModel("Linf", 0.15)
    roomy = certify(model, x, y, threat, method="crown", batch_size=6, max_memory_mb=1024)
    # A few rows per chunk (test_certify_crown checks one row per chunk), two batches.
    middle = certify(model, x, y, threat, method="crown", batch_size=3, max_memory_mb=0.05)
    alone = certify(model, x, y, threat, method="crown", batch_size=1, max_memory_mb=1024)
    assert roomy.lower is not None
    for other in (middle, alone):
        assert other.lower is not None
        torch.testing.assert_close(other.lower, roomy.lower, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("kind", [0, 1, 2])
def test_alpha_crown_bounds_are_the_same_at_any_budget_and_batch_size(kind: int) -> None:
    net = compile_network(conv_net(13, kind))
    x, y = inputs(13, 6)
    threat = ThreatModel("Linf", 0.15)
    roomy = alpha_mod.alpha_crown_margins(net, x, y, threat, iterations=5)
    # Few rows per chunk of full CROWN and few samples per group; then two batches.
    middle = alpha_mod.alpha_crown_margins(net, x, y, threat, iterations=5,
                                           chunk_floats=30_000)
    halves = torch.cat([alpha_mod.alpha_crown_margins(net, x[p], y[p], threat, iterations=5)
                        for p in (slice(0, 3), slice(3, 6))])
    # Equal up to rounding, made larger by Adam: kernels round differently at other
    # chunk sizes, and Adam's first step moves a slope by the full step size for any
    # nonzero gradient, so a gradient that rounds to zero in one run and not in the
    # other moves the bound by ~1e-4 (measured up to 3e-4 with one-row chunks).
    for other in (middle, halves):
        torch.testing.assert_close(other, roomy, rtol=1e-3, atol=1e-3)


def test_full_crown_chunks_stay_within_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    net = compile_network(conv_net(3, 0))
    x, y = inputs(3, 5)
    threat = ThreatModel("Linf", 0.2)
    budget = 20_000
    chunks: list[tuple[int, int]] = []  # (rows, floats of one row at its widest step)
    walk = crown_mod._walk

    def recording(net_, k, rows, pre):  # type: ignore[no-untyped-def]
        out = walk(net_, k, rows, pre)
        chunks.append((rows.coef.shape[0], out[1]))
        return out

    monkeypatch.setattr(crown_mod, "_walk", recording)
    with torch.no_grad():
        crown_mod.crown_margins(net, x, y, threat, chunk_floats=budget)
    assert sum(1 for rows, _ in chunks if rows > 1) > 2  # the budget split the rows
    # A chunk of one row may exceed the budget alone; larger chunks stay within it.
    assert all(rows == 1 or rows * widest * crown_mod.COPIES <= budget
               for rows, widest in chunks)


def test_alpha_crown_groups_fit_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    net = compile_network(conv_net(11, 0))
    x, y = inputs(11, 8)
    threat = ThreatModel("Linf", 0.2)
    sizes: list[int] = []
    problem = alpha_mod._Problem

    def recording(net_, x_, *rest):  # type: ignore[no-untyped-def]
        sizes.append(x_.shape[0])
        return problem(net_, x_, *rest)

    monkeypatch.setattr(alpha_mod, "_Problem", recording)
    with torch.no_grad():
        ibp = crown_mod.interval_bounds(net, x, threat)
        ref = crown_mod.crown_intermediate(net, x, threat, ibp)
        cost = alpha_mod.sample_cost(net, threat, ref, 3, x.dtype)
    budget = int(cost[:3].sum())  # room for about three samples
    alpha_mod.alpha_crown_margins(net, x, y, threat, iterations=2, chunk_floats=budget)
    assert sum(sizes) == 8 and len(sizes) >= 3
    start = 0
    for size in sizes:
        assert size == 1 or int(cost[start:start + size].sum()) <= budget
        start += size


def test_sample_groups_cover_every_sample_in_order() -> None:
    cost = torch.tensor([5, 1, 1, 9, 2, 2, 2])
    groups = sample_groups(cost, 6)
    assert groups == [slice(0, 2), slice(2, 3), slice(3, 4), slice(4, 7)]
    assert sample_groups(torch.tensor([], dtype=torch.long), 6) == []


def test_a_budget_of_nothing_is_refused_with_advice() -> None:
    model = conv_net(0, 2)
    x, y = inputs(0, 2)
    with pytest.raises(ConfigError, match="max_memory_mb must be > 0"):
        certify(model, x, y, ThreatModel("Linf", 0.1), method="crown", max_memory_mb=0)
    with pytest.raises(ConfigError, match="max_memory_mb"):
        budget_floats(-1.0)
    assert budget_floats(1.0) == 2**18  # float32: four bytes each
