"""What a search returns (:class:`SearchResult`, :class:`Step`), its JSON form, and the
numbers a set of searches comes to.

``to_dict`` gives JSON-ready dicts (one line of a results file, one unit of a resume
file); ``from_dict`` reads them back into equal objects. :func:`success_by_budget` and
:func:`campaign` summarise many searches (``bastion redteam search`` and
``bench/redteam_search.py`` both report them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bastion.common.intervals import interval_list, wilson_interval
from bastion.errors import StateError
from bastion.redteam.base import Attempt

#: why a search ended.
STOPS: tuple[str, ...] = ("found", "budget", "throttled", "exhausted")


@dataclass(frozen=True)
class Step:
    """One query of a search.

    Attributes:
        moves: the moves from the original attempt to the variant sent: a converter as
            ``name#draw`` (its draw number fixes its randomness), a word swap as
            ``swap:old->new``; ``()`` for the original.
        score: the oracle's risk score, or ``None`` when it exposes none.
        allowed: the guard let the variant through.
        throttled: the oracle refused or escalated (the search stopped here).
        label: the guard's verdict word, when the oracle gives it.
        accepted: the ``accept`` check on an allowed variant; ``None`` when not run.
        reason: the oracle's note (a throttle's message, an escalation's review item).
    """

    moves: tuple[str, ...]
    score: float | None
    allowed: bool
    throttled: bool = False
    label: str | None = None
    accepted: bool | None = None
    reason: str = ""


@dataclass(frozen=True)
class SearchResult:
    """The outcome of one search.

    Attributes:
        attempt_key: the original attempt's :attr:`~bastion.redteam.base.Attempt.key`.
        found: the variant that passed (its ``meta["search_moves"]`` lists the moves),
            or ``None``.
        moves: the moves that made ``found`` (``()`` if none, or if the original passed).
        queries: oracle queries spent, the original included; when ``found`` is set,
            the query that found it is the last one.
        accept_queries: calls of the ``accept`` check, counted apart.
        stopped: one of :data:`STOPS`.
        trace: one :class:`Step` per query, in order.
    """

    attempt_key: str
    found: Attempt | None
    moves: tuple[str, ...]
    queries: int
    accept_queries: int
    stopped: str
    trace: tuple[Step, ...]

    @property
    def throttled(self) -> bool:
        """The oracle throttled or escalated the search."""
        return self.stopped == "throttled" or any(s.throttled for s in self.trace)

    @property
    def blocked_at_start(self) -> bool:
        """The original attempt did not pass (what an attack on the guard starts from)."""
        return bool(self.trace) and not self.trace[0].allowed

    def found_within(self, budget: int) -> bool:
        """Whether this search had found its variant after ``budget`` queries (searches
        never depend on their budget, so this is the result a smaller budget gives)."""
        return self.found is not None and self.queries <= budget

    def to_dict(self) -> dict[str, Any]:
        return {"attempt_key": self.attempt_key,
                "found": None if self.found is None else attempt_to_dict(self.found),
                "moves": list(self.moves), "queries": self.queries,
                "accept_queries": self.accept_queries, "stopped": self.stopped,
                "trace": [{**asdict(s), "moves": list(s.moves)} for s in self.trace]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchResult:
        try:
            found = data["found"]
            return cls(attempt_key=str(data["attempt_key"]),
                       found=None if found is None else attempt_from_dict(found),
                       moves=tuple(data["moves"]), queries=int(data["queries"]),
                       accept_queries=int(data["accept_queries"]),
                       stopped=str(data["stopped"]),
                       trace=tuple(Step(**{**s, "moves": tuple(s["moves"])})
                                   for s in data["trace"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"a saved search result is malformed ({exc!r}); delete the "
                             "resume file to start over") from None


def attempt_to_dict(attempt: Attempt) -> dict[str, Any]:
    """An attempt as JSON-ready data (tuples become lists)."""
    data = asdict(attempt)
    for name in ("turns", "documents", "converters"):
        data[name] = list(data[name])
    return data


def attempt_from_dict(data: dict[str, Any]) -> Attempt:
    """The attempt :func:`attempt_to_dict` wrote."""
    return Attempt(**{**data, "turns": tuple(data["turns"]),
                      "documents": tuple(data["documents"]),
                      "converters": tuple(data["converters"])})


def success_by_budget(results: Sequence[SearchResult], budgets: Iterable[int]
                      ) -> list[dict[str, Any]]:
    """Attack success at each of ``budgets`` (queries per prompt) over ``results``: one
    row ``{"budget", "found", "n", "asr", "asr_ci"}`` per budget, ``asr`` a share in
    [0, 1] (``None`` for no results) with its two-sided 95% Wilson interval. Pass only
    the searches that count (those whose prompt the guard blocked unchanged)."""
    n = len(results)
    rows = []
    for budget in budgets:
        k = sum(r.found_within(budget) for r in results)
        rows.append({"budget": budget, "found": k, "n": n,
                     "asr": round(k / n, 4) if n else None,
                     "asr_ci": interval_list(wilson_interval(k, n), 1, 4)})
    return rows


def campaign(results: Sequence[SearchResult]) -> dict[str, Any]:
    """The searches as the target saw them, their queries in order over all prompts:
    how many were sent, answered with a verdict, refused (429) and escalated, the query
    (1-based) of the first escalation and of the first 429 (``None``: none came), and
    the queries each prompt took."""
    steps = [s for r in results for s in r.trace]
    first: dict[str, int | None] = {"escalated": None, "429": None}
    for i, step in enumerate(steps, 1):
        for what in first:
            if first[what] is None and step.reason.startswith(what):
                first[what] = i
    return {"queries": len(steps), "answered": sum(s.label is not None for s in steps),
            "refused_429": sum(s.reason.startswith("429") for s in steps),
            "escalations": sum(s.reason.startswith("escalated") for s in steps),
            "first_escalation_at": first["escalated"], "first_429_at": first["429"],
            "queries_per_prompt": [r.queries for r in results]}
