"""Models given on the command line: ``--model`` resolved by :func:`load_any`.

This module reads Python files, ``--model path/to/model.py[:factory]``; the other
forms (TorchScript, ``torch.export``, ``package.module:callable``, RobustBench) are in
:mod:`bastion.zoo.formats`.

The file defines a factory (default name ``make_model``) that takes no arguments and
returns a ``torch.nn.Module`` mapping inputs in [0, 1] to logits. Weights come either
from the factory itself or from ``--checkpoint FILE`` (a ``state_dict`` saved with
``torch.save``), loaded with ``weights_only=True``. See docs/models.md.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from bastion.errors import ConfigError, InputError
from bastion.zoo import formats
from bastion.zoo.registry import load as load_registered
from bastion.zoo.registry import resolve as resolve_registered

DEFAULT_FACTORY = "make_model"


def is_path_spec(spec: str) -> bool:
    """Does ``--model`` name a Python file rather than a registry entry?"""
    return spec.split(":", 1)[0].endswith(".py")


def load_from_file(spec: str, checkpoint: Path | None = None) -> nn.Module:
    """Build the model that ``FILE.py[:factory]`` describes, then load ``checkpoint``."""
    file_part, _, factory_name = spec.partition(":")
    path = Path(file_part)
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    module_spec = importlib.util.spec_from_file_location(f"bastion_user_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: any error, reported with where it came from
        raise ConfigError(f"model file {path} failed to import: {_error(exc)}; fix it, or "
                          f"run `python {path}` to see the traceback") from exc
    factory_name = factory_name or DEFAULT_FACTORY
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ConfigError(f"{path} has no function {factory_name}(); define it to return the "
                          "model, or name another one with --model FILE.py:FUNCTION")
    try:
        model = factory()
    except Exception as exc:  # the user's code again
        raise ConfigError(f"{path}:{factory_name}() raised {_error(exc)}; it must build and "
                          "return the model without arguments") from exc
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{path}:{factory_name}() returned {type(model).__name__}, "
                          "not a torch.nn.Module")
    if checkpoint is not None:
        _load_checkpoint(model, checkpoint, f"{path}:{factory_name}()")
    return model.eval()


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


CHECKPOINT_HELP = ("a checkpoint must be a state_dict saved with "
                   "torch.save(model.state_dict(), FILE) (or a dict holding one under "
                   "'state_dict')")


def _load_checkpoint(model: nn.Module, checkpoint: Path, name: str) -> None:
    """Load a ``state_dict`` file into ``model``; InputError saying what a checkpoint
    must be when the file is anything else."""
    if not checkpoint.is_file():
        raise ConfigError(f"checkpoint {checkpoint} does not exist")
    if checkpoint.stat().st_size == 0:
        raise InputError(f"checkpoint {checkpoint} is empty; {CHECKPOINT_HELP}")
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for files it cannot unpickle
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"checkpoint {checkpoint} cannot be loaded as weights ({first}); "
                         f"a whole pickled model is refused, since unpickling runs code; "
                         f"{CHECKPOINT_HELP}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise InputError(f"checkpoint {checkpoint} holds a {type(state).__name__}, not a "
                         f"mapping of parameter names to tensors; {CHECKPOINT_HELP}")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"checkpoint {checkpoint} does not fit {name}: {exc}") from exc


#: file name endings that mark ``--model`` as a file even when it does not exist.
MODEL_SUFFIXES = (".pt", ".pth", ".pt2", ".ts", ".jit", ".ptl", ".zip", ".ckpt", ".bin")


def _names_a_file(spec: str) -> bool:
    return ":" not in spec and ("/" in spec or "\\" in spec or spec.endswith(MODEL_SUFFIXES)
                                or Path(spec).is_file())


def describe(spec: str) -> tuple[str, str]:
    """(kind, description) of ``--model spec`` for records, without loading it.

    Kinds: ``file`` (FILE.py), ``torchscript``, ``export``, ``callable``,
    ``robustbench``, or a zoo entry's own kind.
    """
    if spec.startswith(formats.ROBUSTBENCH_PREFIX):
        return "robustbench", "RobustBench model zoo"
    if is_path_spec(spec):
        return "file", "user model file"
    if formats.is_callable_spec(spec):
        return "callable", "user model from package.module:callable"
    if _names_a_file(spec):
        kind = formats.file_format(Path(spec)) if Path(spec).is_file() else "unknown"
        return kind, {"torchscript": "TorchScript file", "export": "torch.export archive"
                      }.get(kind, "user model file")
    entry = resolve_registered(spec)
    return entry.kind, entry.description


def load_any(spec: str, checkpoint: Path | None = None) -> nn.Module:
    """The model ``--model spec`` names, in eval mode on the CPU.

    ``spec`` is a zoo name, ``FILE.py[:factory]``, ``package.module:callable``, a
    TorchScript or ``torch.export`` file, or ``robustbench:DATASET/THREAT/NAME``
    (:mod:`bastion.zoo.formats`). ``checkpoint`` (a state_dict file) is loaded into
    models that Python code builds: FILE.py and package.module:callable.
    """
    if spec.startswith(formats.ROBUSTBENCH_PREFIX):
        _no_checkpoint(checkpoint, "a robustbench: model (RobustBench loads its own weights)")
        return formats.load_robustbench(spec)
    if is_path_spec(spec):
        return load_from_file(spec, checkpoint)
    if formats.is_callable_spec(spec):
        model, _ = formats.load_callable(spec)
        if checkpoint is not None:
            _load_checkpoint(model, checkpoint, spec)
        return model.eval()
    if _names_a_file(spec):
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"model file {path} does not exist (looked in {Path.cwd()}); "
                              "check the path, or pass a zoo name (bastion zoo list)")
        _no_checkpoint(checkpoint, f"{path}, a saved whole model")
        return formats.load_file(path)
    _no_checkpoint(checkpoint, f"the zoo model {spec!r}, which has its own weights")
    return load_registered(spec)


def _no_checkpoint(checkpoint: Path | None, what: str) -> None:
    if checkpoint is not None:
        raise ConfigError(f"--checkpoint does not apply to {what}; it loads a state_dict "
                          "into a model built by FILE.py[:factory] or package.module:factory")
