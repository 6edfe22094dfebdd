"""Measure the red-team judges on the labelled judge set: precision, recall, F1 per judge
and split, with Wilson 95% intervals, and each judge's time per answer.

The judges were tuned on the ``dev`` split only; ``test`` (a frozen held-out set, rows
appended to the judge set with ``"split": "test"``) is the number to quote, and a split
without rows is skipped; each split is also scored by source (real model answers,
written hard cases). With
``--garak`` the refusal labels are also scored by the idea behind garak's
``mitigation.MitigationBypass`` detector (a refusal = any of its case-insensitive
substrings appears): the list is read from garak's source file as data (garak is not
imported; ``pip install --no-deps garak==0.17.1``).

    python bench/redteam_judges.py --out results/redteam_judges.json --garak
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any


def garak_substrings() -> list[str] | None:
    """MitigationBypass's substring list, parsed from garak's source (None if absent)."""
    spec = importlib.util.find_spec("garak")
    if spec is None or not spec.submodule_search_locations:
        return None
    source = Path(next(iter(spec.submodule_search_locations))) / "detectors/mitigation.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "MitigationBypass":
            for sub in ast.walk(node):
                if (isinstance(sub, ast.Assign) and isinstance(sub.value, ast.List)
                        and any(getattr(t, "id", "") == "substrings" for t in sub.targets)):
                    return [e.value for e in sub.value.elts
                            if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return None


def garak_refusal(cases: list[Any], split: str, substrings: list[str]) -> dict[str, Any]:
    """Precision and recall of "any substring present = refusal" on the refusal labels."""
    from bastion.common.intervals import wilson_interval

    lowered = [s.lower() for s in substrings]
    tp = fp = fn = 0
    for case in cases:
        if case.split != split or "refusal" not in case.labels:
            continue
        hit = any(s in case.answer.lower() for s in lowered)
        truth = case.labels["refusal"]
        tp, fp, fn = tp + (hit and truth), fp + (hit and not truth), fn + (truth and not hit)
    return {"precision": [tp / (tp + fp) if tp + fp else None, wilson_interval(tp, tp + fp)],
            "recall": [tp / (tp + fn) if tp + fn else None, wilson_interval(tp, tp + fn)],
            "substrings": len(substrings)}


def _fmt(rate: dict[str, Any]) -> str:
    if rate["value"] is None:
        return "n/a"
    low, high = rate["interval"]
    return f"{100 * rate['value']:5.1f}% [{100 * low:5.1f}, {100 * high:5.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here")
    parser.add_argument("--splits", nargs="+", default=["dev", "test"],
                        choices=["dev", "test"])
    parser.add_argument("--garak", action="store_true",
                        help="also score garak's MitigationBypass substrings on refusals")
    args = parser.parse_args()
    from bastion.redteam.judgeset import evaluate, load_judge_set

    cases = load_judge_set()
    # Warm-up: the toxicity model unpickles on first use; keep that out of the timing.
    evaluate(cases[:40], split=None)
    results: dict[str, Any] = {"cases": len(cases), "splits": {}}
    for split in args.splits:
        if not any(c.split == split for c in cases):
            print(f"\n{split}: no rows with this split in the judge set, skipped")
            continue
        began = time.perf_counter()
        table = evaluate(cases, split=split)
        results["splits"][split] = table
        results.setdefault("by_source", {})[split] = {
            source: evaluate([c for c in cases if c.source == source], split=split)
            for source in ("model", "written")}
        print(f"\n{split} ({time.perf_counter() - began:.1f} s)")
        print(f"{'judge':9} {'n':>4} {'pos':>4} {'precision [95% CI]':>24} "
              f"{'recall [95% CI]':>24} {'F1':>5} {'ms/ans':>7}")
        for name, r in table.items():
            print(f"{name:9} {r['n']:4d} {r['positives']:4d} {_fmt(r['precision']):>24} "
                  f"{_fmt(r['recall']):>24} {r['f1']:5.2f} {r['ms_per_answer']:7.2f}")
        if args.garak:
            substrings = garak_substrings()
            if substrings is None:
                sys.exit("--garak needs garak's files: pip install --no-deps garak==0.17.1")
            results.setdefault("garak_mitigation_bypass", {})[split] = garak_refusal(
                cases, split, substrings)
            g = results["garak_mitigation_bypass"][split]
            print(f"garak MitigationBypass substrings as a refusal detector: precision "
                  f"{g['precision'][0]}, recall {g['recall'][0]}")
    results["machine"] = {"python": platform.python_version(), "cpu": platform.processor(),
                          "platform": platform.platform()}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
