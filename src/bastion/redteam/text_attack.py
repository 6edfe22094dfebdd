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
  also find the edits. A first pass spends one query per word (its first edit); a
  second pass, only if the text still is flagged, scores each word's other edit kinds.
* ``charbug-ascii``: ``charbug`` without homoglyphs (which a Unicode-folding front end,
  like the guard's sanitizer, undoes).
* ``deepwordbug``: the same edits, words ranked by deleting each one (DeepWordBug's
  ranking), then every edit kind of the word scored and the best kept.
* ``synonym`` and ``glove``: word swaps (WordNet synonyms; GloVe neighbours,
  :mod:`bastion.redteam.text_glove`), words ranked by deletion.

Constraints (all recipes): stopwords (:data:`~bastion.redteam.text_edits.STOPWORDS`)
are never edited, a word is edited at most once (the second pass may swap its edit for
a better edit of the original word), at most ``max_fraction`` of the words
(at least one) are edited, character edits stay within ``max_distance`` (Levenshtein)
of their word. Every text scored counts as a query, the unedited one included; a text
stops when it has spent ``max_queries``.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bastion.common.intervals import interval_list, wilson_interval
from bastion.common.state import StateFile, fingerprint
from bastion.errors import ConfigError, InputError
from bastion.redteam.base import Scorer
from bastion.redteam.text_edits import RECIPES, Recipe
from bastion.redteam.text_search import TextResult, attack_text

__all__ = ["RECIPES", "AttackResult", "Recipe", "TextResult", "attack", "attack_text"]


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
