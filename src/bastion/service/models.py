"""Request and answer bodies of the HTTP API (pydantic), which also make the OpenAPI doc.

Every text field refuses lone surrogates (``"\\ud800"`` is valid JSON but not valid
Unicode: scanners that encode to UTF-8 would fail, and PostgreSQL would refuse to store
it), with a 422 that says so.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TEXT = 200_000  # characters; the byte cap on bodies usually bites first


def _unicode(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"text holds a lone surrogate at character {exc.start}; send "
                             "valid Unicode") from None
    return value


def _unicode_deep(value: Any) -> None:
    """:func:`_unicode` on every string inside a JSON value (keys included)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _unicode(key)
            _unicode_deep(item)
    elif isinstance(value, list):
        for item in value:
            _unicode_deep(item)
    else:
        _unicode(value)


class _ValidText(BaseModel):
    """Checks every string of the body, extra fields and content parts included."""

    @model_validator(mode="after")
    def _deep(self) -> Any:
        _unicode_deep(self.model_extra or {})
        return self


class ScanInputRequest(BaseModel):
    """``POST /v1/scan/input``: a prompt on its way to a model."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=MAX_TEXT, description="the prompt to scan")
    session_id: str | None = Field(None, max_length=200,
                                   description="groups prompts for anomaly detection; "
                                               "default the X-Bastion-Session header")

    _check = field_validator("text", "session_id")(_unicode)


class ScanOutputRequest(BaseModel):
    """``POST /v1/scan/output``: a model's answer on its way to the user."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(max_length=MAX_TEXT, description="the answer to scan")
    prompt: str | None = Field(None, max_length=MAX_TEXT,
                               description="the prompt that produced it")
    documents: list[str] = Field(default_factory=list, max_length=64,
                                 description="trusted context the answer should use")
    canary: str | None = Field(None, min_length=1, max_length=500,
                               description="secret token planted in the system prompt")
    session_id: str | None = Field(None, max_length=200)

    _check = field_validator("text", "prompt", "canary", "session_id")(_unicode)

    @field_validator("documents")
    @classmethod
    def _docs(cls, value: list[str]) -> list[str]:
        for doc in value:
            _unicode(doc)
        return value


class LayerResult(BaseModel):
    name: str
    verdict: str
    score: float
    latency_ms: float
    reason: str
    spans: list[list[Any]]


class ScanResponse(BaseModel):
    """The guard's verdict, as ``bastion guard scan --json`` prints it, plus what the
    service filed: a review item (verdict ``review``) or a session escalation."""

    verdict: Literal["allow", "flag", "redact", "review", "block"]
    score: float
    sanitized: str
    layers: list[LayerResult]
    skipped: list[str]
    failed: list[str]
    latency_ms: float
    review_id: int | None = None
    escalation_id: int | None = None


class ChatMessage(_ValidText):
    model_config = ConfigDict(extra="allow")
    role: str = Field(max_length=64)
    content: str | list[dict[str, Any]] | None = None

    @field_validator("role", "content")
    @classmethod
    def _text(cls, value: Any) -> Any:
        _unicode_deep(value)
        return value


class GuardOptions(BaseModel):
    """bastion's extension of a chat request; removed before the request goes upstream."""

    model_config = ConfigDict(extra="forbid")
    canary: str | None = Field(None, min_length=1, max_length=500)
    documents: list[str] = Field(default_factory=list, max_length=64)
    session_id: str | None = Field(None, max_length=200)


class ChatRequest(_ValidText):
    """``POST /v1/chat/completions``: OpenAI's chat request; unknown fields go upstream."""

    model_config = ConfigDict(extra="allow")
    model: str | None = Field(None, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
    bastion: GuardOptions | None = None


class Decision(BaseModel):
    """A reviewer's decision on one item."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    note: str = Field("", max_length=2000)

    _check = field_validator("note")(_unicode)


class NewKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: Literal["client", "reviewer", "admin"] = "client"
