"""How many of each red-team probe's attempts the guard's input layers stop, plain and
through each converter.

No model answers here: every user turn of an attempt (and, for the indirect probes, the
attempt's planted document, which a RAG application would screen the same way) goes
through a guard input pipeline; an attempt counts as stopped when any of its texts gets
a verdict other than ``allow``. The default policy is the rule layers (sanitizer,
decoder, rules: no model), which run in milliseconds; ``--policy default`` adds the
trained ensemble classifier (about a second a prompt on a busy 2-core machine). Rates
carry 95% Wilson intervals.

The row ``control`` holds benign prompts through the same converters (bastion's own: the
indirect probes' help-centre questions and the guard attacks' filler sentences), so a
converter that is stopped for how it looks rather than for what it carries shows there.

    python bench/redteam_screen.py --limit 50 --out docs/results/redteam_screen.json
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

from bastion.common.intervals import wilson_interval
from bastion.guard import Guard, policy_from_dict
from bastion.guard.perturb import FILLER
from bastion.redteam import CONVERTERS, PROBES, Attempt
from bastion.redteam.app import load_app
from bastion.redteam.sources import own

#: the converters bench/redteam_screen.py tries by default ("none": the probe as written)
DEFAULT_CONVERTERS = ("none", "char-spacing", "morse", "nato", "atbash", "fullwidth",
                      "unicode-tags", "leet-mix", "code-fence", "split-turns")
RULE_LAYERS = {"input": [{"kind": "sanitizer"}, {"kind": "decoder"}, {"kind": "rules"}]}


CONTROL = "control"


def control_attempts() -> list[Attempt]:
    """Benign one-turn attempts: the help-centre questions and the filler sentences."""
    texts = [r["question"] for r in own("indirect") if r["kind"] == "carrier"] + list(FILLER)
    return [Attempt(id=f"{CONTROL}:{i}", probe=CONTROL, family=CONTROL, goal="comply",
                    turns=(t,)) for i, t in enumerate(texts)]


def stopped(guard: Guard, attempt: Attempt) -> bool:
    """Whether the guard's input pipeline stops any user turn or planted document."""
    texts = (*attempt.turns, *attempt.documents) if attempt.goal == "inject" else attempt.turns
    return any(guard.scan_input(t).verdict != "allow" for t in texts)


def rate(k: int, n: int) -> dict[str, Any]:
    low, high = wilson_interval(k, n) or (0.0, 1.0)
    return {"stopped": k, "n": n, "rate": k / n if n else None, "ci95": [low, high]}


def screen(guard: Guard, probes: list[str], converters: list[str], limit: int,
           seed: int) -> dict[str, dict[str, dict[str, Any]]]:
    """``{probe: {converter: rate}}`` over ``limit`` attempts of each probe."""
    app = load_app()
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in probes:
        attempts = (control_attempts() if name == CONTROL
                    else PROBES[name]().attempts(app, limit=limit, seed=seed))
        out[name] = {}
        for conv in converters:
            chain = attempts if conv == "none" else [CONVERTERS[conv]().apply(a, seed)
                                                     for a in attempts]
            out[name][conv] = rate(sum(stopped(guard, a) for a in chain), len(chain))
        print(name, {c: f"{r['stopped']}/{r['n']}" for c, r in out[name].items()}, flush=True)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=50, help="attempts per probe (seeded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probes", default=None,
                        help="comma-separated probe names and/or 'control' (default: "
                             "every probe and the control)")
    parser.add_argument("--converters", default=",".join(DEFAULT_CONVERTERS),
                        help="comma-separated converter names; 'none' is the plain probe")
    parser.add_argument("--policy", choices=("rules", "default"), default="rules",
                        help="rules: sanitizer, decoder, rules; default: the bundled "
                             "policy's input layers (with the ensemble classifier)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = parser.parse_args(argv)
    probes = args.probes.split(",") if args.probes else [*sorted(PROBES), CONTROL]
    converters = args.converters.split(",")
    unknown = [p for p in probes if p not in PROBES and p != CONTROL]
    unknown += [c for c in converters if c != "none" and c not in CONVERTERS]
    if unknown:
        parser.error(f"unknown probe or converter: {', '.join(unknown)}")
    guard = Guard(policy_from_dict(RULE_LAYERS)) if args.policy == "rules" else Guard()
    began = time.perf_counter()
    table = screen(guard, probes, converters, args.limit, args.seed)
    result = {
        "what": "share of attempts the guard's input layers stop (any turn not allowed)",
        "policy": args.policy, "limit": args.limit, "seed": args.seed, "results": table,
        "seconds": round(time.perf_counter() - began, 1),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "load": list(os.getloadavg())},
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
