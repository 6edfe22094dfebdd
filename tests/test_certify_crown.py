"""Full CROWN by rows and patches: the same bounds as the dense reference, sound, and
independent of the batch size and of the chunk budget.

The random conv nets stack two or three convolutions (strides, padding, dilation,
groups, average and max pooling, batch norm) so the patch path is walked through every
layer kind it handles and converted to dense where it must be.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from bastion.certify import certify, compile_network, crown_margins, margin_spec
from bastion.certify.alpha import alpha_crown_margins
from bastion.certify.crown import exact_by_ibp
from bastion.errors import ConfigError
from bastion.threat import ThreatModel

CLASSES = 4


def conv_net(seed: int, kind: int) -> nn.Module:
    """A random conv net (N, 1, 8, 8) -> (N, 4); ``kind`` picks the layer mix."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == 0:
            layers: list[nn.Module] = [
                nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(4, 6, 3, padding=2, dilation=2), nn.BatchNorm2d(6), nn.ReLU(),
                nn.Conv2d(6, 6, 2, groups=2), nn.ReLU(), nn.Flatten(),
                nn.Linear(54, 8), nn.ReLU(), nn.Linear(8, CLASSES)]
        elif kind == 1:
            layers = [nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                      nn.Flatten(), nn.Linear(20, CLASSES)]
        else:
            layers = [nn.Conv2d(1, 4, 4, stride=2, padding=1), nn.ReLU(),
                      nn.Conv2d(4, 4, 4, stride=2, padding=1), nn.ReLU(),
                      nn.Conv2d(4, 3, 1), nn.ReLU(), nn.Flatten(), nn.Linear(12, CLASSES)]
        model = nn.Sequential(*layers)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
    return model.eval()


def inputs(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=gen), torch.randint(0, CLASSES, (n,), generator=gen)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), kind=st.integers(0, 2), norm=st.sampled_from(["Linf", "L2"]),
       eps=st.floats(0.02, 0.3))
def test_rows_and_patches_give_the_dense_reference_bounds(seed: int, kind: int, norm: str,
                                                         eps: float) -> None:
    model = conv_net(seed, kind)
    x, y = inputs(seed, 3)
    threat = ThreatModel(norm, eps if norm == "Linf" else 3 * eps)
    net = compile_network(model)
    with torch.no_grad():
        fast = crown_margins(net, x, y, threat)
        dense = crown_margins(net, x, y, threat, dense=True)
    torch.testing.assert_close(fast[0], dense[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast[1], dense[1], rtol=1e-4, atol=1e-4)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), kind=st.integers(0, 2), norm=st.sampled_from(["Linf", "L2"]))
def test_sampled_margins_stay_inside_full_crown_bounds_on_conv_nets(seed: int, kind: int,
                                                                    norm: str) -> None:
    model = conv_net(seed, kind)
    x, y = inputs(seed, 3)
    threat = ThreatModel(norm, 0.1 if norm == "Linf" else 0.4)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        lower, upper = crown_margins(compile_network(model), x, y, threat)
        for _ in range(30):
            point = threat.random_point(x, gen)
            margins = torch.einsum("nsk,nk->ns", margin_spec(y, CLASSES, x.dtype), model(point))
            assert bool((margins >= lower - 1e-4).all()), float((lower - margins).max())
            assert bool((margins <= upper + 1e-4).all()), float((margins - upper).max())


