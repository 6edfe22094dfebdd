"""Attacks from text: ``NAME[:key=value,key=value]`` as given to ``--attack``.

Generic over :data:`bastion.attacks.REGISTRY`: the keys an attack accepts are its
constructor's keyword arguments, so a newly registered attack is configurable from the
command line without changes here. Examples: ``pgd``, ``pgd:loss=margin,restarts=5``,
``square:n_queries=1000``, ``autoattack:version=plus``.

Attacks that wrap another attack (EOT, BPDA: classes with an ``inner_param``) take the
inner one by registered name, and keys they do not take themselves go to it, as do the
shared options: ``eot:attack=pgd,draws=10,steps=20`` is EOT over draws of 10 around
PGD-20, labelled ``eot-10-pgd-20``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from bastion import attacks as registry
from bastion.attacks.base import Attack
from bastion.errors import ConfigError

#: Options that apply to every attack taking a parameter of the same name.
SHARED_OPTIONS = ("steps", "restarts", "step_size")


def parse_attack(text: str) -> tuple[str, dict[str, Any]]:
    """``"square:n_queries=1000,p_init=0.8"`` -> ``("square", {"n_queries": 1000, ...})``.

    Values become bool (``true``/``false``), None (``none``), int, float, or else stay
    strings.
    """
    name, _, rest = text.partition(":")
    params: dict[str, Any] = {}
    for item in rest.split(",") if rest.strip() else []:
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not key:
            raise ConfigError(f"attack option {item!r} in {text!r} is not key=value; "
                              "write e.g. --attack square:n_queries=1000,p_init=0.8")
        if key in params:
            raise ConfigError(f"attack option {key!r} is given twice in {text!r}")
        params[key] = parse_value(value)
    return name.strip(), params


def parse_value(text: str) -> bool | int | float | str | None:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def constructor_defaults(cls: type[Attack]) -> dict[str, Any]:
    """Keyword arguments of ``cls``'s constructor and their defaults."""
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind in kinds}


def build_attacks(texts: Sequence[str], shared: Mapping[str, Any]) -> dict[str, Attack]:
    """Attacks from ``NAME[:key=value,...]`` texts, keyed by display label.

    Args:
        texts: one per attack, e.g. ``("fgsm", "pgd:loss=margin", "square:n_queries=1000")``.
        shared: options for every attack whose constructor has a parameter of that name
            (``{"steps": 20}`` from --steps); an attack's own ``key=value`` wins.

    Raises:
        ConfigError: an unknown attack or key (listing the valid ones), a value of the
            wrong type, or a shared option that no attack takes.
    """
    used: set[str] = set()
    built: dict[str, Attack] = {}
    for text in texts:
        name, given = parse_attack(text)
        if name not in registry.REGISTRY:
            registry.make(name)  # raises ConfigError listing the registered names
        attack = registry.make(name, **_params(name, given, shared, used))
        label, k = attack_label(name, attack), 2
        while label in built:
            label, k = f"{attack_label(name, attack)}-{k}", k + 1
        built[label] = attack
    unused = [k for k in shared if k not in used]
    if unused:
        option = "--" + unused[0].replace("_", "-")
        raise ConfigError(f"{option} was given but none of the attacks "
                          f"({', '.join(texts)}) takes {unused[0]!r}")
    return built


def _params(name: str, given: dict[str, Any], shared: Mapping[str, Any],
            used: set[str], outer: tuple[str, ...] = ()) -> dict[str, Any]:
    """Checked constructor arguments of registered attack ``name`` from the ``given`` keys
    and the ``shared`` options it takes (recorded in ``used``). For a wrapper whose inner
    attack is a registered name, the keys it does not take build the inner attack."""
    valid = constructor_defaults(registry.REGISTRY[name])
    params = {k: v for k, v in shared.items() if k in valid}
    used |= set(params)
    params.update({k: _coerce(name, k, v, valid[k]) for k, v in given.items() if k in valid})
    rest = {k: v for k, v in given.items() if k not in valid}
    inner_key = getattr(registry.REGISTRY[name], "inner_param", None)
    inner = params.get(inner_key, valid.get(inner_key)) if inner_key else None
    if isinstance(inner, str) and inner_key:
        if inner not in registry.REGISTRY:
            registry.make(inner)  # raises ConfigError listing the registered names
        inner_params = _params(inner, rest, shared, used, (name, *outer))
        if inner_params:
            params[inner_key] = {"name": inner, **inner_params}
        return params
    if rest:
        where = f" (inside {' inside '.join(outer)})" if outer else ""
        raise ConfigError(f"attack {name!r}{where} has no parameter {', '.join(sorted(rest))}; "
                          f"valid keys: {', '.join(valid) or 'none'}")
    return params


def attack_label(name: str, attack: Attack) -> str:
    """Display label: the registry name plus the values of the attack class's
    ``label_params`` (default ``("steps",)``) that it has, e.g. ``pgd-40``, ``square``;
    a wrapper's label ends with its inner attack's (``bpda-pgd-40``).

    Other parameters stay out of the label, so a card's columns keep their names when a
    detail changes; every parameter is in the evaluation's ``params``.
    """
    keys = getattr(type(attack), "label_params", ("steps",))
    params = attack.get_params()
    parts = [name, *(str(params[k]) for k in keys if params.get(k) is not None)]
    inner_attack = getattr(attack, "inner_attack", None)
    if callable(inner_attack):  # a wrapper: eot-10-pgd-40
        inner = inner_attack()
        parts.append(attack_label(inner.name, inner))
    return "-".join(parts)


def _coerce(attack: str, key: str, value: Any, default: Any) -> Any:
    """Check a value against the type of the parameter's default (when it has one)."""
    if isinstance(default, bool) and not isinstance(value, bool):
        raise ConfigError(f"{attack}:{key} takes true or false, got {value!r}")
    if isinstance(default, float) and type(value) is int:
        return float(value)
    if type(default) is int and type(value) is not int:
        raise ConfigError(f"{attack}:{key} takes an integer, got {value!r}")
    return value
