"""Adaptive search against the guard: attack success vs query budget, in process or over
the guard service's HTTP API.

Attack prompts are S-Labs *val* attacks (``load_corpus("s-labs-val")``, label 1), shuffled
by the seed; the first ``--prompts`` that the guard blocks are searched. S-Labs test,
neuralchemy test and PyRIT data are not read. Query 1 of every search is the unchanged
prompt, so a budget of 1 succeeds on none of them by construction.

Strategies (``--strategies``):

* ``beam``: :func:`bastion.redteam.search.search` (beam over converter chains and word
  swaps, guided by the score the oracle exposes);
* ``verdict``: the same search told only allowed / blocked (no score, no verdict word);
* ``readable``: ``beam`` without the converters whose output must be decoded (the
  encodings and the split payload);
* ``random``: one random move on the original per query (``max_depth=1``): the
  fixed-perturbation attacker at equal queries, no adaptivity;
* ``fixed``: :func:`bastion.guard.attacks.attack_guard` with its strongest family on
  S-Labs val (``synonym``, 3 words) and ``budget - 1`` tries, budgets up to 25.

A search never depends on its budget, so one run at the largest budget gives the success
rate at every smaller one.

    python bench/redteam_search.py --prompts 30 --budget 100 --out docs/results/redteam/search
    python bench/redteam_search.py --oracle service --session rotate --prompts 10 \\
        --out docs/results/redteam/search-service
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import platform
import random
import statistics
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bastion.common.records import RecordWriter, new_run_id, versions
from bastion.guard import Guard, policy_from_dict
from bastion.guard.corpora import load_corpus
from bastion.redteam import CONVERTERS, Attempt
from bastion.redteam.oracle import GuardOracle, ServiceOracle
from bastion.redteam.search import SearchResult, search_many
from bastion.redteam.search_io import campaign, success_by_budget

#: converters whose output a reader (or model) sees without decoding anything
READABLE = sorted(n for n, c in CONVERTERS.items() if not c.needs_decoding)
STRATEGIES: dict[str, dict[str, Any]] = {"beam": {}, "verdict": {}, "random": {"max_depth": 1},
                                         "readable": {"converters": READABLE}}
#: the fixed-family baseline runs once per budget: only up to this one (cost).
FIXED_MAX_BUDGET = 25
RULES_ONLY = {"input": [{"kind": "sanitizer"}, {"kind": "decoder"}, {"kind": "rules"}]}


def caught_attempts(guard: Guard, n: int, seed: int) -> tuple[list[Attempt], int]:
    """The first ``n`` S-Labs val attacks (seeded order) the guard does not allow, and how
    many attacks were scanned to find them."""
    attacks = [e.text for e in load_corpus("s-labs-val") if e.label == 1]
    order = list(range(len(attacks)))
    random.Random(seed).shuffle(order)
    out: list[Attempt] = []
    scanned = 0
    for i in order:
        if len(out) >= n:
            break
        scanned += 1
        if guard.scan_input(attacks[i]).verdict != "allow":
            out.append(Attempt(id=f"s-labs-val:{i}", probe="s-labs-val", family="injection",
                               goal="comply", turns=(attacks[i],)))
    return out, scanned


def kind_of(move: str) -> str:
    """``homoglyph#7`` -> ``homoglyph``; ``swap:a->b`` -> ``swap``."""
    return "swap" if move.startswith("swap:") else move.split("#")[0]


def readability(results: list[SearchResult], originals: dict[str, str],
                guard: Guard) -> dict[str, Any]:
    """How much of each found variant a reader still sees: character similarity
    (difflib ratio, lower-cased) of the original and the variant after the guard's own
    sanitizer (which undoes homoglyphs and invisible characters); and how many found
    variants need decoding (an encoding or a split payload in their chain)."""
    sanitizer = Guard(policy_from_dict({"input": [{"kind": "sanitizer"}]}))
    ratios, encoded = [], 0
    for r in results:
        if r.found is None:
            continue
        text = sanitizer.scan_input(" ".join(r.found.turns)).sanitized.lower()
        original = originals[r.attempt_key].lower()
        ratios.append(difflib.SequenceMatcher(None, original, text).ratio())
        encoded += any(CONVERTERS[kind_of(m)].needs_decoding for m in r.moves
                       if kind_of(m) in CONVERTERS)
    return {"found": len(ratios), "needs_decoding": encoded,
            "similarity_median": round(statistics.median(ratios), 3) if ratios else None,
            "similarity_ge_0_8": sum(x >= 0.8 for x in ratios)}


