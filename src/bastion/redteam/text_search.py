"""The greedy word-importance search behind :mod:`bastion.redteam.text_attack`, for one
text: score it, rank its words, edit them in order under the constraints.

Queries go through :class:`_Budget`, which counts every text scored and stops at the
text's query budget; each batch of candidates is one call to the scorer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bastion.errors import InputError
from bastion.redteam.base import Scorer, seeded
from bastion.redteam.text_edits import STOPWORDS, WORD, Recipe


@dataclass
class TextResult:
    """One text's attack.

    Attributes:
        text, perturbed: before and after (equal when nothing was kept).
        score, final_score: the target's score before and after.
        skipped: the text was not flagged to begin with (not attacked).
        success: the edited text scores below the threshold.
        queries: texts scored for this one, the unedited text included.
        changes: ``[old, new]`` word pairs kept, in the order they were made.
        words: words in the text (the denominator of ``max_fraction``).
    """

    text: str
    perturbed: str
    score: float
    final_score: float
    skipped: bool = False
    success: bool = False
    queries: int = 0
    changes: list[list[str]] = field(default_factory=list)
    words: int = 0

    @property
    def words_changed(self) -> int:
        return len(self.changes)


class _Budget:
    """Scores texts through the target, counting and capping the queries of one text."""

    def __init__(self, scorer: Scorer, max_queries: int) -> None:
        self.scorer = scorer
        self.left = max_queries
        self.used = 0

    def score(self, texts: list[str]) -> list[float]:
        """Scores of the first ``left`` texts (fewer than asked when the budget ends)."""
        texts = texts[:self.left]
        if not texts:
            return []
        raw = list(self.scorer(texts))
        if len(raw) != len(texts):
            raise InputError(f"the scorer returned {len(raw)} scores for {len(texts)} "
                             "texts; it must return one score per text")
        scores = [float(s) for s in raw]
        if any(not 0.0 <= s <= 1.0 for s in scores):  # also rejects NaN
            raise InputError("the scorer must return risk scores in [0, 1]; got "
                             f"{[s for s in scores if not 0.0 <= s <= 1.0][:3]}")
        self.left -= len(texts)
        self.used += len(texts)
        return scores


def _splice(text: str, spans: Sequence[tuple[int, int]], words: Sequence[str]) -> str:
    """``text`` with each span replaced by its word (spans in order, not overlapping)."""
    out, last = [], 0
    for (start, end), word in zip(spans, words, strict=True):
        out += [text[last:start], word]
        last = end
    return "".join(out) + text[last:]


def _delete(text: str, span: tuple[int, int]) -> str:
    """``text`` without the word at ``span`` and one space beside it."""
    start, end = span
    if end < len(text) and text[end] == " ":
        end += 1
    elif start > 0 and text[start - 1] == " ":
        start -= 1
    return text[:start] + text[end:]


def _rank(text: str, spans: list[tuple[int, int]], eligible: list[int],
          firsts: dict[int, str], recipe: Recipe, budget: _Budget, score: float
          ) -> tuple[list[int], dict[int, float]]:
    """Eligible word indices, most important first, and the score of each ``edit``
    probe (empty for ``delete`` ranking, whose probes are not edits)."""
    words = [text[s:e] for s, e in spans]
    if recipe.ranking == "edit":
        probes = [i for i in eligible if i in firsts]
        texts = [_splice(text, spans, [firsts[i] if j == i else w for j, w in
                                       enumerate(words)]) for i in probes]
    else:
        probes = list(eligible)
        texts = [_delete(text, spans[i]) for i in probes]
    scores = budget.score(texts)
    scored = dict(zip(probes, scores, strict=False))
    order = sorted(scored, key=lambda i: (scored[i] - score, i))
    return order, (scored if recipe.ranking == "edit" else {})


def attack_text(text: str, scorer: Scorer, *, threshold: float, recipe: Recipe,
                max_queries: int, max_fraction: float, seed: int) -> TextResult:
    """Attack one text (see the module docstring); the unedited text is scored first."""
    budget = _Budget(scorer, max_queries)
    score = budget.score([text])[0]
    spans = [m.span() for m in WORD.finditer(text)]
    result = TextResult(text, text, score, score, words=len(spans))
    if score < threshold:
        result.skipped, result.queries = True, budget.used
        return result
    words = [text[s:e] for s, e in spans]
    eligible = [i for i, w in enumerate(words) if w.lower() not in STOPWORDS]
    candidates = {i: recipe.edits(words[i], seeded(seed, recipe.name, text, i))
                  for i in eligible}
    eligible = [i for i in eligible if candidates[i]]
    firsts = {i: candidates[i][0] for i in eligible}
    order, probes = _rank(text, spans, eligible, firsts, recipe, budget, score)
    search = _Search(text, spans, words, candidates, budget, threshold,
                     allowed=max(1, math.floor(max_fraction * len(spans))), best=score)
    # "edit" ranking: a first pass with each word's first edit (one query per word,
    # none for the top word whose probe is that very text), then a pass with the rest
    for width in ((1, None) if recipe.ranking == "edit" else (None,)):
        for i in order:
            if search.best < threshold or budget.left <= 0:
                break
            if width == 1 and i in probes and search.current == words:
                search.keep(i, {firsts[i]: probes[i]})
            else:
                search.step(i, width)
    result.changes = [[words[i], search.current[i]] for i in search.changed]
    result.perturbed = _splice(text, spans, search.current)
    result.final_score, result.queries = search.best, budget.used
    result.success = search.best < threshold
    return result


@dataclass
class _Search:
    """The greedy search's state for one text: the words now, the best score, which
    candidates each word has had scored, and the words changed (in order)."""

    text: str
    spans: list[tuple[int, int]]
    words: list[str]
    candidates: dict[int, list[str]]
    budget: _Budget
    threshold: float
    allowed: int
    best: float
    current: list[str] = field(default_factory=list)
    tried: dict[int, set[str]] = field(default_factory=dict)
    changed: dict[int, None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.current = list(self.words)

    def step(self, i: int, width: int | None) -> None:
        """Score word ``i``'s first ``width`` candidates (all when None) not yet scored,
        and keep the best if it lowers the score. A word not yet changed is skipped once
        ``allowed`` words are; a changed word may take a better edit of the original."""
        if i not in self.changed and len(self.changed) >= self.allowed:
            return
        done = self.tried.setdefault(i, set())
        options = [o for o in self.candidates[i][:width] if o not in done]
        self.keep(i, _try(self.text, self.spans, self.current, i, options, self.budget))

    def keep(self, i: int, scores: dict[str, float]) -> None:
        self.tried.setdefault(i, set()).update(scores)
        if not scores:
            return
        new, new_score = min(scores.items(), key=lambda kv: kv[1])
        if new_score < self.best:
            self.current[i], self.best = new, new_score
            self.changed[i] = None


def _try(text: str, spans: list[tuple[int, int]], current: list[str], i: int,
         options: list[str], budget: _Budget) -> dict[str, float]:
    """Scores of ``current`` with word ``i`` replaced by each option (one batch)."""
    if not options:
        return {}
    texts = [_splice(text, spans, [o if j == i else w for j, w in enumerate(current)])
             for o in options]
    scores = budget.score(texts)
    return dict(zip(options, scores, strict=False))
