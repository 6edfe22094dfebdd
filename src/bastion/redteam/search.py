"""Adaptive black-box search for a variant of an attack that the guard lets through.

The attacker holds one :class:`~bastion.redteam.base.Attempt` the guard blocks and an
:data:`~bastion.redteam.oracle.Oracle` it may query ``budget`` times. A *move* edits
the current attempt: a registered converter (an obfuscation, an encoding, padding, ...
re-drawn with a fresh seed each time it is tried) or the swap of one content word for a
WordNet synonym (:func:`bastion.guard.synonyms.synonyms`). The search is a beam search
over chains of up to ``max_depth`` moves:

1. query the attempt as it is (query 1: the attacker must learn it is blocked);
2. each round, every attempt in the beam gets ``width`` random moves; each new variant
   (a text already sent is never sent twice) is queried, and the first one allowed
   (and, with ``accept``, one the model still answers) ends the search;
3. the next beam is the ``beam`` best of the old beam and the new variants: lowest
   score when the oracle exposes one, else the most lenient verdict word, else at
   random (a verdict-only oracle gives the search nothing to climb).

Which queries are sent never depends on ``budget``: a search with budget 100 sends the
same first 25 queries as one with budget 25, so one run at the largest budget gives the
success rate at every smaller one (:attr:`SearchResult.queries`).

    from bastion.guard import Guard
    from bastion.redteam.oracle import GuardOracle
    from bastion.redteam.search import search

    result = search(attempt, GuardOracle(Guard()), budget=50, seed=0)
    result.found, result.moves, result.queries
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bastion.common.records import RecordWriter, new_run_id, versions
from bastion.common.state import StateFile, fingerprint
from bastion.errors import ConfigError
from bastion.redteam.base import Attempt, Converter
from bastion.redteam.oracle import Oracle, Verdict
from bastion.redteam.search_io import SearchResult, Step
from bastion.redteam.search_moves import Moves, Node, pick_converters, rank

__all__ = ["SearchResult", "Step", "search", "search_many"]

#: rounds in a row that draw no new text before a node is given up.
_FRUITLESS = 3


def _check(budget: int, beam: int, width: int, max_depth: int, swap_share: float) -> None:
    for name, value in (("budget", budget), ("beam", beam), ("width", width),
                        ("max_depth", max_depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    if not 0.0 <= swap_share <= 1.0:
        raise ConfigError(f"swap_share must be in [0, 1], got {swap_share!r}")


def search(attempt: Attempt, oracle: Oracle, *,
           converters: Sequence[str | Converter] | None = None, budget: int = 50,
           beam: int = 3, width: int = 4, max_depth: int = 4, seed: int = 0,
           synonyms: Callable[[str], list[str]] | str | None = "wordnet",
           swap_share: float = 0.5,
           accept: Callable[[Attempt], bool] | None = None) -> SearchResult:
    """Search for a variant of ``attempt`` that ``oracle`` allows, in ``budget`` queries.

    Args:
        attempt: the attack, usually one the guard blocks.
        oracle: ``(Attempt) -> Verdict`` (:mod:`bastion.redteam.oracle`).
        converters: registered names or :class:`Converter` objects to draw moves from;
            ``None`` for every registered converter with its defaults.
        budget: oracle queries at most, the first (the unchanged attempt) included.
        beam: attempts kept between rounds.
        width: moves tried on each kept attempt per round.
        max_depth: moves in one chain at most.
        seed: fixes every draw; the same seed gives the same queries and result.
        synonyms: ``word -> [synonyms]`` for word swaps; ``"wordnet"`` for
            :func:`bastion.guard.synonyms.synonyms` (needs Debian's ``wordnet-base``);
            ``None`` for no swaps.
        swap_share: probability that a move is a word swap rather than a converter.
        accept: optional second check on a variant the guard allowed (e.g. the target
            answers and a judge calls it a hit); its calls are counted apart
            (:attr:`SearchResult.accept_queries`) and a rejected variant does not end
            the search.

    Returns:
        a :class:`SearchResult`: the variant found or ``None``, queries spent, why it
        stopped, and one :class:`Step` per query.
    """
    _check(budget, beam, width, max_depth, swap_share)
    if synonyms == "wordnet":
        from bastion.guard.synonyms import synonyms as wordnet
        synonyms = wordnet
    if isinstance(synonyms, str):
        raise ConfigError(f"synonyms must be 'wordnet', None or a function, got {synonyms!r}")
    moves = Moves(pick_converters(converters), synonyms, swap_share, seed, attempt.id)
    run = _Run(oracle, accept, budget)
    first = run.ask(attempt, ())
    if first is None or run.stopped:
        return run.result(attempt)
    root = Node(attempt, (), rank(first, 0.0))
    kept, known = [root], [root]
    fruitless: Counter[tuple[str, ...]] = Counter()
    while True:
        children = _round(kept, moves, run, width, fruitless)
        if children is None:  # found, throttled or out of budget
            break
        known.extend(children)

        def open_(nodes: list[Node]) -> list[Node]:
            return [n for n in nodes if len(n.moves) < max_depth
                    and fruitless[n.moves] < _FRUITLESS]
        pool = open_([*kept, *children]) or open_(known)
        if not pool:
            run.stopped = "exhausted"  # every node left only draws texts already sent
            break
        kept = sorted(pool, key=lambda n: n.rank)[:beam]
    return run.result(attempt)


def _round(kept: list[Node], moves: Moves, run: _Run, width: int,
           fruitless: Counter[tuple[str, ...]]) -> list[Node] | None:
    """``width`` moves on each kept node, every new text queried; the new nodes, or
    ``None`` once the run has stopped. Counts in ``fruitless`` the rounds in a row each
    node drew nothing new."""
    children: list[Node] = []
    for node in kept:
        before = len(children)
        for _ in range(width):
            drawn = moves.draw(node)
            if drawn is None or drawn[0].turns in run.seen:
                continue
            child, label = drawn
            verdict = run.ask(child, (*node.moves, label))
            if verdict is None or run.stopped:
                return None
            children.append(Node(child, (*node.moves, label),
                                 rank(verdict, moves.rng.random())))
        # given up only after rounds in a row that drew nothing new: a node with few
        # possible texts left still gets its chance at them
        fruitless[node.moves] = fruitless[node.moves] + 1 if len(children) == before else 0
    return children


class _Run:
    """The bookkeeping of one search: queries, trace, the texts already sent."""

    def __init__(self, oracle: Oracle, accept: Callable[[Attempt], bool] | None,
                 budget: int) -> None:
        self.oracle, self.accept, self.budget = oracle, accept, budget
        self.trace: list[Step] = []
        self.seen: set[tuple[str, ...]] = set()
        self.queries = self.accept_queries = 0
        self.stopped = ""
        self.found: Attempt | None = None
        self.found_moves: tuple[str, ...] = ()

    def ask(self, attempt: Attempt, path: tuple[str, ...]) -> Verdict | None:
        """Query one variant; ``None`` once the budget is spent (nothing sent)."""
        if self.queries >= self.budget:
            self.stopped = "budget"
            return None
        self.seen.add(attempt.turns)
        self.queries += 1
        verdict = self.oracle(attempt)
        hit = verdict.allowed
        if hit and self.accept is not None:
            self.accept_queries += 1
            hit = bool(self.accept(attempt))
        self.trace.append(Step(moves=path, score=verdict.score, allowed=verdict.allowed,
                               throttled=verdict.throttled, label=verdict.label,
                               accepted=hit if verdict.allowed else None,
                               reason=verdict.reason))
        if hit:
            self.found = replace(attempt, meta={**attempt.meta, "search_moves": list(path)})
            self.found_moves = path
            self.stopped = "found"
        if verdict.throttled:
            self.stopped = "throttled"
        return verdict

    def result(self, attempt: Attempt) -> SearchResult:
        return SearchResult(attempt_key=attempt.key, found=self.found, moves=self.found_moves,
                            queries=self.queries, accept_queries=self.accept_queries,
                            stopped=self.stopped or "budget", trace=tuple(self.trace))


def search_many(attempts: Sequence[Attempt], oracle: Oracle, *,
                state: str | Path | None = None, out: str | Path | None = None,
                progress: bool = False,
                on_result: Callable[[SearchResult], None] | None = None,
                oracle_label: str = "", **settings: Any) -> list[SearchResult]:
    """:func:`search` over many attempts, resumable.

    Args:
        attempts: the attacks; their keys must be unique.
        oracle: as for :func:`search`.
        state: a resume file (:class:`bastion.common.state.StateFile`), rewritten after
            every attempt; a rerun with the same file and settings returns the saved
            results of attempts already done without querying again. A file from other
            settings raises :class:`~bastion.errors.StateError`.
        out: a JSON-lines record (:mod:`bastion.common.records`): a ``run`` line with the
            settings, then one ``search`` line per result as it is made (resumed ones
            were written by the earlier run). Written before the resume file, so a kill
            between the two can repeat one line; key on ``attempt_key``.
        progress: a progress bar on stderr.
        on_result: called with each result as it is made (not for resumed ones), e.g.
            to append it to a JSON-lines file.
        oracle_label: names the oracle in the resume file's fingerprint (a guard policy,
            a service URL): resuming against another oracle is then refused.
        settings: keyword arguments of :func:`search` (``budget``, ``seed``, ...).

    Returns:
        one :class:`SearchResult` per attempt, in order.
    """
    keys = [a.key for a in attempts]
    if len(set(keys)) != len(keys):
        raise ConfigError("two attempts share a key (id plus converter chain); give each "
                          "attempt its own id")
    saved = StateFile(None if state is None else Path(state), _fingerprint(settings,
                                                                          oracle_label),
                      settings="the search settings or the oracle")
    writer = None if out is None else RecordWriter(Path(out), new_run_id())
    if writer is not None:
        writer.write("run", seed=settings.get("seed", 0), versions=versions(),
                     params={"oracle": oracle_label, "attempts": len(attempts),
                             "fingerprint": saved.fingerprint})
    results: list[SearchResult] = []
    for attempt in _progress(attempts, progress):
        done = saved.done(attempt.key)
        if done is not None:
            results.append(SearchResult.from_dict(done))
            continue
        result = search(attempt, oracle, **settings)
        if writer is not None:
            writer.write("search", **result.to_dict())
        saved.save(attempt.key, result.to_dict())
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results


def _fingerprint(settings: dict[str, Any], oracle_label: str) -> str:
    """What decides a search's queries, as a short hash (functions by their names)."""
    def name(value: Any) -> Any:
        if callable(value):
            return getattr(value, "__qualname__", type(value).__name__)
        if isinstance(value, list | tuple):
            return [repr(sorted(vars(v).items())) + v.name if isinstance(v, Converter)
                    else v for v in value]
        return value
    return fingerprint({"kind": "redteam-search", "oracle": oracle_label,
                        **{k: name(v) for k, v in sorted(settings.items())}})


def _progress(items: Sequence[Attempt], progress: bool) -> Iterable[Attempt]:
    if not progress:
        return items
    from rich.progress import track

    return track(items, description="searching", transient=True)