def summarise(results: list[SearchResult], budgets: list[int]) -> dict[str, Any]:
    """Success by budget (:func:`bastion.redteam.search_io.success_by_budget`; every
    prompt here was caught unchanged) and what the found variants are made of."""
    rows = success_by_budget(results, budgets)
    found = [r for r in results if r.found is not None]
    return {"by_budget": rows,
            "queries_total": sum(r.queries for r in results),
            "queries_to_find_median": (statistics.median(r.queries for r in found)
                                       if found else None),
            "stopped": dict(Counter(r.stopped for r in results)),
            "winning_last_move": dict(Counter(kind_of(r.moves[-1]) for r in found
                                              if r.moves).most_common()),
            "moves_in_found_chains": dict(Counter(kind_of(m) for r in found
                                                  for m in r.moves).most_common()),
            "chain_length_median": (statistics.median(len(r.moves) for r in found)
                                    if found else None)}


def service_oracle(guard: Guard, out: Path, args: argparse.Namespace) -> tuple[Any, dict]:
    """The guard service in process (SQLite, in-process rate limiter, default anomaly
    settings) behind a FastAPI TestClient, and a client key's oracle."""
    from fastapi.testclient import TestClient

    from bastion.service import create_app
    from bastion.service.config import ServiceConfig

    db = out / "service.db"
    db.unlink(missing_ok=True)
    config = ServiceConfig(database_url=f"sqlite:///{db}")
    app = create_app(config, guard=guard)
    key = app.state.service.store.create_key("search-bench").key
    client = TestClient(app)
    session = None if args.session == "shared" else "attacker"
    oracle = ServiceOracle("http://testserver", key, session_id=session,
                           rotate_sessions=args.session == "rotate",
                           stop_on_escalation=not args.ignore_escalation, client=client,
                           wait_s=args.wait)
    described = {"database": "sqlite", "rate_limit": vars(config.rate_limit),
                 "anomaly": vars(config.anomaly), "session": args.session,
                 "stop_on_escalation": not args.ignore_escalation, "wait_s": args.wait}
    return oracle, described


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    began = time.time()
    guard = Guard(policy_from_dict(RULES_ONLY)) if args.policy == "rules" else Guard()
    attempts, scanned = caught_attempts(guard, args.prompts, args.seed)
    originals = {a.key: a.turns[0] for a in attempts}
    budgets = sorted({b for b in args.budgets if b <= args.budget} | {args.budget})
    report: dict[str, Any] = {"oracle": args.oracle, "policy": args.policy,
                              "attacks_scanned": scanned, "caught": len(attempts),
                              "budget": args.budget, "seed": args.seed, "strategies": {}}
    writer = RecordWriter(out / "records.jsonl", new_run_id())
    writer.write("run", seed=args.seed, versions=versions(), params=vars(args))
    for name in args.strategies:
        if name == "fixed":
            report["strategies"]["fixed"] = fixed_family(guard, attempts, budgets, args.seed)
            continue
        settings = {"budget": args.budget, "seed": args.seed, "beam": args.beam,
                    "width": args.width, **STRATEGIES[name]}
        if name == "verdict" and args.oracle == "service":
            continue  # the service always returns its score
        if args.oracle == "service":
            oracle, report["service"] = service_oracle(guard, out, args)
            state = None  # the service's anomaly state lives in memory: no resume
        else:
            oracle = GuardOracle(guard, expose_score=name != "verdict",
                                 passing=("allow",))
            state = out / f"state-{name}.json"
        t0 = time.time()

        def record(result: SearchResult, strategy: str = name) -> None:
            writer.write("search", strategy=strategy, **result.to_dict())
        results = search_many(attempts, _verdict_only(oracle) if name == "verdict" else oracle,
                              state=state, progress=args.progress,
                              oracle_label=f"{args.oracle}:{args.policy}",
                              on_result=record, **settings)
        row = summarise(results, budgets)
        row["readability"] = readability(results, originals, guard)
        row["seconds"] = round(time.time() - t0, 1)
        if args.oracle == "service":
            row["campaign"] = {**campaign(results), "waited_s": round(oracle.waited_s, 1),
                               "http_requests": oracle.requests}
        report["strategies"][name] = row
    report.update(seconds=round(time.time() - began, 1), machine=_machine())
    writer.write("summary", **report)
    (out / "summary.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def fixed_family(guard: Guard, attempts: list[Attempt], budgets: list[int],
                 seed: int) -> dict[str, Any]:
    """:func:`bastion.guard.attacks.attack_guard` with its strongest family on S-Labs val
    (``synonym``, 3 words; docs/guard.md), ``budget - 1`` tries per prompt so that it
    spends the same queries as a search (whose first query is the original)."""
    from bastion.guard.attacks import attack_guard

    t0 = time.time()
    texts = [a.turns[0] for a in attempts]
    rows = []
    for b in [b for b in budgets if 2 <= b <= FIXED_MAX_BUDGET]:
        got = attack_guard(guard, texts, families=["synonym"], budgets=[3], tries=b - 1,
                           seed=seed)["results"][0]
        rows.append({"budget": b, "found": got["evaded"], "n": got["caught"],
                     "asr": round(got["asr"], 4), "asr_ci": got["asr_ci"]})
    return {"family": "synonym", "edits": 3, "by_budget": rows,
            "seconds": round(time.time() - t0, 1)}


