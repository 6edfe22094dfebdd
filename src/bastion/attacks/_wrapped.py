"""Helpers for attacks that wrap another attack (:mod:`bastion.attacks.adaptive`).

- the inner attack is given as a registered name (``"pgd"``), an :class:`Attack`, or a
  JSON-able description ``{"name": "pgd", "steps": 40}``; :func:`describe_attack` turns any
  of them into the description, so ``get_params()`` stays JSON-able (the runner hashes it
  into its resume fingerprint) and still rebuilds the attack;
- user functions (BPDA's ``approx``/``preprocess``) are described as
  ``"package.module:function"`` and resolved back by import;
- successes are re-checked on the real model, and the global random state is seeded from
  the attack's generator so a randomized model gives the same numbers for the same seed.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

from bastion.attacks.base import Attack, is_success
from bastion.common import draws
from bastion.errors import ConfigError
from bastion.threat import ThreatModel

AttackSpec = str | Attack | Mapping[str, Any]
Transform = Callable[[torch.Tensor], torch.Tensor]


def build_attack(spec: AttackSpec, owner: str,
                 defaults: Mapping[str, Any] | None = None) -> Attack:
    """The attack ``spec`` stands for (an Attack is returned as is).

    ``defaults`` fill parameters that a name or description leaves out, where the
    attack takes them (EOT turns early stopping off this way).
    """
    from bastion.attacks import REGISTRY, make  # the registry imports this module's users

    if isinstance(spec, Attack):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        name = spec["name"]
        params = {k: v for k, v in spec.items() if k != "name"}
        cls = REGISTRY.get(name)
        if cls is not None:
            valid = set(inspect.signature(cls.__init__).parameters) - {"self"}
            unknown = sorted(set(params) - valid)
            if unknown:
                raise ConfigError(f"{owner}: attack {name!r} has no parameter "
                                  f"{', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
            params = {**{k: v for k, v in (defaults or {}).items() if k in valid}, **params}
        return make(name, **params)
    raise ConfigError(
        f"{owner}: attack must be a registered attack name (e.g. 'pgd'), an Attack "
        f"instance, or a description like {{'name': 'pgd', 'steps': 40}}; got {spec!r}")


def describe_attack(spec: AttackSpec) -> str | dict[str, Any]:
    """JSON-able form of ``spec`` that :func:`build_attack` turns back into the attack."""
    if isinstance(spec, Attack):
        return {"name": spec.name, **spec.get_params()}
    if isinstance(spec, Mapping):
        return dict(spec)
    return spec


def describe_callable(fn: Transform | str | None) -> str | None:
    """``"module:name"`` for an importable function, None for None, a string as is.

    Lambdas and closures get a ``"module:qualname"`` that cannot be imported back, other
    callables (e.g. an ``nn.Module``) their ``repr``; :func:`resolve_callable` refuses both,
    so a rebuilt attack says so instead of running something else.
    """
    if fn is None or isinstance(fn, str):
        return fn
    module = getattr(fn, "__module__", None)
    names = [n for n in (getattr(fn, "__qualname__", None), getattr(fn, "__name__", None))
             if isinstance(n, str)]
    if isinstance(module, str):
        for name in names:  # builtins such as torch.sin have an unimportable qualname
            if _lookup(module, name) is fn:
                return f"{module}:{name}"
        if inspect.isroutine(fn) and names:
            return f"{module}:{names[0]}"
    return repr(fn)


def _lookup(module: str, qualname: str) -> Any:
    """The object at ``module:qualname``, or None when there is none."""
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError):
        return None
    return obj


def resolve_callable(spec: Transform | str | None, what: str) -> Transform | None:
    """A callable from a callable or a ``"package.module:function"`` string."""
    if spec is None or callable(spec):
        return spec
    module, colon, qualname = str(spec).partition(":")
    hint = (f"{what} must be a function or 'package.module:function' naming one; "
            f"{spec!r} ")
    if not colon or not module or not qualname:
        raise ConfigError(hint + "is neither")
    obj = _lookup(module, qualname)
    if obj is None:
        raise ConfigError(hint + "could not be imported (a lambda or a local function "
                          "cannot be: pass the function itself)")
    if inspect.isclass(obj) or not callable(obj):
        raise ConfigError(hint + "names a class or a non-callable; name a function")
    return obj


def verify(forward: Callable[[torch.Tensor], torch.Tensor], x_adv: torch.Tensor,
           x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None,
           threat: ThreatModel) -> tuple[torch.Tensor, torch.Tensor]:
    """``x_adv`` (N, ...) inside the threat model, and (N,) bool success on one fresh
    forward of the real model there (for a randomized model: on that one draw).

    Rows outside the ball or the bounds (a bug in the inner attack) are projected back
    first; rows inside are left bit for bit as they are.
    """
    inside = threat.contains(x_adv, x)
    if not bool(inside.all()):
        keep = inside.view(-1, *([1] * (x.dim() - 1)))
        x_adv = torch.where(keep, x_adv, threat.project(x_adv, x))
    with torch.no_grad():
        logits = forward(x_adv)
    return x_adv.detach(), is_success(logits, y, target)


@contextmanager
def seeded_global_rng(generator: draws.Source) -> Iterator[None]:
    """Within the block, torch's global random state is seeded from ``generator`` (one
    draw); afterwards it is restored. Randomized models draw from the global state, so
    this makes an attack on them depend on the attack's seed alone."""
    if isinstance(generator, draws.SampleRandom):
        seed = generator.batch_seed()
    else:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator,
                                 device=generator.device))
    device = generator.device
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield
