"""The frozen inference copy Square queries: used when it is the same function, refused
when it might not be, rebuilt when the weights change."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bastion import ThreatModel
from bastion.attacks import Square
from bastion.attacks._inference import inference_model


def conv_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 4 * 4, 3)).eval()


class Noisy(nn.Module):
    """A randomized model: its two passes on the same input differ."""

    def __init__(self) -> None:
        super().__init__()
        self.net = conv_net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x + 0.1 * torch.randn_like(x))


class BatchBranch(nn.Module):
    """Computes something else for a single input: a trace would bake in one branch."""

    def __init__(self) -> None:
        super().__init__()
        self.net = conv_net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out if x.shape[0] > 1 else -out


def test_frozen_copy_gives_the_same_logits_and_is_cached() -> None:
    model, x = conv_net(), torch.rand(8, 1, 8, 8)
    fast = inference_model(model, x)
    assert fast is not model
    with torch.no_grad():
        for batch in (x, x[:3], torch.rand(20, 1, 8, 8)):
            assert torch.allclose(fast(batch), model(batch), atol=1e-5)
    assert inference_model(model, x) is fast


def test_rebuilt_after_the_weights_change_in_place() -> None:
    model, x = conv_net(), torch.rand(8, 1, 8, 8)
    fast = inference_model(model, x)
    with torch.no_grad():
        model[0].weight.mul_(2.0)
        again = inference_model(model, x)
        assert again is not fast
        assert torch.allclose(again(x), model(x), atol=1e-5)


@pytest.mark.parametrize("make", [Noisy, BatchBranch])
def test_refused_for_models_a_trace_could_misrepresent(make: type[nn.Module]) -> None:
    model = make().eval()
    assert inference_model(model, torch.rand(8, 1, 8, 8)) is model


def test_refused_in_training_mode_without_conv_or_when_turned_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.rand(8, 1, 8, 8)
    training = conv_net().train()
    assert inference_model(training, x) is training
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    assert inference_model(mlp, x) is mlp
    monkeypatch.setenv("BASTION_FREEZE", "0")
    model = conv_net(1)
    assert inference_model(model, x) is model


def test_square_finds_the_same_points_with_and_without_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = conv_net(2)
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = model(x).argmax(1)
    threat = ThreatModel("Linf", 0.1)
    runs = []
    for flag in ("1", "0"):
        monkeypatch.setenv("BASTION_FREEZE", flag)
        runs.append(Square(n_queries=60).run(model, x, y, threat,
                                             generator=torch.Generator().manual_seed(0)))
    assert torch.equal(runs[0].success, runs[1].success)
    assert torch.allclose(runs[0].x_adv, runs[1].x_adv, atol=1e-6)
    assert runs[0].passes.to_dict() == runs[1].passes.to_dict()


class Counting(nn.Module):
    """Counts the samples that reach its own forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += int(x.shape[0])
        out: torch.Tensor = self.model(x)
        return out


def test_fab_and_square_passes_are_the_models_plus_the_copys() -> None:
    from bastion.attacks import FAB
    from bastion.attacks._inference import frozen_forward_passes

    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    for attack in (FAB(steps=5, n_target_classes=2), Square(n_queries=20)):
        model = Counting(conv_net()).eval()
        with torch.no_grad():
            y = model.model(x).argmax(1)
        result = attack.run(model, x, y, ThreatModel("Linf", 0.05))
        copied = frozen_forward_passes(model)
        assert copied > 0  # the copy answered some of the gradient-free passes
        # every pass counted once: by the model's forward (probes excluded) or the copy
        assert result.passes.forward <= model.seen + copied
        assert result.passes.forward >= copied
