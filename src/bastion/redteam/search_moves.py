"""The moves of :mod:`bastion.redteam.search`: converters redrawn with fresh seeds and
WordNet word swaps, drawn from one seeded generator."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from bastion.errors import ConfigError
from bastion.guard.base import SEVERITY
from bastion.guard.perturb import STOPWORDS
from bastion.redteam.base import CONVERTERS, Attempt, Converter, seeded
from bastion.redteam.oracle import Verdict

_WORD = re.compile(r"[A-Za-z]{3,}")
#: synonyms tried per word, most common senses first.
_OPTIONS = 8


@dataclass(frozen=True)
class Node:
    """A variant the search has queried: the attempt, the moves that made it, its rank."""

    attempt: Attempt
    moves: tuple[str, ...]
    rank: tuple[float, float]  # (score or verdict severity, random tie-break): lower first


def pick_converters(given: Sequence[str | Converter] | None) -> list[Converter]:
    """Converter objects from registered names or objects; all registered when None."""
    if given is None:
        return [CONVERTERS[name]() for name in sorted(CONVERTERS)]
    out: list[Converter] = []
    for item in given:
        if isinstance(item, Converter):
            out.append(item)
        elif isinstance(item, str) and item in CONVERTERS:
            out.append(CONVERTERS[item]())
        else:
            raise ConfigError(f"unknown converter {item!r}; choose from "
                              f"{', '.join(sorted(CONVERTERS))} or pass Converter objects")
    return out


class Moves:
    """Draws and applies moves; every draw comes from one seeded generator."""

    def __init__(self, converters: list[Converter], synonyms: Callable[[str], list[str]] | None,
                 swap_share: float, seed: int, attempt_id: str) -> None:
        self.converters = converters
        self.synonyms = synonyms
        self.swap_share = swap_share if synonyms is not None else 0.0
        self.seed = seed
        self.rng = seeded(seed, "search", attempt_id)
        self._cache: dict[str, list[str]] = {}
        self.salt = 0

    def _options(self, word: str) -> list[str]:
        if word not in self._cache:
            assert self.synonyms is not None
            found = [s for s in self.synonyms(word) if s.replace(" ", "").isalpha()]
            self._cache[word] = found[:_OPTIONS]
        return self._cache[word]

    def _swap(self, node: Node) -> tuple[Attempt, str] | None:
        spots = [(t, m) for t, turn in enumerate(node.attempt.turns)
                 for m in _WORD.finditer(turn)
                 if m.group().lower() not in STOPWORDS and self._options(m.group().lower())]
        if not spots:
            return None
        t, m = spots[self.rng.randrange(len(spots))]
        word = m.group()
        new = self.rng.choice(self._options(word.lower()))
        new = new[0].upper() + new[1:] if word[0].isupper() else new
        turns = list(node.attempt.turns)
        turns[t] = turns[t][:m.start()] + new + turns[t][m.end():]
        return replace(node.attempt, turns=tuple(turns)), f"swap:{word}->{new}"

    def draw(self, node: Node) -> tuple[Attempt, str] | None:
        """One random move applied to ``node``: the new attempt and the move's label."""
        self.salt += 1
        if self.converters and not (self.rng.random() < self.swap_share):
            conv = self.converters[self.rng.randrange(len(self.converters))]
            salt = seeded(self.seed, node.attempt.id, *node.moves, self.salt).getrandbits(62)
            return conv.apply(node.attempt, seed=salt), f"{conv.name}#{self.salt}"
        return self._swap(node) if self.swap_share > 0 else None


def rank(verdict: Verdict, tie: float) -> tuple[float, float]:
    """Sort key of a variant, lower first: its score, else its verdict's severity."""
    if verdict.score is not None:
        return (verdict.score, tie)
    if verdict.label is not None:
        return (float(SEVERITY.get(verdict.label, 0)), tie)
    return (0.0, tie)