@pytest.mark.parametrize("kind", [0, 1, 2])
def test_bounds_do_not_depend_on_batch_size_or_chunk_budget(kind: int) -> None:
    model = conv_net(7, kind)
    x, y = inputs(7, 4)
    threat = ThreatModel("Linf", 0.15)
    net = compile_network(model)
    with torch.no_grad():
        together = crown_margins(net, x, y, threat)
        alone = [crown_margins(net, x[i:i + 1], y[i:i + 1], threat) for i in range(4)]
        one_row_chunks = crown_margins(net, x, y, threat, chunk_floats=1)
    torch.testing.assert_close(together[0], torch.cat([a[0] for a in alone]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(together[1], torch.cat([a[1] for a in alone]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(together[0], one_row_chunks[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(together[1], one_row_chunks[1], rtol=1e-5, atol=1e-5)


def test_first_relu_is_left_to_ibp_only_where_ibp_is_exact() -> None:
    net = compile_network(conv_net(0, 0))
    linf, l2 = ThreatModel("Linf", 0.1), ThreatModel("L2", 0.5)
    assert exact_by_ibp(net, 1, linf)  # one conv below: IBP is exact on a box
    assert not exact_by_ibp(net, 1, l2)  # CROWN's dual norm can beat the ball's box
    assert not exact_by_ibp(net, 4, linf)  # a ReLU below


def test_a_chunk_budget_below_one_float_is_refused() -> None:
    model = conv_net(0, 2)
    x, y = inputs(0, 2)
    with pytest.raises(ConfigError, match="chunk_floats"):
        crown_margins(compile_network(model), x, y, ThreatModel("Linf", 0.1), chunk_floats=0)


@pytest.mark.parametrize(("in_channels", "stride", "padding", "dilation", "groups", "size"), [
    (1, 2, 1, 1, 1, 8), (1, 2, 1, 1, 1, 9), (6, 2, 1, 1, 1, 9), (6, 1, 2, 2, 2, 8),
    (3, 3, 0, 1, 1, 10)])
def test_conv_backward_is_the_adjoint_of_the_conv(in_channels: int, stride: int, padding: int,
                                                  dilation: int, groups: int, size: int) -> None:
    # <A, conv(h) - b> = <A_in, h> for every h: the backward step is exact for an affine layer.
    gen = torch.Generator().manual_seed(in_channels + size)
    layer = nn.Conv2d(in_channels, 6, 3, stride, padding, dilation, groups)
    op = compile_network(nn.Sequential(layer)).ops[0]
    h = torch.randn(2, in_channels, size, size, generator=gen)
    with torch.no_grad():
        out = layer(h)
        a = torch.randn(2, 5, *out.shape[1:], generator=gen)
        a_in, bias = op.backward(a, h, h)
        lhs = torch.einsum("nschw,nchw->ns", a, out)
    torch.testing.assert_close(lhs, torch.einsum("nschw,nchw->ns", a_in, h) + bias,
                               rtol=1e-4, atol=1e-4)


def test_certify_lower_bounds_do_not_depend_on_the_upper_pass() -> None:
    model = conv_net(3, 2)
    x, y = inputs(3, 4)
    threat = ThreatModel("Linf", 0.1)
    net = compile_network(model)
    with torch.no_grad():
        both = crown_margins(net, x, y, threat)
        lower_only = crown_margins(net, x, y, threat, upper=False)
    torch.testing.assert_close(both[0], lower_only[0])
    assert bool(torch.isinf(lower_only[1]).all())


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), kind=st.integers(0, 2), norm=st.sampled_from(["Linf", "L2"]))
def test_alpha_crown_is_sound_and_never_looser_than_crown(seed: int, kind: int,
                                                          norm: str) -> None:
    model = conv_net(seed, kind)
    x, y = inputs(seed, 3)
    threat = ThreatModel(norm, 0.15 if norm == "Linf" else 0.6)
    net = compile_network(model)
    gen = torch.Generator().manual_seed(seed + 2)
    alpha = alpha_crown_margins(net, x, y, threat, iterations=8)
    with torch.no_grad():
        crown = crown_margins(net, x, y, threat)[0]
        assert bool((alpha >= crown - 1e-5).all()), float((crown - alpha).max())
        spec = margin_spec(y, CLASSES, x.dtype)
        for _ in range(30):
            margins = torch.einsum("nsk,nk->ns", spec, model(threat.random_point(x, gen)))
            assert bool((margins >= alpha - 1e-4).all()), float((alpha - margins).max())


def test_alpha_crown_tightens_crown_somewhere_and_certify_accepts_it() -> None:
    model = conv_net(11, 0)
    x, y = inputs(11, 8)
    threat = ThreatModel("Linf", 0.2)
    net = compile_network(model)
    with torch.no_grad():
        crown = crown_margins(net, x, y, threat)[0]
    alpha = alpha_crown_margins(net, x, y, threat, iterations=20)
    assert float((alpha - crown).max()) > 1e-3  # the slopes moved and the bound rose
    cert = certify(model, x, y, threat, method="alpha-crown", batch_size=3)
    assert cert.lower is not None and cert.lower.shape == (8, CLASSES - 1)
    with pytest.raises(ConfigError, match="iterations"):
        alpha_crown_margins(net, x, y, threat, iterations=-1)


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_alpha_crown_without_steps_is_full_crown(norm: str) -> None:
    # Every slope starts at CROWN's adaptive choice and every intermediate bound at full
    # CROWN's, so zero steps must reproduce full CROWN exactly.
    threat = ThreatModel(norm, 0.15 if norm == "Linf" else 0.6)
    for kind in range(3):
        model = conv_net(5, kind)
        x, y = inputs(5, 3)
        net = compile_network(model)
        with torch.no_grad():
            crown = crown_margins(net, x, y, threat)[0]
        torch.testing.assert_close(alpha_crown_margins(net, x, y, threat, iterations=0), crown,
                                   rtol=1e-5, atol=1e-5)


def test_alpha_crown_does_not_depend_on_the_batch() -> None:
    model = conv_net(7, 0)
    x, y = inputs(7, 4)
    threat = ThreatModel("Linf", 0.15)
    net = compile_network(model)
    together = alpha_crown_margins(net, x, y, threat, iterations=5)
    alone = torch.cat([alpha_crown_margins(net, x[i:i + 1], y[i:i + 1], threat, iterations=5)
                       for i in range(4)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-4)


def test_the_margin_bound_reaches_the_slopes_of_intermediate_bounds() -> None:
    from bastion.certify.alpha import _Problem
    from bastion.certify.bounds import interval_bounds
    from bastion.certify.crown import crown_intermediate

    model = conv_net(11, 0)
    x, y = inputs(11, 4)
    threat = ThreatModel("Linf", 0.2)
    net = compile_network(model)
    with torch.no_grad():
        ref = crown_intermediate(net, x, threat, interval_bounds(net, x, threat))
        problem = _Problem(net, x, y, threat, ref)
        problem.margins()  # makes the slopes
    intermediate = [s for k, slopes in problem.slopes.items() if k < len(net.ops)
                    for s in slopes.values()]
    assert intermediate, "the net should have unstable neurons below an unstable layer"
    for s in problem.parameters():
        s.requires_grad_()
    grads = torch.autograd.grad(problem.margins().sum(), intermediate, allow_unused=True)
    assert any(g is not None and bool((g != 0).any()) for g in grads)


@pytest.mark.slow
def test_no_sample_alpha_crown_certifies_is_broken_by_pgd_at_any_radius() -> None:
    from bastion.attacks import PGD

    certified = 0
    for kind in range(3):
        model = conv_net(20 + kind, kind)
        x, _ = inputs(20 + kind, 6)
        with torch.no_grad():
            y = model(x).argmax(1)
        for eps in (0.01, 0.03, 0.1, 0.2):
            threat = ThreatModel("Linf", eps)
            cert = certify(model, x, y, threat, method="alpha-crown")
            found = PGD(steps=20, loss="margin").run(model, x, y, threat,
                                                     generator=torch.Generator().manual_seed(0))
            assert not bool((cert.certified & found.success).any()), (kind, eps)
            certified += int(cert.certified.sum())
    assert certified > 0  # the check saw certified samples, not only empty sets
