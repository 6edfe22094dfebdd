"""Black-box text attacks on any text classifier: make a flagged text pass.

The target is a :data:`~bastion.redteam.base.Scorer` (a list of texts -> risk scores
in [0, 1]); a text is *flagged* when its score is at or above ``threshold``, and the
attack succeeds when an edited text scores below it. The search is the greedy
word-importance search of DeepWordBug (Gao et al., 2018, arXiv:1801.04354) and
TextAttack: rank the words by how much touching each one lowers the score, then edit
them in that order, keeping an edit only when it lowers the score, until the text
passes or a budget runs out.

    from bastion.redteam.text_attack import attack
    from bastion.redteam.text_targets import toxicity_scores

    result = attack(["you are a stupid idiot"], toxicity_scores, threshold=0.5,
                    recipe="charbug", seed=0)
    result.summary()["success_rate"], result.texts[0].perturbed

Recipes (:data:`RECIPES`) differ in their edits and in how they rank words:

* ``charbug``: character edits (:func:`~bastion.redteam.text_edits.char_edits`), words
  ranked by scoring each word *with its first edit applied*, so the ranking queries
  also find the edits: the search then spends one query per word, and tries the other
  edit kinds of a word only when its first one does not lower the score.
* ``deepwordbug``: the same edits, words ranked by deleting each one (DeepWordBug's
  ranking), then every edit kind of the word scored and the best kept.
* ``synonym``: WordNet synonym swaps, words ranked by deletion.

Constraints (all recipes): stopwords (:data:`~bastion.redteam.text_edits.STOPWORDS`)
are never edited, a word is edited at most once, at most ``max_fraction`` of the words
(at least one) are edited, character edits stay within ``max_distance`` (Levenshtein)
of their word. Every text scored counts as a query, the unedited one included; a text
stops when it has spent ``max_queries``.
"""

from __future__ import annotations

import hashlib
import math
import random
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bastion.common.intervals import interval_list, wilson_interval
from bastion.common.state import StateFile, fingerprint
from bastion.errors import ConfigError, InputError
from bastion.redteam.base import Scorer, seeded
from bastion.redteam.text_edits import STOPWORDS, WORD, char_edits, synonym_edits

#: candidates for one word: (word, rng) -> replacements, best guess first.
EditFn = Callable[[str, random.Random], list[str]]


@dataclass(frozen=True)
class Recipe:
    """An attack recipe: which edits, and how words are ranked.

    Attributes:
        name: the registry key.
        level: ``"char"`` or ``"word"``.
        ranking: ``"edit"`` (score each word with its first candidate applied) or
            ``"delete"`` (score the text with the word removed).
        description: one line for listings.
        max_fraction: default share of the words that may be edited.
        max_distance: Levenshtein budget per edited word (character recipes).
    """

    name: str
    level: str
    ranking: str
    description: str
    max_fraction: float = 0.5
    max_distance: int = 2

    def edits(self, word: str, rng: random.Random) -> list[str]:
        """Candidate replacements for ``word``."""
        if self.level == "char":
            return char_edits(word, rng, max_distance=self.max_distance)
        return synonym_edits(word, rng)


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("charbug", "char", "edit", "character edits; words ranked by their own edit "
           "(fewest queries)"),
    Recipe("deepwordbug", "char", "delete", "character edits; words ranked by deletion, "
           "every edit kind tried (DeepWordBug)"),
    Recipe("synonym", "word", "delete", "WordNet synonym swaps; words ranked by deletion"),
)}


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


@dataclass
class AttackResult:
    """Every text's :class:`TextResult` and the settings; :meth:`summary` aggregates."""

    recipe: str
    threshold: float
    seed: int
    max_queries: int
    max_fraction: float
    texts: list[TextResult]

    def summary(self) -> dict[str, Any]:
        """Counts, the success rate over attacked texts with its Wilson 95% interval,
        queries per success (median, mean) and words changed per success (mean)."""
        attacked = [t for t in self.texts if not t.skipped]
        won = [t for t in attacked if t.success]
        queries = [t.queries for t in won]
        changed = [t.words_changed for t in won]
        return {
            "recipe": self.recipe, "texts": len(self.texts), "attacked": len(attacked),
            "skipped": len(self.texts) - len(attacked), "successes": len(won),
            "success_rate": len(won) / len(attacked) if attacked else None,
            "success_ci": interval_list(wilson_interval(len(won), len(attacked))),
            "queries_per_success_median": statistics.median(queries) if queries else None,
            "queries_per_success_mean": statistics.fmean(queries) if queries else None,
            "words_changed_mean": statistics.fmean(changed) if changed else None,
            "queries_total": sum(t.queries for t in self.texts),
        }

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "threshold": self.threshold, "seed": self.seed,
                "max_queries": self.max_queries, "max_fraction": self.max_fraction,
                "summary": self.summary(), "texts": [asdict(t) for t in self.texts]}


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
    order, probe_scores = _rank(text, spans, eligible, firsts, recipe, budget, score)
    allowed = max(1, math.floor(max_fraction * len(spans)))
    current, best = list(words), score
    for i in order:
        if len(result.changes) >= allowed or budget.left <= 0:
            break
        options = candidates[i]
        if i in probe_scores and current == words:
            tried = {options[0]: probe_scores[i]}  # the probe was exactly this text
        else:
            tried = {}
        if recipe.ranking == "edit" and not tried:
            tried = _try(text, spans, current, i, options[:1], budget)
        if not tried or min(tried.values()) >= best:
            tried.update(_try(text, spans, current, i,
                              [o for o in options if o not in tried], budget))
        if not tried:
            break
        new, new_score = min(tried.items(), key=lambda kv: kv[1])
        if new_score < best:
            result.changes.append([words[i], new])
            current[i], best = new, new_score
            if best < threshold:
                result.success = True
                break
    result.perturbed = _splice(text, spans, current)
    result.final_score, result.queries = best, budget.used
    return result