def _verdict_only(oracle: GuardOracle) -> Any:
    """Hide the score and the verdict word: the attacker learns allowed or not."""
    from bastion.redteam.oracle import Verdict

    def ask(attempt: Attempt) -> Verdict:
        v = oracle(attempt)
        return Verdict(allowed=v.allowed, throttled=v.throttled, reason=v.reason)
    return ask


def _machine() -> dict[str, Any]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "load_1min_at_end": load, "date": datetime.now(UTC).date().isoformat()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--oracle", choices=("guard", "service"), default="guard")
    p.add_argument("--policy", choices=("default", "rules"), default="default",
                   help="the bundled default guard, or its rule layers only (fast)")
    p.add_argument("--prompts", type=int, default=30, help="caught attack prompts searched")
    p.add_argument("--budget", type=int, default=100, help="queries per prompt, at most")
    p.add_argument("--budgets", type=lambda s: [int(x) for x in s.split(",")],
                   default=[1, 5, 10, 25, 50, 100], help="budgets reported (comma list)")
    p.add_argument("--strategies", nargs="+", choices=[*STRATEGIES, "fixed"],
                   default=["beam", "random"])
    p.add_argument("--beam", type=int, default=3)
    p.add_argument("--width", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--session", choices=("shared", "one", "rotate"), default="one",
                   help="service: no session id, one for the whole run, or one per prompt")
    p.add_argument("--ignore-escalation", action="store_true",
                   help="service: keep searching after an escalation (until a 429)")
    p.add_argument("--wait", type=float, default=2.0,
                   help="service: wait out a 429 that asks to retry within this many "
                        "seconds (the key's rate limit), then resend")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--out", default="bench-out/redteam-search")
    args = p.parse_args(argv)
    report = run(args)
    for name, row in report["strategies"].items():
        cells = ", ".join(f"{r['budget']}: {r['found']}/{r['n']} {r['asr_ci']}"
                          for r in row["by_budget"])
        print(f"{name}: {cells}; {row['seconds']} s")
    print(json.dumps({k: v for k, v in report.items() if k != "strategies"}, indent=1))


if __name__ == "__main__":
    main()
