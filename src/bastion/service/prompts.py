"""The text of a chat request that the input pipeline scans.

The client controls the whole conversation, so an injection can sit in any message it
sends: every role (compared case-insensitively), the ``content`` string or each of its
parts, the message's ``name`` and any other text field of the message (an assistant
turn's tool-call arguments, a ``tool_call_id``). ``role_scan`` in the service config says
per role whether its text gets every input layer (``full``), the rule layers only
(``rules``) or none (``skip``). Content parts are read by type:

* ``text``, ``input_text``: their ``text``;
* media (``image_url``, ``input_image``, ``input_audio``, ``file``, ``image``): not
  text, not scanned (the guard reads text only);
* any other type: every string in the part except its ``type``, scanned as text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from bastion.service.answers import leaves

MEDIA_PARTS = frozenset({"image_url", "input_image", "input_audio", "file", "image"})
TEXT_PARTS = frozenset({"text", "input_text"})


def _part_texts(part: Any) -> Iterator[str]:
    if not isinstance(part, dict):
        yield from (str(v) for _, v in leaves(part))
        return
    kind = part.get("type")
    if kind in MEDIA_PARTS:
        return
    if kind in TEXT_PARTS:
        yield from (str(v) for _, v in leaves(part.get("text")))
        return
    yield from (str(v) for path, v in leaves(part) if path != ("type",))


def message_texts(message: dict[str, Any]) -> Iterator[str]:
    """Every text of one message (a dict as the client sent it), ``role`` excepted."""
    content = message.get("content")
    if isinstance(content, list):
        for part in content:
            yield from _part_texts(part)
    elif content is not None:
        yield str(content)
    for _path, value in leaves({k: v for k, v in message.items()
                               if k not in ("role", "content")}):
        if isinstance(value, str):
            yield value


def prompt_texts(messages: Iterable[dict[str, Any]],
                 role_scan: dict[str, str]) -> dict[str, str]:
    """The prompt per scan mode (``full``, ``rules``): the texts of the messages whose
    role maps to it in ``role_scan`` (case-folded; ``"*"`` for roles not named),
    blank-line separated."""
    texts: dict[str, list[str]] = {"full": [], "rules": [], "skip": []}
    for m in messages:
        role = str(m.get("role", "")).casefold()
        mode = role_scan.get(role, role_scan.get("*", "full"))
        texts[mode].extend(t for t in message_texts(m) if t)
    return {mode: "\n\n".join(texts[mode]) for mode in ("full", "rules")}


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last ``user`` message (any case): the output scan's prompt."""
    for m in reversed(messages):
        if str(m.get("role", "")).casefold() == "user":
            return "\n".join(t for t in message_texts(m) if t)
    return ""
