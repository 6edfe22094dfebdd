"""The matrix-product input gradient of single-channel convolutions
(bastion.attacks._input_grad): the same gradients as PyTorch's kernel, only where it
applies, and the model left as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bastion.attacks._input_grad import input_grad_kernels, qualifies


def net(stride: int, padding: int, dilation: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, stride=stride, padding=padding, dilation=dilation), nn.ReLU(),
        nn.Conv2d(6, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.LazyLinear(3)).eval()


def gradients(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Input gradient and every parameter's gradient of the summed logits."""
    xr = x.clone().requires_grad_(True)
    params = list(model.parameters())
    grads = torch.autograd.grad(model(xr).square().sum(), [xr, *params])
    return grads[0], list(grads[1:])


@pytest.mark.parametrize(("stride", "padding", "dilation"),
                         [(1, 0, 1), (2, 1, 1), (2, 1, 2), (3, 2, 1)])
def test_same_input_and_weight_gradients_as_pytorch(stride: int, padding: int,
                                                    dilation: int) -> None:
    model = net(stride, padding, dilation)
    x = torch.rand(5, 1, 13, 11, generator=torch.Generator().manual_seed(1))
    model(x)  # materialize the lazy layer
    native, native_params = gradients(model, x)
    with input_grad_kernels(model):
        assert "forward" in model[0].__dict__  # the single-channel layer is rerouted
        assert "forward" not in model[2].__dict__  # six channels: PyTorch's kernel
        fold, fold_params = gradients(model, x)
    torch.testing.assert_close(fold, native, rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(fold_params, native_params, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_layers_are_restored_after_the_block_even_on_error() -> None:
    model = net(2, 1, 1)
    with pytest.raises(RuntimeError, match="inside"), input_grad_kernels(model):
        raise RuntimeError("inside")
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_turned_off_by_env_and_refused_for_other_layers(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    model = net(1, 0, 1)
    monkeypatch.setenv("BASTION_FOLD_GRAD", "0")
    with input_grad_kernels(model):
        assert "forward" not in model[0].__dict__
    assert qualifies(nn.Conv2d(1, 4, 3))
    assert not qualifies(nn.Conv2d(3, 4, 3))
    assert not qualifies(nn.Conv2d(1, 4, 3, padding="same"))
    assert not qualifies(nn.Conv2d(1, 4, 3, padding=1, padding_mode="reflect"))


def test_unbatched_input_takes_pytorchs_path() -> None:
    layer = nn.Conv2d(1, 2, 3)
    x = torch.rand(1, 6, 6)
    with input_grad_kernels(layer):
        out = layer(x)
    torch.testing.assert_close(out, nn.functional.conv2d(x, layer.weight, layer.bias))
