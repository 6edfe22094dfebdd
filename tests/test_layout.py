"""Channels-last during an evaluation: used when safe, refused when not, always undone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bastion import PGD, ThreatModel, evaluate
from bastion.evaluation.layout import channels_last, wanted


def conv_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 4 * 4, 3)).eval()


class Viewer(nn.Module):
    """Uses .view on a convolution output: fails on channels-last activations."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).view(x.shape[0], -1))


def test_used_when_safe_and_undone_after() -> None:
    model, x = conv_net(), torch.rand(8, 1, 8, 8)
    with torch.no_grad():
        before = model(x)
    with channels_last(model, x) as used:
        assert used
        assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            assert torch.allclose(model(x), before, atol=1e-5)
    assert model[0].weight.is_contiguous()  # back to the default layout
    with torch.no_grad():
        assert torch.equal(model(x), before)


def test_refused_for_view_models_for_mlps_and_when_turned_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.rand(4, 1, 8, 8)
    viewer = Viewer().eval()
    with channels_last(viewer, x) as used:  # the probe forward raises: left as it was
        assert not used
        assert viewer.conv.weight.is_contiguous()
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    assert not wanted(mlp, x)
    assert not wanted(conv_net(), torch.rand(4, 64))  # not images
    monkeypatch.setenv("BASTION_CHANNELS_LAST", "0")
    assert not wanted(conv_net(), x)


def test_a_model_already_channels_last_is_left_alone() -> None:
    model = conv_net().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    assert not wanted(model, torch.rand(2, 1, 8, 8))


def test_evaluate_gives_the_same_numbers_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    model = conv_net()
    with torch.no_grad():
        y = model(x).argmax(1)
    threat = ThreatModel("Linf", 0.1)
    fast = evaluate(model, (x, y), threat, [PGD(steps=10)], batch_size=16)
    assert model[0].weight.is_contiguous()
    monkeypatch.setenv("BASTION_CHANNELS_LAST", "0")
    plain = evaluate(model, (x, y), threat, [PGD(steps=10)], batch_size=16)
    assert fast.sweep == plain.sweep and fast.clean_accuracy == plain.clean_accuracy
