"""Model files and references beyond the zoo, for ``--model``.

- a TorchScript file (``torch.jit.save``), recognised by its content: a zip archive
  with ``constants.pkl`` or a ``code/`` folder, whatever the file is called;
- a ``torch.export`` archive (``torch.export.save``, usually ``.pt2``), recognised by
  the ``archive_format`` entry of its zip, loaded with ``torch.export.load(f).module()``;
- ``package.module:callable`` (the module imported from the current directory or
  ``sys.path``): called without arguments to build the model, or an ``nn.Module``
  attribute taken as it is;
- ``robustbench:DATASET/THREAT/NAME``: RobustBench's model zoo, through its
  ``load_model`` (the package must be installed and the weights are downloaded).

Each loader returns the model in eval mode on the CPU, and raises a ConfigError,
InputError or MissingDependencyError that says what was tried and what to do.
"""

from __future__ import annotations

import importlib
import sys
import zipfile
from pathlib import Path

import torch
from torch import nn

from bastion.errors import ConfigError, InputError, MissingDependencyError

ROBUSTBENCH_PREFIX = "robustbench:"
ROBUSTBENCH_INSTALL = ("pip install git+https://github.com/RobustBench/robustbench.git "
                       "(it is not on PyPI, and it downloads each model's weights on first "
                       "use, so it needs the network)")
EXPORT_HOW = ("export the model with a dynamic batch dimension: torch.export.export(model, "
              "(x,), dynamic_shapes={'x': {0: torch.export.Dim('batch')}}) and save it with "
              "torch.export.save")


def file_format(path: Path) -> str:
    """What a model file holds, judged by its content: ``"torchscript"``, ``"export"``,
    ``"weights"`` (a ``torch.save`` archive: a state_dict or a pickled model) or
    ``"unknown"``."""
    if not zipfile.is_zipfile(path):
        return "unknown"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    # Entries sit under one top folder named after the file when it was written.
    tails = {name.split("/", 1)[-1] for name in names}
    if "archive_format" in tails:
        return "export"
    if "constants.pkl" in tails or any(t.startswith("code/") for t in tails):
        return "torchscript"
    if "data.pkl" in tails:
        return "weights"
    return "unknown"


def load_file(path: Path) -> nn.Module:
    """A TorchScript or ``torch.export`` file as an eval-mode module on the CPU."""
    kind = file_format(path)
    if kind == "torchscript":
        return load_torchscript(path)
    if kind == "export":
        return load_exported(path)
    if kind == "weights":
        raise InputError(
            f"{path} holds weights saved with torch.save, not a whole model bastion can run "
            "(a pickled model is refused: unpickling runs code). Give the architecture and "
            f"these weights: --model package.module:factory --checkpoint {path} (or "
            f"--model FILE.py:factory --checkpoint {path}); or save the model with "
            "torch.jit.save or torch.export.save")
    raise InputError(
        f"{path} is not a model file bastion can read; it reads TorchScript "
        "(torch.jit.save), torch.export archives (torch.export.save, .pt2), Python files "
        "(FILE.py[:factory]) and package.module:factory, with a state_dict as --checkpoint")


def load_torchscript(path: Path) -> nn.Module:
    """``torch.jit.load`` on the CPU, eval mode; InputError saying how to re-export."""
    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError and others for bad archives
        raise InputError(
            f"{path} looks like TorchScript but torch.jit.load failed ({_first_line(exc)}); "
            f"re-save it with torch.jit.save(torch.jit.script(model), FILE) under this torch "
            f"({torch.__version__})") from exc
    return model.eval()


class ExportedModel(nn.Module):
    """A ``torch.export`` program's module, made to behave like an ordinary one.

    The exported graph fixed train or eval behaviour when it was exported, and its
    module refuses ``.train()``/``.eval()``; this wrapper records the mode without
    passing it on, so ``model.eval()`` and ``nn.Sequential(norm, model)`` work.

    Shapes: whatever the export took, e.g. (N, C, H, W) -> (N, classes).
    """

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.graph = graph
        self.training = False

    def train(self, mode: bool = True) -> ExportedModel:
        self.training = mode  # the graph keeps the behaviour it was exported with
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)


def load_exported(path: Path) -> nn.Module:
    """``torch.export.load(path).module()`` wrapped in :class:`ExportedModel`.

    Refuses an export whose batch dimension is fixed: bastion runs batches of any size.
    """
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # several error types for archives of other torch versions
        raise InputError(f"{path} looks like a torch.export archive but torch.export.load "
                         f"failed ({_first_line(exc)}); {EXPORT_HOW} under this torch "
                         f"({torch.__version__})") from exc
    batch = _batch_dims(program)
    if any(isinstance(d, int) for d in batch):
        raise InputError(f"{path} was exported for batches of exactly {batch[0]} inputs; "
                         f"bastion evaluates batches of any size: {EXPORT_HOW}")
    return ExportedModel(program.module())


