"""Checking a card against ``card.schema.json``.

``jsonschema`` (a dev extra) does the checking when it is installed. Without it, a small
interpreter of the keywords the schema actually uses gives the same verdicts for the
same schema file, so there is one source of truth either way. Errors name the field as
a JSON path (``$.entries[0].model.name``).
"""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from typing import Any

from bastion.errors import InputError

#: Keywords the fallback checker ignores: they annotate, they do not constrain.
_ANNOTATIONS = {"$schema", "$id", "title", "description", "format", "$defs"}


@cache
def load_schema() -> dict[str, Any]:
    """The card JSON Schema (draft 2020-12) shipped with the package."""
    text = resources.files("bastion.report").joinpath("card.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def invalid(path: str, problem: str) -> InputError:
    return InputError(f"invalid card field {path}: {problem}; "
                      "build cards with bastion.report.build_card or fix this field")


def to_plain(value: Any, path: str = "$") -> Any:
    """A copy of ``value`` made of JSON types only (tuples become lists).

    Raises InputError naming the field for non-finite floats, non-string keys and
    objects JSON cannot hold.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise invalid(f"{path}[{key!r}]", "keys must be strings")
            out[key] = to_plain(item, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [to_plain(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid(path, f"{value} is not a finite number")
    if value is None or isinstance(value, str | int | float):
        return value
    raise invalid(path, f"a {type(value).__name__} cannot be written to JSON")


def check_schema(card: dict[str, Any]) -> None:
    """Raise InputError naming the first field of ``card`` that breaks the schema."""
    schema = load_schema()
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import best_match
    except ImportError:
        _check(schema, card, "$", schema)
        return
    error = best_match(Draft202012Validator(schema).iter_errors(card))
    if error is None:
        return
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        raise invalid(f"{error.json_path}.{missing[0]}", "required field is missing")
    raise invalid(error.json_path, error.message)


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "integer": (int,),
    "number": (int, float), "boolean": (bool,),
}


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False  # JSON Schema keeps true/false apart from numbers
    return isinstance(value, _TYPES[name])


def _same(a: Any, b: Any) -> bool:
    return bool(a == b and isinstance(a, bool) == isinstance(b, bool))


def _check(schema: dict[str, Any], value: Any, path: str, root: dict[str, Any]) -> None:
    """Fallback checker for the subset of draft 2020-12 that card.schema.json uses."""
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise NotImplementedError(f"fallback checker resolves only local $defs, not {ref}")
        _check(root["$defs"][ref.removeprefix("#/$defs/")], value, path, root)
    if "const" in schema and not _same(value, schema["const"]):
        raise invalid(path, f"{value!r} was expected to be {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise invalid(path, f"{value!r} is not one of {schema['enum']!r}")
    kind = schema.get("type")
    if kind is not None and not _is_type(value, kind):
        raise invalid(path, f"{value!r} is not of type {kind!r}")
    if isinstance(value, dict):
        _check_object(schema, value, path, root)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            raise invalid(path, f"needs at least {schema['minItems']} item(s)")
        if len(value) > schema.get("maxItems", math.inf):
            raise invalid(path, f"allows at most {schema['maxItems']} item(s)")
        if "items" in schema:
            for i, item in enumerate(value):
                _check(schema["items"], item, f"{path}[{i}]", root)
    if _is_type(value, "number"):
        if value < schema.get("minimum", -math.inf):
            raise invalid(path, f"{value!r} is less than the minimum of {schema['minimum']}")
        if value > schema.get("maximum", math.inf):
            raise invalid(path, f"{value!r} is greater than the maximum of {schema['maximum']}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        raise invalid(path, f"{value!r} is too short")
    unknown = set(schema) - _ANNOTATIONS - {
        "$ref", "const", "enum", "type", "required", "properties", "additionalProperties",
        "minProperties", "items", "minItems", "maxItems", "minimum", "maximum", "minLength"}
    if unknown:
        raise NotImplementedError(f"fallback checker does not know {sorted(unknown)}")


def _check_object(schema: dict[str, Any], value: dict[str, Any], path: str,
                  root: dict[str, Any]) -> None:
    for key in schema.get("required", []):
        if key not in value:
            raise invalid(f"{path}.{key}", "required field is missing")
    if len(value) < schema.get("minProperties", 0):
        raise invalid(path, f"needs at least {schema['minProperties']} properties")
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            _check(properties[key], item, f"{path}.{key}", root)
        elif extra is False:
            raise invalid(f"{path}.{key}", "is not an allowed field")
        elif isinstance(extra, dict):
            _check(extra, item, f"{path}.{key}", root)
