"""The application under test, from a YAML file: ``load_app(path)``.

The file is a mapping with the fields of :class:`~bastion.redteam.base.AppConfig`:

    name: shop-support              # optional, a label for reports
    system_prompt: "You are ... The access code is ZEBRA-7741 ..."
    canary: "ZEBRA-7741"            # must appear in system_prompt
    documents: ["Returns: ...", "Customer record ..."]   # optional, retrieved passages
    tools: []                       # optional, OpenAI "tools" entries (mappings)

``load_app(None)`` loads the built-in ``data/app.yaml``: a customer-support assistant
for an online shop with a canary in its system prompt and three documents, one holding a
fictitious customer's email, phone, test card number and address.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bastion.errors import ConfigError
from bastion.extras import missing
from bastion.redteam.base import AppConfig

DEFAULT_APP = Path(__file__).parent / "data" / "app.yaml"
_FIELDS = ("name", "system_prompt", "canary", "documents", "tools")


def load_app(path: str | Path | None = None) -> AppConfig:
    """The :class:`AppConfig` in the YAML file ``path`` (the built-in one when None).

    Raises:
        ConfigError: the file is missing, is not YAML, or a field is absent, of the
            wrong type or unknown (the message names the field and the file).
    """
    try:
        import yaml
    except ModuleNotFoundError as exc:
        raise missing(exc, "reading an application config") from exc
    where = Path(path) if path is not None else DEFAULT_APP
    try:
        data = yaml.safe_load(where.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the application config {where}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from None
    return app_from_dict(data, str(where))


def app_from_dict(data: Any, where: str = "the application config") -> AppConfig:
    """An :class:`AppConfig` from a parsed mapping, checking each field (see the module
    docstring for the layout)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping with the fields "
                          f"{', '.join(_FIELDS)}; got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; the fields are "
                          f"{', '.join(_FIELDS)}")
    for key in ("system_prompt", "canary"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ConfigError(f"{where}: field {key!r} must be a non-empty string")
    name = data.get("name", "app")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: field 'name' must be a non-empty string")
    documents = _list(data, "documents", str, where)
    tools = _list(data, "tools", dict, where)
    try:
        return AppConfig(system_prompt=data["system_prompt"], canary=data["canary"],
                         documents=tuple(documents), tools=tuple(tools), name=name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _list(data: dict[str, Any], key: str, kind: type, where: str) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise ConfigError(f"{where}: field {key!r} must be a list of "
                          f"{'strings' if kind is str else 'mappings'}")
    return value
