"""Policy files: which scanners guard prompts and answers, in what order, how strictly.

A policy is YAML (read with ``yaml.safe_load`` only)::

    fail_mode: closed        # or open: what a failed, late or unrun layer earns
    early_exit: true         # stop at the first block
    budget_ms: null          # milliseconds for each whole pipeline run; null = none
    input:                   # layers for prompts, in order
      - kind: sanitizer      # a registered scanner kind (bastion.guard.scanners.REGISTRY)
        name: clean          # optional instance name, default the kind
        threshold: 0.5       # optional, default the scanner's
        action: flag         # optional: flag, redact, review or block
        budget_ms: 5         # optional milliseconds for this layer
        # ...any other keyword argument the scanner's constructor accepts
    output: [...]            # layers for answers, same form

:func:`load_policy` builds the scanners and reports every mistake as a
:class:`~bastion.errors.ConfigError` that names the file, the layer and the fix.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from bastion.errors import ConfigError
from bastion.guard.base import ACTIONS, Scanner
from bastion.guard.pipeline import FAIL_MODES, Layer, Pipeline

#: top-level keys a policy file may hold.
TOP_KEYS: tuple[str, ...] = ("fail_mode", "early_exit", "budget_ms", "input", "output")
#: layer keys the pipeline consumes itself; the rest go to the scanner's constructor.
LAYER_KEYS: tuple[str, ...] = ("kind", "budget_ms")
DEFAULT_POLICY = "default_policy.yaml"


@dataclass(frozen=True)
class Policy:
    """A loaded policy: the two pipelines and where they came from.

    Attributes:
        input: the pipeline for prompts (``Guard.scan_input``).
        output: the pipeline for answers (``Guard.scan_output``).
        source: the file it was read from, or ``"<default>"`` / ``"<dict>"``.
    """

    input: Pipeline
    output: Pipeline
    source: str


def load_policy(path: str | Path | None = None) -> Policy:
    """Read a policy file; ``None`` reads the bundled default (``default_policy.yaml``).

    Raises:
        ConfigError: unreadable file, YAML syntax (with line and column), wrong types,
            unknown keys, scanner kinds or scanner parameters, bad thresholds or actions,
            duplicate instance names.
    """
    if path is None:
        source = "<default>"
        text = resources.files("bastion.guard").joinpath(DEFAULT_POLICY).read_text("utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read the policy file ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
    return policy_from_dict({} if data is None else data, source=source)


def policy_from_dict(data: Any, *, source: str = "<dict>") -> Policy:
    """Build a :class:`Policy` from already-parsed data (the YAML file's structure)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a policy is a mapping with keys {', '.join(TOP_KEYS)}; "
                          f"got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in TOP_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {', '.join(unknown)}; "
                          f"accepted: {', '.join(TOP_KEYS)}")
    fail_mode = data.get("fail_mode", "closed")
    if fail_mode not in FAIL_MODES:
        raise ConfigError(f"{source}: fail_mode must be one of {', '.join(FAIL_MODES)}, got "
                          f"{fail_mode!r}")
    early_exit = data.get("early_exit", True)
    if not isinstance(early_exit, bool):
        raise ConfigError(f"{source}: early_exit must be true or false, got {early_exit!r}")
    budget_ms = data.get("budget_ms")
    pipelines = {}
    for section in ("input", "output"):
        layers = _layers(data.get(section), section, source)
        try:
            pipelines[section] = Pipeline(layers, fail_mode=fail_mode, early_exit=early_exit,
                                          budget_ms=budget_ms)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {section}: {exc}") from None
    return Policy(input=pipelines["input"], output=pipelines["output"], source=source)


def _layers(items: Any, section: str, source: str) -> list[Layer]:
    """The layers of one section (``input`` or ``output``); ``None`` means no layers."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise ConfigError(f"{source}: {section} must be a list of layers (each starting "
                          f"'- kind: ...'), got {type(items).__name__}")
    return [_layer(item, f"{source}: {section} layer {i}", section)
            for i, item in enumerate(items, 1)]


def _layer(item: Any, where: str, section: str) -> Layer:
    """Build one layer from its mapping; ``where`` prefixes every error message."""
    from bastion.guard import scanners  # imported late: scanners pull in re2, models, ...

    if not isinstance(item, dict) or not isinstance(item.get("kind"), str):
        raise ConfigError(f"{where}: a layer is a mapping with a 'kind' (a scanner kind "
                          f"string), got {item!r}")
    kind = item["kind"]
    registry = scanners.REGISTRY
    if kind not in registry:
        known = ", ".join(sorted(registry)) or "none (no scanner is registered)"
        raise ConfigError(f"{where}: unknown scanner kind {kind!r}; known kinds: {known}")
    cls = registry[kind]
    if cls.direction not in ("both", section):
        raise ConfigError(f"{where}: kind {kind!r} scans {cls.direction}s; move it under "
                          f"{cls.direction}:")
    kwargs = {str(k): v for k, v in item.items() if k not in LAYER_KEYS}
    _check_params(cls, kwargs, where, kind)
    _check_common(kwargs, where)
    try:
        scanner = cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: kind {kind!r} refused its parameters: {exc}") from None
    try:
        scanner.validate()
        return Layer(scanner, budget_ms=item.get("budget_ms"))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_params(cls: type[Scanner], kwargs: dict[str, Any], where: str, kind: str) -> None:
    """Refuse parameters the scanner's constructor does not take, listing those it does."""
    params = inspect.signature(cls).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    accepted = sorted(p.name for p in params
                      if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                    inspect.Parameter.POSITIONAL_OR_KEYWORD))
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        listed = ", ".join([*LAYER_KEYS, *accepted])
        raise ConfigError(f"{where}: unknown parameter(s) {', '.join(unknown)} for kind "
                          f"{kind!r}; accepted: {listed}")


def _check_common(kwargs: dict[str, Any], where: str) -> None:
    """Type checks for the settings every scanner shares, before the constructor sees them."""
    name = kwargs.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ConfigError(f"{where}: name must be a non-empty string, got {name!r}")
    if "threshold" in kwargs:
        threshold = kwargs["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ConfigError(f"{where}: threshold must be a number in [0, 1], got "
                              f"{threshold!r}")
    action = kwargs.get("action")
    if action is not None and not isinstance(action, str):
        raise ConfigError(f"{where}: action must be one of {', '.join(ACTIONS)}, got "
                          f"{action!r}")
