"""The classifier ``bastion serve-model`` answers with: loading, input checks, answers.

    served = load_served("mnist-smallcnn-std", defense="round:decimals=2", answer="topk:3")
    x = served.check([[0.0] * 784])          # (1, 1, 28, 28) tensor, or InputError
    served.answer(served.probabilities(x))   # {"top_k": [{"labels": [...], "probs": [...]}]}

Inputs are rows of ``C*H*W`` numbers in [0, 1] (an image flattened in C, H, W order).
The output defence (:func:`bastion.privacy.defenses.build_defense`) wraps the model, so
every answer mode reads the defended probabilities: ``label`` (the arg-max),
``topk:K`` (the K largest, classes and probabilities) or ``probs`` (the whole row).
This module imports torch and the classic half's model zoo; the guard service never
imports it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from bastion.errors import ConfigError, InputError

#: the input shape of a zoo entry's data set, (C, H, W)
DATASET_SHAPES: dict[str, tuple[int, int, int]] = {
    "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


@dataclass(frozen=True)
class Answer:
    """An answer mode: ``label``, ``topk`` (with ``k``) or ``probs``."""

    mode: str
    k: int = 1

    def __str__(self) -> str:
        return f"topk:{self.k}" if self.mode == "topk" else self.mode


def parse_answer(text: str) -> Answer:
    """``label``, ``topk:K`` (K >= 1) or ``probs``; ConfigError otherwise."""
    mode, _, k = text.partition(":")
    if mode in ("label", "probs") and not k:
        return Answer(mode)
    if mode == "topk" and k.isdigit() and int(k) >= 1:
        return Answer("topk", int(k))
    raise ConfigError(f"--answer must be label, topk:K (K >= 1) or probs, got {text!r}")


def parse_defense(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME[:key=value,...]`` -> (name, options); numbers become int or float."""
    name, _, rest = text.partition(":")
    options: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--defense options are key=value pairs separated by commas "
                              f"(e.g. round:decimals=2), got {part!r} in {text!r}")
        try:
            options[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() \
                else float(value)
        except ValueError:
            raise ConfigError(f"--defense option {key.strip()} needs a number, got "
                              f"{value!r}") from None
    return name.strip(), options


def parse_shape(text: str) -> tuple[int, int, int]:
    """``C,H,W`` positive integers; ConfigError otherwise."""
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(f"--input-shape is C,H,W (three positive integers, e.g. 1,28,28), "
                          f"got {text!r}")
    c, h, w = (int(p) for p in parts)
    return c, h, w


class ServedModel:
    """A defended classifier, its input shape (C, H, W), class count and answer mode."""

    def __init__(self, defended: nn.Module, shape: tuple[int, int, int], answer: Answer, *,
                 name: str = "model", defense: str = "none") -> None:
        self.defended = defended.eval()
        self.shape = shape
        self.size = math.prod(shape)
        self.answer_mode = answer
        self.name = name
        self.defense = defense
        with torch.no_grad():
            self.classes = int(self.defended(torch.zeros(1, *shape)).shape[1])
        if answer.mode == "topk" and answer.k > self.classes:
            raise ConfigError(f"--answer topk:{answer.k} asks for more classes than the "
                              f"model's {self.classes}")

    def check(self, rows: list[list[float]], max_batch: int) -> torch.Tensor:
        """Rows of ``C*H*W`` values in [0, 1] -> (N, C, H, W) float32; InputError saying
        what is expected otherwise."""
        expected = (f"'inputs' is a list of 1 to {max_batch} rows, each {self.size} "
                    f"numbers in [0, 1] (an image of shape {self.shape} flattened)")
        if not rows or len(rows) > max_batch:
            raise InputError(f"got {len(rows)} rows; {expected}")
        bad = next((i for i, r in enumerate(rows) if len(r) != self.size), None)
        if bad is not None:
            raise InputError(f"row {bad} has {len(rows[bad])} values; {expected}")
        x = np.asarray(rows, dtype=np.float32)
        outside = ~np.isfinite(x) | (x < 0) | (x > 1)
        if outside.any():
            i, j = (int(v) for v in np.argwhere(outside)[0])
            raise InputError(f"row {i}, value {j} is {rows[i][j]!r}, outside [0, 1]; "
                             f"{expected}")
        return torch.from_numpy(x).reshape(len(rows), *self.shape)

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """The defended model's (N, K) rows on (N, C, H, W) ``x``."""
        return self.defended(x)

    def answer(self, probs: torch.Tensor) -> dict[str, Any]:
        """The JSON answer for (N, K) defended rows, in the configured mode."""
        labels = probs.argmax(1)
        if self.answer_mode.mode == "label":
            return {"labels": labels.tolist()}
        if self.answer_mode.mode == "probs":
            return {"probs": probs.tolist()}
        values, index = probs.topk(self.answer_mode.k, dim=1)
        return {"top_k": [{"labels": i, "probs": v}
                          for i, v in zip(index.tolist(), values.tolist(), strict=True)]}

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "defense": self.defense, "answer": str(self.answer_mode),
                "input_shape": list(self.shape), "classes": self.classes}


def load_served(model: str, *, defense: str = "none", answer: str = "label",
                input_shape: str | None = None) -> ServedModel:
    """A zoo name or ``FILE.py[:factory]``, wrapped in ``defense``, answering ``answer``.

    The input shape comes from the zoo entry's data set; a model from a file needs
    ``input_shape`` (``C,H,W``).
    """
    from bastion.privacy.defenses import build_defense
    from bastion.zoo.registry import ALIASES, ENTRIES
    from bastion.zoo.user import is_path_spec, load_any

    mode = parse_answer(answer)
    name, options = parse_defense(defense)
    loaded = load_any(model)  # first: an unknown name says which names exist
    if input_shape is not None:
        shape = parse_shape(input_shape)
    elif is_path_spec(model):
        raise ConfigError(f"{model!r} is a file: give its input shape with --input-shape "
                          f"C,H,W (e.g. 1,28,28)")
    else:
        entry = ENTRIES.get(ALIASES.get(model, model))
        shape_of = DATASET_SHAPES.get(entry.dataset) if entry is not None else None
        if shape_of is None:
            raise ConfigError(f"the input shape of {model!r} is not known; give it with "
                              f"--input-shape C,H,W")
        shape = shape_of
    defended = build_defense(name, loaded, **options)
    return ServedModel(defended, shape, mode, name=model, defense=defense)