def _try(text: str, spans: list[tuple[int, int]], current: list[str], i: int,
         options: list[str], budget: _Budget) -> dict[str, float]:
    """Scores of ``current`` with word ``i`` replaced by each option (one batch)."""
    if not options:
        return {}
    texts = [_splice(text, spans, [o if j == i else w for j, w in enumerate(current)])
             for o in options]
    scores = budget.score(texts)
    return dict(zip(options, scores, strict=False))


def _check(texts: Sequence[str], threshold: float, recipe: str, max_queries: int,
           max_fraction: float | None) -> tuple[Recipe, float]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise InputError("texts must be a list of strings (one text per item)")
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    if isinstance(threshold, bool) or not 0.0 < float(threshold) <= 1.0:
        raise ConfigError(f"threshold must be in (0, 1] (a text is flagged at or above "
                          f"it), got {threshold!r}")
    if isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries < 1:
        raise ConfigError(f"max_queries must be a whole number >= 1, got {max_queries!r}")
    chosen = RECIPES[recipe]
    fraction = chosen.max_fraction if max_fraction is None else max_fraction
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"max_fraction must be in (0, 1], got {fraction!r}")
    return chosen, fraction


def attack(texts: Sequence[str], scorer: Scorer, *, threshold: float,
           recipe: str = "charbug", max_queries: int = 500,
           max_fraction: float | None = None, seed: int = 0, progress: bool = False,
           state: str | Path | None = None, target: str = "scorer") -> AttackResult:
    """Attack every text against ``scorer``; see the module docstring for the search.

    Args:
        texts: the texts; blank ones and ones scored below ``threshold`` are skipped.
        scorer: list of texts -> risk scores in [0, 1], one per text.
        threshold: a text is flagged when its score is >= this.
        recipe: a key of :data:`RECIPES`.
        max_queries: texts scored per attacked text, at most (the unedited one included).
        max_fraction: share of a text's words that may be edited (``None``: the
            recipe's); at least one word may always be edited.
        seed: fixes every random edit; the same seed, texts and scorer give the same
            result.
        progress: a progress bar on stderr.
        state: a resume file, saved after every text; a rerun with the same file and
            settings skips the texts already done. It cannot see the scorer: keep the
            file to one ``target`` (a label that enters its fingerprint).
        target: the target's name, for the resume file's fingerprint.
    """
    chosen, fraction = _check(texts, threshold, recipe, max_queries, max_fraction)
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8", "surrogatepass")).hexdigest()
    fp = fingerprint({"kind": "text-attack", "texts": digest, "recipe": recipe,
                      "threshold": float(threshold), "max_queries": max_queries,
                      "max_fraction": fraction, "seed": seed, "target": target})
    saved = StateFile(None if state is None else Path(state), fp,
                      settings="texts, target, recipe, threshold, budgets or seed")
    results: list[TextResult] = []
    for k in _progress(range(len(texts)), progress):
        done = saved.done(str(k))
        if done is not None:
            results.append(TextResult(**done))
            continue
        if not texts[k].strip():
            one = TextResult(texts[k], texts[k], 0.0, 0.0, skipped=True)
        else:
            one = attack_text(texts[k], scorer, threshold=float(threshold), recipe=chosen,
                              max_queries=max_queries, max_fraction=fraction, seed=seed)
        saved.save(str(k), asdict(one))
        results.append(one)
    return AttackResult(recipe, float(threshold), seed, max_queries, fraction, results)


def _progress(items: range, show: bool) -> Iterable[int]:
    if not show:
        return items
    from rich.progress import track

    return track(items, description="attacking", transient=True)
