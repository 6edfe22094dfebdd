"""The zoo's registry: named, ready-to-evaluate models.

Four kinds of entry:

- *bundled*: trained by bastion, weights shipped inside this package
  (``zoo/checkpoints/NAME.pt``) with a ``NAME.json`` card of how they were made;
  ``bastion zoo train NAME`` reproduces them.
- *package*: third-party weights read from an installed registry package.
- *broken*: a bundled checkpoint wrapped in a deliberately broken defense
  (:mod:`bastion.zoo.broken`): gradient masking to test diagnostics and adaptive attacks.
- *alias*: another name for an entry (``mnist-robust`` = the best robust MNIST model).

``load(name)`` returns the model in eval mode on the CPU.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bastion.data.base import package_dir
from bastion.errors import ConfigError, MissingDependencyError
from bastion.zoo import broken
from bastion.zoo.models import ARCHITECTURES

CHECKPOINTS = Path(__file__).parent / "checkpoints"


@dataclass(frozen=True)
class Entry:
    """One registered model.

    Attributes:
        name: registry name.
        arch: key of :data:`bastion.zoo.models.ARCHITECTURES`.
        dataset: the data set it was trained on (``bastion.data`` name).
        description: one line for ``bastion zoo list``.
        checkpoint: returns the path of the weights (raises if they are not installed).
        kind: ``"bundled"``, ``"package"`` or ``"broken"``.
        arch_kwargs: keyword arguments of the architecture.
        wrap: applied to the loaded ``arch`` model to give the registered one (the broken
            defenses), or None.
    """

    name: str
    arch: str
    dataset: str
    description: str
    checkpoint: Callable[[], Path]
    kind: str
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    wrap: Callable[[nn.Module], nn.Module] | None = None

    def info(self) -> dict[str, Any]:
        """Metadata recorded when the weights were made (bundled entries), else {}."""
        meta = CHECKPOINTS / f"{self.name}.json"
        return json.loads(meta.read_text()) if meta.exists() else {}


def _bundled(name: str) -> Callable[[], Path]:
    def path() -> Path:
        p = CHECKPOINTS / f"{name}.pt"
        if not p.exists():
            raise MissingDependencyError(
                f"bundled checkpoint {p} is missing; rebuild it with 'bastion zoo train {name}' "
                "or reinstall bastion"
            )
        return p
    return path


def _advertorch(file: str) -> Callable[[], Path]:
    def path() -> Path:
        folder = package_dir("advertorch_examples", "advertorch",
                             "pip install --no-deps advertorch==0.2.3")
        return folder / "trained_models" / file
    return path


ENTRIES: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry("mnist-smallcnn-std", "smallcnn", "mnist",
              "TRADES SmallCNN, standard training (bastion)", _bundled("mnist-smallcnn-std"),
              "bundled"),
        Entry("mnist-lenet5-pgd", "lenet5", "mnist",
              "LeNet5 layout, PGD adversarial training at Linf 0.3 (bastion)",
              _bundled("mnist-lenet5-pgd"), "bundled"),
        Entry("mnist-smallcnn-noise-0.25", "smallcnn", "mnist",
              "TRADES SmallCNN, Gaussian noise augmentation sigma 0.25: the base model of "
              "randomized smoothing (bastion)", _bundled("mnist-smallcnn-noise-0.25"),
              "bundled"),
        Entry("mnist-certified-0.1", "wong-small", "mnist",
              "Wong-Kolter small CNN, CROWN-IBP certified training at Linf 0.2 for testing at "
              "0.1 (bastion; python -m bastion.certify.recipe)",
              _bundled("mnist-certified-0.1"), "bundled"),
        Entry("mnist-certified-0.3", "wong-small", "mnist",
              "Wong-Kolter small CNN, CROWN-IBP certified training at Linf 0.4 (bastion; "
              "python -m bastion.certify.recipe)", _bundled("mnist-certified-0.3"),
              "bundled"),
        Entry("mnist-certified-cnn4-0.1", "cnn4", "mnist",
              "4-conv CNN, IBP certified training at Linf 0.2 for testing at 0.1 (bastion; "
              "bastion zoo train)", _bundled("mnist-certified-cnn4-0.1"), "bundled"),
        Entry("mnist-badnets", "lenet5", "mnist",
              "BACKDOORED ON PURPOSE (tests): LeNet5 layout trained on MNIST with a "
              "BadNets 3x3 patch planted in 10% of the samples, target class 0 (bastion)",
              _bundled("mnist-badnets"), "bundled"),
        Entry("advertorch-lenet5-std", "lenet5", "mnist",
              "advertorch's LeNet5, standard training", _advertorch("mnist_lenet5_clntrained.pt"),
              "package"),
        Entry("advertorch-lenet5-adv", "lenet5", "mnist",
              "advertorch's LeNet5, PGD adversarial training at Linf 0.3",
              _advertorch("mnist_lenet5_advtrained.pt"), "package"),
        # Broken on purpose, to test diagnostics and adaptive attacks (zoo/broken.py).
        Entry("broken-quantize", "smallcnn", "mnist",
              f"BROKEN ON PURPOSE (tests): mnist-smallcnn-std, {broken.QUANTIZE_LEVELS}-level "
              "input quantization; BPDA breaks it", _bundled("mnist-smallcnn-std"), "broken",
              wrap=broken.quantized),
        Entry("broken-random", "smallcnn", "mnist",
              "BROKEN ON PURPOSE (tests): mnist-smallcnn-std, random resize-pad + noise; "
              "PGD without early stop breaks it", _bundled("mnist-smallcnn-std"), "broken",
              wrap=broken.randomized),
        Entry("broken-saturate", "smallcnn", "mnist",
              f"BROKEN ON PURPOSE (tests): mnist-smallcnn-std, logits x {broken.SATURATE_SCALE:g}; "
              "margin/DLR loss or Square breaks it", _bundled("mnist-smallcnn-std"), "broken",
              wrap=broken.saturated),
    ]
}

#: Stable names for "the current best" of a kind; later trainers repoint them.
ALIASES: dict[str, str] = {"mnist-robust": "mnist-lenet5-pgd"}


def resolve(name: str) -> Entry:
    """The entry registered under ``name`` (following aliases)."""
    name = ALIASES.get(name, name)
    try:
        return ENTRIES[name]
    except KeyError:
        names = sorted([*ENTRIES, *ALIASES])
        raise ConfigError(
            f"unknown model {name!r}; registered models: {', '.join(names)}. "
            "For your own model pass FILE.py[:factory], package.module:factory, a "
            "TorchScript or torch.export file, or robustbench:DATASET/THREAT/NAME "
            "(docs/models.md)."
        ) from None


def build(arch: str, **kwargs: Any) -> nn.Module:
    """A fresh, untrained model of architecture ``arch``."""
    try:
        return ARCHITECTURES[arch](**kwargs)
    except KeyError:
        raise ConfigError(
            f"unknown architecture {arch!r}; available: {', '.join(ARCHITECTURES)}"
        ) from None


def build_for(arch: str, x: torch.Tensor, num_classes: int) -> nn.Module:
    """A fresh ``arch`` sized for inputs like ``x`` (N, C, H, W) and ``num_classes``
    outputs, in train mode; ConfigError when its layers cannot take that input shape
    (the MNIST layouts have fully connected layers sized for 28x28)."""
    kwargs: dict[str, Any] = {"in_channels": int(x.shape[1]), "num_classes": num_classes}
    if arch == "mlp":
        kwargs = {"in_features": int(x[0].numel()), "num_classes": num_classes}
    elif arch == "cifar-small" and x.dim() == 4:
        kwargs["size"] = int(x.shape[-1])
    try:
        model = build(arch, **kwargs)
        with torch.no_grad():
            model.eval()(x[:2])
    except RuntimeError as exc:  # a layer refused the shape
        raise ConfigError(
            f"architecture {arch!r} does not fit inputs of shape {tuple(x.shape[1:])} ({exc}); "
            "use cifar-small for 3x32x32 images (any side divisible by 4), the MNIST layouts "
            "(smallcnn, lenet5, wong-small) for 28x28, or mlp for any size") from None
    return model.train()


def load(name: str) -> nn.Module:
    """Registered model ``name`` with its weights, in eval mode, on the CPU."""
    entry = resolve(name)
    path = entry.checkpoint()
    if not path.exists():
        raise MissingDependencyError(f"checkpoint {path} for {name!r} is missing; reinstall "
                                     "the package that carries it")
    model = build(entry.arch, **entry.arch_kwargs)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    if entry.wrap is not None:
        model = entry.wrap(model)
    return model.eval()


def names() -> list[str]:
    return [*ENTRIES, *ALIASES]
