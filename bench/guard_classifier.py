"""Measure the guard's input pipeline with its trained layer: detection, cost, robustness.

The pipeline is sanitizer + decoder + rules + a trained layer at its bundled threshold
(chosen on S-Labs val): the ``EnsembleScanner`` (the default policy's last input layer,
``--kind ensemble``, the default here) or the fine-tuned ``TransformerScanner`` alone
(``--kind transformer``). Reported: S-Labs test detection (the only place test is
scored), the ``benign-dev`` and over-refusal sets, ``bench/data/benign_codes_heldout.jsonl``
(123 benign prompts with order numbers, tracking codes, error codes and the like, never
trained on, unlike their 237 siblings of source ``order-numbers`` among the hard
negatives), latency on S-Labs test prompts and on ~512-token prompts, and the black-box
perturbation attack on the first ``--attack-limit`` S-Labs *val* examples.

    OMP_NUM_THREADS=1 python bench/guard_classifier.py --json out.json
    OMP_NUM_THREADS=1 python bench/guard_classifier.py --kind transformer --json out.json
    OMP_NUM_THREADS=1 python bench/guard_classifier.py --weights DIR/ensemble.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np


class _Guard:
    """The shape :func:`attack_guard` expects, around a bare pipeline."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def scan_input(self, text: str) -> Any:
        return self.pipeline.run(text)


def pipeline(with_classifier: bool = True, weights: str | None = None,
             threshold: float | None = None, kind: str = "ensemble") -> Any:
    """sanitizer + decoder + rules (+ the classifier layer of ``kind``). For ``ensemble``,
    ``weights`` is an ``ensemble.json`` naming both members' weights, the mix and the
    threshold (``None``: the bundled record)."""
    from bastion.guard.pipeline import Pipeline
    from bastion.guard.scanners.input import DecoderScanner, RulesScanner, SanitizerScanner
    from bastion.guard.scanners.input.ensemble import EnsembleScanner
    from bastion.guard.scanners.input.transformer import TransformerScanner

    layers: list[Any] = [SanitizerScanner(), DecoderScanner(), RulesScanner()]
    if with_classifier and kind == "ensemble":
        kwargs: dict[str, Any] = {}
        if weights:
            record = json.loads(Path(weights).read_text("utf-8"))
            kwargs = {"mix": record["mix"], "threshold": record["threshold"],
                      **{k: (None if record[k] == "bundled" else record[k])
                         for k in ("transformer_weights", "classifier_weights")}}
        layers.append(EnsembleScanner(**kwargs))
    elif with_classifier:
        kwargs = {"weights": weights}
        if threshold is not None:
            kwargs["threshold"] = threshold
        layers.append(TransformerScanner(**kwargs))
    return Pipeline(layers)


def long_prompts(prompts: list[str], chars: int, count: int) -> list[str]:
    """``count`` prompts of at least ``chars`` characters, each joining consecutive ones."""
    out, i = [], 0
    while len(out) < count:
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < chars:
            parts.append(prompts[i % len(prompts)])
            i += 1
        out.append(" ".join(parts))
    return out


def _pct(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values)
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--attack-limit", type=int, default=400,
                    help="first N S-Labs val examples attacked")
    ap.add_argument("--budgets", default="1,3,5")
    ap.add_argument("--long", type=int, default=200, help="~512-token prompts timed")
    ap.add_argument("--weights", help="--kind ensemble: an ensemble.json from 'bastion guard "
                                      "train' (default: the bundled layer); --kind "
                                      "transformer: a .npz whose threshold is read from "
                                      "the .json beside it")
    ap.add_argument("--kind", choices=("ensemble", "transformer"), default="ensemble")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from bastion.guard.attacks import attack_guard
    from bastion.guard.corpora import load_corpus
    from bastion.guard.evaluate import evaluate_guard

    threshold = None
    if args.weights and args.kind != "ensemble":
        meta = Path(args.weights).with_suffix(".json")
        threshold = float(json.loads(meta.read_text("utf-8"))["threshold"])
    pipe = pipeline(weights=args.weights, threshold=threshold, kind=args.kind)
    layer = pipe.layers[-1].scanner.name
    pipe.run("warm up the tokenizer and the head")
    out: dict[str, Any] = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                           "python": platform.python_version(), "cpus": os.cpu_count(),
                           "load_average_start": os.getloadavg(),
                           "kind": args.kind, "weights": args.weights or "bundled",
                           "threshold": pipe.layers[-1].scanner.threshold}
    began = time.perf_counter()
    test = load_corpus("s-labs-test")
    r = evaluate_guard(pipe, test)
    out["s_labs_test"] = {k: r[k] for k in ("n", "tpr", "fpr", "auroc", "tpr_at_fpr_1pct",
                                            "confusion", "latency_ms")}
    dev = load_corpus("benign-dev")
    out["benign_dev"] = {"n": len(dev),
                         "flagged": sum(pipe.run(e.text).verdict != "allow" for e in dev)}
    codes = load_corpus(Path(__file__).parent / "data" / "benign_codes_heldout.jsonl")
    code_flags = [e.text for e in codes if pipe.run(e.text).verdict != "allow"]
    out["benign_codes_heldout"] = {"n": len(codes), "flagged": len(code_flags),
                                   "flagged_texts": code_flags}
    over = load_corpus("over-refusal")
    flags = [pipe.run(e.text) for e in over]
    out["over_refusal"] = {
        "n": len(over), "flagged": sum(f.verdict != "allow" for f in flags),
        "flagged_by_classifier": sum(f.by_name[layer].verdict != "allow"
                                     for f in flags if layer in f.by_name),
        "flagged_texts": [e.text for e, f in zip(over, flags, strict=True)
                          if f.verdict != "allow"]}
    longs = long_prompts([e.text for e in test], 2500, args.long)
    wall, clf = [], []
    for text in longs:
        t = time.perf_counter()
        res = pipe.run(text)
        wall.append(1000 * (time.perf_counter() - t))
        if layer in res.by_name:
            clf.append(res.by_name[layer].latency_ms)
    out["long_prompts"] = {"n": len(longs), "mean_chars": float(np.mean([len(t) for t in longs])),
                           "pipeline_wall_ms": _pct(wall),
                           "classifier_ms": _pct(clf) if clf else None}
    val = load_corpus("s-labs-val")[:args.attack_limit]
    budgets = [int(b) for b in args.budgets.split(",")]
    a = attack_guard(_Guard(pipe), val, budgets=budgets, tries=5, seed=0)
    out["attack"] = {k: a[k] for k in ("n_attacks", "n_caught", "tpr_before", "queries",
                                       "results", "budgets", "tries", "seed")}
    out["attack"]["max_drop_by_family"] = {
        f: max(row["tpr_drop_points"] for row in a["results"] if row["family"] == f)
        for f in a["families"]}
    out["wall_s"] = round(time.perf_counter() - began, 1)
    out["load_average_end"] = os.getloadavg()
    text = json.dumps(out, indent=2)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    print(text)
    return out


if __name__ == "__main__":
    main()
