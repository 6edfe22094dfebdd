"""The texts of an upstream answer: every string (and number) the client will receive.

An OpenAI-compatible answer carries model text in many places: each choice's
``message.content`` (a string or a list of parts), ``refusal``, ``reasoning_content``,
``tool_calls[*].function.name`` and ``.arguments``, the older ``function_call``, and
whatever fields a server adds. Rather than a list of known fields (which a new field
walks around), the proxy scans every leaf of the answer: strings as they are, numbers as
their digits (a card number can be a JSON number).

A whole answer is scanned once, as its leaves joined by line breaks (so a secret split
across two fields is still seen by layers that fold whitespace). Only when that verdict
is ``redact`` is each leaf scanned on its own and replaced by its sanitized text; then
the rebuilt answer is scanned again and, if anything is still found (a number cannot be
redacted in place, a secret split across fields has no single leaf to redact), the whole
answer is blocked: fail closed.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from bastion.guard import Guard

Path = tuple[str | int, ...]
#: choice fields dropped from a redacted answer: their tokens would spell the original text.
DROP_ON_REDACT = ("logprobs",)
#: verdicts that mean "something the client must not see is still there".
_FOUND = ("redact", "block")


def leaves(obj: Any, path: Path = ()) -> Iterator[tuple[Path, str | int | float]]:
    """Every string and number in a JSON value, with its path (booleans and nulls skip)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from leaves(value, (*path, str(key)))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from leaves(value, (*path, i))
    elif isinstance(obj, str | int | float) and not isinstance(obj, bool):
        yield path, obj


def answer_text(answer: dict[str, Any]) -> str:
    """The text the output pipeline scans: every leaf of ``answer``, one per line."""
    return "\n".join(str(value) for _, value in leaves(answer))


def _set(obj: Any, path: Path, value: Any) -> None:
    for step in path[:-1]:
        obj = obj[step]
    obj[path[-1]] = value


def redact_answer(guard: Guard, answer: dict[str, Any],
                  context: dict[str, Any]) -> dict[str, Any] | None:
    """``answer`` with every leaf redacted on its own; ``None`` when that cannot remove
    what the joined scan found (then the caller blocks).

    Args:
        guard: runs the output pipeline once per leaf (only on this rare path).
        context: ``prompt``, ``documents``, ``canary`` for the output scan.
    """
    out = copy.deepcopy(answer)
    for choice in out.get("choices") or []:
        if isinstance(choice, dict):
            for name in DROP_ON_REDACT:
                if choice.get(name) is not None:
                    choice[name] = None
    for path, value in list(leaves(out)):
        result = guard.scan_output(str(value), **context)
        if result.verdict == "block":
            return None
        if result.verdict == "redact":
            if not isinstance(value, str):
                return None  # a number cannot hold "[REDACTED]"
            _set(out, path, result.sanitized)
    if guard.scan_output(answer_text(out), **context).verdict in _FOUND:
        return None
    return out
