"""Certify's bound methods back off on out-of-memory and keep every bound."""

from __future__ import annotations

import pytest
import torch
from tests.conftest import tiny_mlp

import bastion.certify.api as api
from bastion.certify.api import certify
from bastion.errors import BastionWarning
from bastion.threat import ThreatModel


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError("CUDA out of memory"),
                                   RuntimeError("MPS backend out of memory")],
                         ids=["cuda", "runtime"])
@pytest.mark.parametrize("method", [m for m in api.METHODS if m != "smoothing"])
def test_bounds_survive_an_out_of_memory_error(monkeypatch: pytest.MonkeyPatch,
                                               error: Exception, method: str) -> None:
    model = tiny_mlp(hidden=16)
    x = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    y = model(x).argmax(1)
    threat = ThreatModel("Linf", 0.01)
    want = certify(model, x, y, threat, method=method, batch_size=16)
    real = api.margin_bounds
    calls: list[int] = []

    def flaky(net, xb, *args, **kwargs):
        calls.append(xb.shape[0])
        if len(calls) > 1 and xb.shape[0] > 4:  # the first batch fits, then memory runs out
            raise error
        return real(net, xb, *args, **kwargs)

    monkeypatch.setattr(api, "margin_bounds", flaky)
    with pytest.warns(BastionWarning) as caught:
        got = certify(model, x, y, threat, method=method, batch_size=16)
    assert "going on at batch size 3" in str(caught[-1].message)
    assert calls[:4] == [16, 14, 7, 3]  # the last batch (14) is halved, then 7
    assert torch.equal(got.certified, want.certified)
    torch.testing.assert_close(got.lower, want.lower, atol=1e-5, rtol=0)
    assert bool(want.certified.any())