def _batch_dims(program: torch.export.ExportedProgram) -> list[object]:
    """The first dimension of each user input of ``program`` (an int when fixed)."""
    inputs = set(program.graph_signature.user_inputs)
    dims: list[object] = []
    for node in program.graph.nodes:
        value = node.meta.get("val") if node.op == "placeholder" else None
        if node.name in inputs and isinstance(value, torch.Tensor) and value.dim() > 0:
            dims.append(value.shape[0])
    return dims


def is_callable_spec(spec: str) -> bool:
    """Does ``--model`` read ``package.module:attribute``?"""
    module, sep, attr = spec.partition(":")
    return bool(sep) and _dotted(module) and _dotted(attr)


def _dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


def load_callable(spec: str) -> tuple[nn.Module, str]:
    """The module ``package.module:attribute`` names, and how it was obtained.

    The current directory is searched first, as ``python -c 'import x'`` does. A
    callable attribute is called without arguments; an ``nn.Module`` is taken as is.
    """
    module_name, _, attr_path = spec.partition(":")
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"--model {spec}: cannot import {module_name!r} ({exc}); run from "
                          "the folder that holds it, add it to PYTHONPATH, or pip install "
                          "the package") from exc
    except Exception as exc:  # the user's module failed while importing
        raise ConfigError(f"--model {spec}: importing {module_name!r} raised "
                          f"{_first_line(exc)}; fix the module first") from exc
    finally:
        if added:
            sys.path.remove(cwd)
    target: object = module
    for part in attr_path.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"--model {spec}: {module_name!r} has no attribute {attr_path!r}; "
                              "name a function or class that builds the model")
        target = getattr(target, part)
    if isinstance(target, nn.Module):
        return target, "module attribute"
    if not callable(target):
        raise ConfigError(f"--model {spec}: {attr_path} is a {type(target).__name__}, neither "
                          "an nn.Module nor a callable that returns one")
    try:
        model = target()
    except Exception as exc:  # the user's factory
        raise ConfigError(f"--model {spec}: {attr_path}() raised {_first_line(exc)}; it must "
                          "build the model without arguments (wrap it in a function of "
                          "your own to pass some)") from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(f"--model {spec}: {attr_path}() returned {type(model).__name__}, "
                          "not a torch.nn.Module")
    return model, "factory"


def parse_robustbench(spec: str) -> tuple[str, str, str]:
    """``robustbench:cifar10/Linf/Carmon2019Unlabeled`` -> (dataset, threat, name)."""
    parts = spec[len(ROBUSTBENCH_PREFIX):].split("/")
    if len(parts) != 3 or not all(parts):
        raise ConfigError(f"--model {spec}: write robustbench:DATASET/THREAT/NAME, e.g. "
                          "robustbench:cifar10/Linf/Carmon2019Unlabeled (dataset cifar10, "
                          "cifar100 or imagenet; threat Linf, L2 or corruptions)")
    dataset, threat, name = parts
    threats = {"linf": "Linf", "l2": "L2", "corruptions": "corruptions"}
    if threat.lower() not in threats:
        raise ConfigError(f"--model {spec}: threat {threat!r} is not one of Linf, L2, "
                          "corruptions")
    return dataset.lower(), threats[threat.lower()], name


def load_robustbench(spec: str, model_dir: Path | None = None) -> nn.Module:
    """RobustBench's model ``spec`` (it takes [0, 1] inputs; normalisation is inside).

    Needs the ``robustbench`` package and, the first time, the network to download the
    weights into ``model_dir`` (default ``./models``, RobustBench's own).
    """
    dataset, threat, name = parse_robustbench(spec)
    try:
        from robustbench.utils import load_model
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(f"--model {spec} needs the robustbench package, which is "
                                     f"not installed: {ROBUSTBENCH_INSTALL}") from exc
    try:
        model = load_model(model_name=name, dataset=dataset, threat_model=threat,
                           model_dir=str(model_dir or Path("models")))
    except Exception as exc:  # unknown names, no network, broken downloads
        raise ConfigError(f"--model {spec}: robustbench could not load it "
                          f"({_first_line(exc)}); check the name on robustbench.github.io "
                          "and that this machine can download the weights (the first load "
                          "needs the network)") from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(f"--model {spec}: robustbench returned {type(model).__name__}, "
                          "not a torch.nn.Module")
    return model.eval()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
