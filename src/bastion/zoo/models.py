"""Model definitions for the zoo. Inputs are NCHW images in [0, 1]; outputs are logits.

Each layout follows the paper or project it is named after, written from the published
layer list (no code copied):

- :class:`MLP`: fully connected, ReLU, for quick experiments.
- :class:`SmallCNN`: the MNIST network of the TRADES paper (Zhang et al., 2019):
  conv32-conv32-pool-conv64-conv64-pool-fc200-fc200-fc10.
- :class:`WongSmall`: the small MNIST network of Wong & Kolter (2018):
  conv16 4x4/2 - conv32 4x4/2 - fc100 - fc10.
- :class:`LeNet5`: advertorch's MNIST LeNet5 layout: conv32 3x3 pad 1 - maxpool 2 -
  conv64 3x3 pad 1 - maxpool 2 - fc200 - fc10. Parameter names match advertorch's
  checkpoints (``conv1``, ``conv2``, ``linear1``, ``linear2``) so they load directly.
- :class:`CifarSmall`: a small CIFAR-shaped CNN of bastion's own (3x32x32 -> 10 logits),
  conv16 3x3 - conv32 4x4/2 - conv32 4x4/2 - fc100 - fc10, plain Conv/ReLU/Linear so the
  certifiers (IBP, CROWN) take it; trains on a CPU in seconds.
- :class:`Cnn4`: a 4-conv MNIST network of bastion's own for certified training, a
  narrow cousin of the CROWN-IBP paper's "DM-large": conv8 3x3 - conv16 4x4/2 -
  conv16 3x3 - conv32 4x4/2 - fc100 - fc10 (171k parameters).
"""

from __future__ import annotations

import torch
from torch import nn

from bastion.errors import ConfigError


class MLP(nn.Module):
    """Flatten, then ``hidden`` ReLU layers, then a linear classifier."""

    def __init__(self, in_features: int = 784, hidden: tuple[int, ...] = (256, 256),
                 num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    """TRADES' MNIST CNN: (N, 1, 28, 28) -> (N, 10). Dropout 0.5 before the last fc layers."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, drop: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(),
            nn.Conv2d(32, 32, 3), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(),
            nn.Conv2d(64, 64, 3), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 200), nn.ReLU(), nn.Dropout(drop),
            nn.Linear(200, 200), nn.ReLU(),
            nn.Linear(200, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class WongSmall(nn.Module):
    """Wong & Kolter's small MNIST net: (N, 1, 28, 28) -> (N, 10)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 16, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 100), nn.ReLU(),
            nn.Linear(100, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LeNet5(nn.Module):
    """advertorch's MNIST LeNet5 layout: (N, 1, 28, 28) -> (N, 10)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.linear1 = nn.Linear(7 * 7 * 64, 200)
        self.linear2 = nn.Linear(200, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        out = torch.max_pool2d(torch.relu(self.conv2(out)), 2)
        out = torch.relu(self.linear1(out.flatten(1)))
        return self.linear2(out)


class CifarSmall(nn.Module):
    """A small CIFAR-shaped CNN: (N, 3, 32, 32) -> (N, 10); any H, W divisible by 4."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, size: int = 32) -> None:
        super().__init__()
        if size % 4:
            raise ConfigError(f"cifar-small needs square images with a side divisible by 4, "
                              f"got side {size}; resize them (--resize) or use mlp")
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * (size // 4) ** 2, 100), nn.ReLU(),
            nn.Linear(100, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Cnn4(nn.Module):
    """Four conv layers then two linear: (N, 1, 28, 28) -> (N, 10); Conv/ReLU/Linear only,
    so every certifier takes it."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 100), nn.ReLU(),
            nn.Linear(100, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "mlp": MLP,
    "smallcnn": SmallCNN,
    "wong-small": WongSmall,
    "lenet5": LeNet5,
    "cifar-small": CifarSmall,
    "cnn4": Cnn4,
}
