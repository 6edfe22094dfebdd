"""The grounding scanner on bastion's labelled grounding set: recall, false flags, latency.

Every answer of the set (``bastion/guard/data/grounding.jsonl``) is scanned whole against
its context documents; each labelled sentence takes the unsupportedness of the scanner's
sentence(s) overlapping it. Reported per split (``dev``, where the defaults were chosen,
its two parts apart: ``dev_original``, the answers the checks were built on, and
``dev_former_test``, a test split already evaluated and published; and ``test``, when
the set has one): the share of planted unsupported sentences flagged (recall), per kind of
planted error, and the share of supported sentences flagged (false positive rate), per
kind (verbatim, paraphrase, filler), each with a 95% Wilson interval.

Latency: answers of at least ``--answer-words`` words (labelled sentences drawn from the
answers whose contexts are used) against about a page of context (documents joined up to
``--context-words`` words), scanned one at a time, warm (model loaded); once with every
context sentence embedded in the call ("cold context", ``cache_size=0``) and once with
the context seen before ("cached context"), the usual case when the same passages are
retrieved again.

    python bench/grounding.py [--tune] [--layers L] [--repeats R] [--out FILE.json]

``--tune`` searches the meaning thresholds on dev answers only (grid below; the original
dev answers unless ``--tune-on dev``) and prints the best setting at a false positive
rate of at most ``--max-fpr`` there, and what it gives on the other dev answers; the test
split is never read by it. ``--explain`` prints every dev sentence scored on the wrong
side of the threshold, with the scanner's reason.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from bastion.common.intervals import wilson_interval
from bastion.guard.base import ScanContext
from bastion.guard.grounding_set import (
    Item,
    Sentence,
    aligned_scores,
    dev_parts,
    flag_counts,
    load_grounding_set,
    sentence_scores,
)
from bastion.guard.scanners.output.grounding import Grounding

GRID_MIN_SUPPORT = [round(0.6 + 0.02 * i, 2) for i in range(36)]
GRID_COVERAGE_WEIGHT = [0.25, 0.5, 0.75, 1.0]
GRID_NEGATION_OVERLAP = [0.3, 0.5, 0.7]
GRID_NUMBER_SCOPE = ["support", "context"]
ORDER = ("unsupported", "number", "name", "negation", "invented", "unrelated",
         "supported", "verbatim", "paraphrase", "filler")


def rate(k: int, n: int) -> dict[str, Any]:
    low, high = wilson_interval(k, n) or (0.0, 1.0)
    return {"k": k, "n": n, "rate": k / n if n else 0.0, "low": low, "high": high}


def parts() -> dict[str, list[Item]]:
    """The answers reported apart: all dev, its original and former-test parts, test."""
    everything = load_grounding_set("all")
    dev = dev_parts(everything)
    return {"dev": dev["original"] + dev["former_test"],
            "dev_original": dev["original"], "dev_former_test": dev["former_test"],
            "test": [i for i in everything if i.split == "test"]}


def accuracy(scanner: Grounding, items: list[Item]) -> dict[str, Any]:
    counts = flag_counts(sentence_scores(scanner, items), scanner.threshold)
    return {key: rate(*counts[key]) for key in ORDER if key in counts}


def explain(scanner: Grounding, items: list[Item]) -> None:
    """Print each sentence scored on the wrong side of the threshold, and why."""
    for item in items:
        judged = scanner.judge(item.answer, item.documents, item.question)
        scores = aligned_scores(item, judged, scanner.unsupportedness)
        for (a, b), sentence, score in zip(item.spans, item.sentences, scores, strict=True):
            flagged = score >= scanner.threshold and score > 0.0
            if flagged == (sentence.label == "unsupported"):
                continue
            why = [scanner.problems(j) for j in judged if j.start < b and j.end > a
                   and j.claim]
            print(f"{'FALSE FLAG' if flagged else 'MISSED':<10} {item.id}"
                  f"{' (former test)' if item.was_test else ''} [{sentence.kind}] "
                  f"{score:.2f} {sentence.text!r}: {'; '.join(why) or 'no claim'}")


def print_accuracy(split: str, rows: dict[str, Any]) -> None:
    print(f"\n{split}: share flagged (95% Wilson interval)")
    for key, r in rows.items():
        what = "recall" if key in ("unsupported", "number", "name", "negation", "invented",
                                   "unrelated") else "FPR"
        print(f"  {key:<12} {what:<6} {r['rate']:6.1%} ({r['k']}/{r['n']}; "
              f"{r['low']:.1%}-{r['high']:.1%})")


def tune(layers: list[int], max_fpr: float, on: str) -> list[dict[str, Any]]:
    """Grid search on the dev answers ``on`` (``dev_original`` or ``dev``): for each
    ``layers``, the setting with the highest recall at an FPR of at most ``max_fpr``
    there (ties: lower FPR), and its recall and FPR on the other dev answers."""
    split = parts()
    items = split[on]
    others = split["dev_former_test"] if on == "dev_original" else []
    found = []
    for n_layers in layers:
        base = Grounding(layers=n_layers, cache_size=0)
        judged = [(item, base.judge(item.answer, item.documents, item.question))
                  for item in items]
        best: dict[str, Any] | None = None
        for ms, cw, no, scope in itertools.product(
                GRID_MIN_SUPPORT, GRID_COVERAGE_WEIGHT, GRID_NEGATION_OVERLAP,
                GRID_NUMBER_SCOPE):
            scanner = Grounding(layers=n_layers, min_support=ms, coverage_weight=cw,
                                negation_overlap=no, number_scope=scope)
            scored: list[tuple[Sentence, float]] = []
            for item, pieces in judged:
                scores = aligned_scores(item, pieces, scanner.unsupportedness)
                scored.extend(zip(item.sentences, scores, strict=True))
            counts = flag_counts(scored, scanner.threshold)
            recall = counts["unsupported"][0] / counts["unsupported"][1]
            fpr = counts["supported"][0] / counts["supported"][1]
            if fpr <= max_fpr and (best is None or (recall, -fpr) > (best["recall"],
                                                                     -best["fpr"])):
                best = {"layers": n_layers, "min_support": ms, "coverage_weight": cw,
                        "negation_overlap": no, "number_scope": scope, "recall": recall, "fpr": fpr}
        if best and others:
            chosen = Grounding(**{k: best[k] for k in ("layers", "min_support",
                                                       "coverage_weight", "negation_overlap",
                                                       "number_scope")})
            held = accuracy(chosen, others)
            best["others"] = {"recall": held["unsupported"]["rate"],
                              "fpr": held["supported"]["rate"]}
        print(f"layers={n_layers}: {best}")
        if best:
            found.append(best)
    return found


def latency_cases(items: list[Item], answer_words: int, context_words: int,
                  seed: int) -> list[tuple[str, tuple[str, ...]]]:
    """(answer, documents) pairs: for each item, its documents plus others' up to
    ``context_words`` words, and an answer of their labelled sentences of at least
    ``answer_words`` words (shuffled, cycled when short)."""
    rng = random.Random(seed)
    cases = []
    for item in items:
        chosen = [item]
        others = [o for o in items if o.id != item.id]
        rng.shuffle(others)
        while sum(len(" ".join(c.documents).split()) for c in chosen) < context_words:
            chosen.append(others.pop())
        sentences = [s.text for c in chosen for s in c.sentences]
        rng.shuffle(sentences)
        answer: list[str] = []
        for text in itertools.cycle(sentences):
            if len(" ".join(answer).split()) >= answer_words:
                break
            answer.append(text)
        cases.append((" ".join(answer), tuple(d for c in chosen for d in c.documents)))
    return cases


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def latency(layers: int, repeats: int, answer_words: int, context_words: int
            ) -> dict[str, Any]:
    cases = latency_cases(load_grounding_set("all"), answer_words, context_words, seed=0)
    out: dict[str, Any] = {"answers": len(cases), "repeats": repeats,
                           "answer_words": statistics.median(len(a.split()) for a, _ in cases),
                           "context_words": statistics.median(
                               len(" ".join(d).split()) for _, d in cases)}
    for label, cache in (("cold_context", 0), ("cached_context", 1 << 16)):
        scanner = Grounding(layers=layers, cache_size=cache)
        for answer, docs in cases[:5] if cache == 0 else cases:  # warm-up / fill the cache
            scanner.scan(answer, ScanContext(direction="output", documents=docs))
        times = []
        for _ in range(repeats):
            for answer, docs in cases:
                began = time.perf_counter()
                scanner.scan(answer, ScanContext(direction="output", documents=docs))
                times.append((time.perf_counter() - began) * 1000)
        out[label] = {"p50_ms": statistics.median(times), "p99_ms": percentile(times, 99),
                      "count": len(times)}
        print(f"latency {label}: p50 {out[label]['p50_ms']:.1f} ms, p99 "
              f"{out[label]['p99_ms']:.1f} ms over {len(times)} scans")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tune", action="store_true", help="grid search on dev only")
    parser.add_argument("--tune-layers", default="2,3,4,6",
                        help="MiniLM layer counts tried by --tune (comma-separated)")
    parser.add_argument("--max-fpr", type=float, default=0.08,
                        help="highest dev false positive rate --tune accepts")
    parser.add_argument("--tune-on", choices=("dev_original", "dev"), default="dev_original",
                        help="the dev answers --tune chooses on")
    parser.add_argument("--explain", nargs="?", const="dev", default=None,
                        choices=("dev", "dev_original", "dev_former_test", "test"),
                        help="print the sentences of a split (default dev) scored on the "
                        "wrong side, and why; read test only once its numbers are published")
    parser.add_argument("--layers", type=int, default=None,
                        help="MiniLM layers for the evaluation (default: the scanner's)")
    parser.add_argument("--repeats", type=int, default=3, help="latency passes")
    parser.add_argument("--answer-words", type=int, default=200)
    parser.add_argument("--context-words", type=int, default=450)
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    if args.tune:
        tune([int(x) for x in args.tune_layers.split(",")], args.max_fpr, args.tune_on)
        return
    scanner = Grounding() if args.layers is None else Grounding(layers=args.layers)
    split = parts()
    if args.explain:
        explain(scanner, split[args.explain])
        return
    result: dict[str, Any] = {
        "params": {k: v for k, v in scanner.get_params().items() if k != "name"},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "load_before": os.getloadavg()[0]}
    for name, items in split.items():
        if not items:
            print(f"\n{name}: no answers in the set")
            continue
        result[name] = accuracy(scanner, items)
        print_accuracy(f"{name} ({len(items)} answers)", result[name])
    if not args.no_latency:
        result["latency"] = latency(scanner.layers, args.repeats, args.answer_words,
                                    args.context_words)
    result["load_after"] = os.getloadavg()[0]
    print(f"load average: {result['load_before']:.2f} before, {result['load_after']:.2f} after")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
